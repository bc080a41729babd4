//! User accounts and API tokens, replicated so a user can log in on any node.
//!
//! The domain only stores what the node edge computed: a password hash (argon2 PHC string) and
//! the SHA-256 of an API token's secret. It never sees a password or a token secret.

use crate::actor::{Actor, Role};
use crate::facility::FacilityId;
use crate::specialist::SpecialistId;
use serde::{Deserialize, Serialize};

/// A person (or integration) who may use the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub id: String,
    /// The role the user acts in.
    pub role: Role,
    /// Facility the user works at (required for clinic staff).
    pub facility: Option<FacilityId>,
    /// The specialist the user reads as (specialists only).
    pub specialist: Option<SpecialistId>,
    /// Password hash as a PHC string (argon2id), computed at the node edge.
    pub password_hash: String,
    /// When the account was created.
    pub created_at_ms: u64,
    /// A disabled user cannot log in, and every session and API token of theirs is refused.
    pub disabled: bool,
    /// Sessions issued before this time are refused (logout everywhere).
    pub sessions_valid_from_ms: u64,
}

impl User {
    /// The actor this user's commands are issued as. A specialist acts under their specialist
    /// id, so the lifecycle rules recognise them as owner.
    pub fn actor(&self) -> Actor {
        let id = match (&self.role, &self.specialist) {
            (Role::Specialist, Some(s)) => s.0.clone(),
            _ => self.id.clone(),
        };
        Actor { role: self.role, id, facility: self.facility.clone() }
    }

    /// Whether a session issued at `issued_at_ms` is still honoured.
    pub fn accepts_session(&self, issued_at_ms: u64) -> bool {
        !self.disabled && issued_at_ms >= self.sessions_valid_from_ms
    }
}

/// A user account to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRegistration {
    /// Login name.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Facility (required for clinic staff).
    #[serde(default)]
    pub facility: Option<FacilityId>,
    /// Specialist id (specialists; defaults to the login name).
    #[serde(default)]
    pub specialist: Option<SpecialistId>,
    /// Password hash (PHC string) computed at the node edge.
    pub password_hash: String,
}

/// A long-lived token for an integration, acting as its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Token id (public part of the token).
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// SHA-256 (hex) of the token's secret part.
    pub secret_hash: String,
    /// What it is for.
    pub label: String,
    /// When it was created.
    pub created_at_ms: u64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<u64>,
}

/// What an account listing shows: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// Login name.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Facility.
    pub facility: Option<FacilityId>,
    /// Specialist id.
    pub specialist: Option<SpecialistId>,
    /// Whether the account is disabled.
    pub disabled: bool,
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            role: u.role,
            facility: u.facility.clone(),
            specialist: u.specialist.clone(),
            disabled: u.disabled,
        }
    }
}
