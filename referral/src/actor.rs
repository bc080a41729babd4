//! Who issues a command: the person or system behind every transition and audit event.

use crate::facility::FacilityId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The role an actor acts in. Roles decide which lifecycle rules an actor may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Staff of a clinic or hospital: requests cases, sends and receives patients.
    ClinicStaff,
    /// A specialist reading cases.
    Specialist,
    /// Operations staff of the region: routing overrides, policies, registrations.
    Ops,
    /// The cluster itself (timers evaluated by the Raft leader).
    System,
    /// Reviews the audit trail and break-glass openings; sees no case data otherwise.
    Auditor,
    /// Health bureau: aggregate figures only.
    Bureau,
    /// Manages users and API tokens.
    Admin,
}

impl Role {
    /// The roles a user account may have (everything but [`Role::System`]).
    pub const USER_ROLES: [Role; 6] =
        [Role::ClinicStaff, Role::Specialist, Role::Ops, Role::Auditor, Role::Bureau, Role::Admin];

    /// Parse a role from its snake_case name (`clinic_staff`, `specialist`, ...).
    pub fn parse(name: &str) -> Option<Role> {
        Self::USER_ROLES.into_iter().chain([Role::System]).find(|r| r.to_string() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ClinicStaff => "clinic_staff",
            Role::Specialist => "specialist",
            Role::Ops => "ops",
            Role::System => "system",
            Role::Auditor => "auditor",
            Role::Bureau => "bureau",
            Role::Admin => "admin",
        })
    }
}

/// The person or system issuing a command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Role acted in.
    pub role: Role,
    /// Staff number, specialist id or "cluster" for the system.
    pub id: String,
    /// Facility the actor works at (required for clinic staff).
    #[serde(default)]
    pub facility: Option<FacilityId>,
}

impl Actor {
    /// The cluster acting on its own (deadline consequences).
    pub fn system() -> Self {
        Self { role: Role::System, id: "cluster".into(), facility: None }
    }

    /// An ops user.
    pub fn ops(id: &str) -> Self {
        Self { role: Role::Ops, id: id.into(), facility: None }
    }

    /// A specialist acting as themself.
    pub fn specialist(id: &str) -> Self {
        Self { role: Role::Specialist, id: id.into(), facility: None }
    }

    /// Staff of `facility`.
    pub fn staff(id: &str, facility: &str) -> Self {
        Self { role: Role::ClinicStaff, id: id.into(), facility: Some(FacilityId(facility.into())) }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.facility {
            Some(fac) => write!(f, "{}:{}@{}", self.role, self.id, fac),
            None => write!(f, "{}:{}", self.role, self.id),
        }
    }
}
