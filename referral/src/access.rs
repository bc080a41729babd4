//! Access follows the referral: who may see and act on a case, and why.
//!
//! - Staff of the requesting facility see its cases; staff of the facility performing the
//!   examination, and of a facility a transfer of the case is addressed to or sent from, see
//!   them too (they care for the patient).
//! - A specialist sees a case while it is offered to or owned by them, and for a grace period
//!   after it closes (region policy, 72 h by default); the grace is read-only.
//! - Ops see cluster and registry data but no patient data; auditors see the audit trail; the
//!   bureau sees aggregate figures only; admins manage users. None of them opens a case.
//! - Anyone with a clinical role may open a case outside these rules by break-glass: with a
//!   reason, for a limited time, audited at start and end, read-only.
//!
//! The decision is pure so the API, DICOMweb and image endpoints all call the same functions.

use crate::actor::{Actor, Role};
use crate::case::{Case, CaseId};
use crate::facility::FacilityId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Default grace after a case closes during which its last specialist may still read it.
pub const DEFAULT_SPECIALIST_GRACE_MS: u64 = 72 * 60 * 60 * 1000;
/// Longest break-glass opening, in minutes.
pub const MAX_BREAK_GLASS_MINUTES: u32 = 24 * 60;

/// What a caller wants to do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseOperation {
    /// See the case, its images and its transfers.
    Read,
    /// Act on it (lifecycle actions, transfers, uploads); the lifecycle rules then apply too.
    Write,
}

/// Why access is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Staff of the requesting facility.
    Requester,
    /// Staff of the examining facility or of a facility a transfer of the case involves.
    CareFacility,
    /// The specialist the case is offered to or owned by.
    Reader,
    /// The case's last specialist, within the grace after it closed (read-only).
    Grace {
        /// When the grace ends.
        until_ms: u64,
    },
    /// An open break-glass grant (read-only).
    BreakGlass {
        /// When the grant ends.
        until_ms: u64,
    },
}

impl Basis {
    /// The HL7 PurposeOfUse code that fits this basis.
    pub fn purpose_of_use(self) -> &'static str {
        match self {
            Basis::BreakGlass { .. } => "ETREAT",
            _ => "TREAT",
        }
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Basis::Requester => f.write_str("staff of the requesting facility"),
            Basis::CareFacility => f.write_str("staff of a facility caring for the patient"),
            Basis::Reader => f.write_str("the specialist the case is offered to or owned by"),
            Basis::Grace { until_ms } => {
                write!(f, "the case's specialist, in the grace after close (until {until_ms})")
            }
            Basis::BreakGlass { until_ms } => write!(f, "break-glass access (until {until_ms})"),
        }
    }
}

/// A refused access, with the reason shown to the caller and written to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access to case `{case}` denied: {reason}")]
pub struct Denied {
    /// The case.
    pub case: CaseId,
    /// Why, and what the caller can do.
    pub reason: String,
}

/// The facts beyond the case itself that access depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFacts {
    /// Grace after close for the case's last specialist (its region's policy).
    pub specialist_grace_ms: u64,
    /// Facilities sending or receiving a transfer of the case.
    pub transfer_facilities: Vec<FacilityId>,
    /// End of the caller's open break-glass grant on the case, if any.
    pub break_glass_until_ms: Option<u64>,
}

/// May `actor` read `case` at `now_ms`? Returns the basis, or the reason for refusal.
pub fn may_read_case(actor: &Actor, case: &Case, facts: &AccessFacts, now_ms: u64) -> Result<Basis, Denied> {
    if let Some(basis) = standing_access(actor, case, facts) {
        return Ok(basis);
    }
    if actor.role == Role::Specialist && case.owner.as_ref().is_some_and(|o| o.0 == actor.id) {
        let until_ms = case.status_since_ms.saturating_add(facts.specialist_grace_ms);
        if !case.is_open() && now_ms < until_ms {
            return Ok(Basis::Grace { until_ms });
        }
    }
    if let Some(until_ms) = facts.break_glass_until_ms.filter(|u| now_ms < *u) {
        return Ok(Basis::BreakGlass { until_ms });
    }
    Err(denial(actor, case, facts, now_ms))
}

/// May `actor` act on `case` at `now_ms`? Grace and break-glass allow reading only.
pub fn may_write_case(actor: &Actor, case: &Case, facts: &AccessFacts, now_ms: u64) -> Result<Basis, Denied> {
    match may_read_case(actor, case, facts, now_ms)? {
        b @ (Basis::Requester | Basis::CareFacility | Basis::Reader) => Ok(b),
        Basis::Grace { .. } => Err(Denied {
            case: case.id.clone(),
            reason: "the case is closed; the grace after close allows reading only".into(),
        }),
        Basis::BreakGlass { .. } => Err(Denied {
            case: case.id.clone(),
            reason:
                "break-glass access allows reading only; ask the requesting facility or the case's specialist"
                    .into(),
        }),
    }
}

/// May `actor` use `operation` on `case`?
pub fn authorize(
    actor: &Actor,
    case: &Case,
    facts: &AccessFacts,
    operation: CaseOperation,
    now_ms: u64,
) -> Result<Basis, Denied> {
    match operation {
        CaseOperation::Read => may_read_case(actor, case, facts, now_ms),
        CaseOperation::Write => may_write_case(actor, case, facts, now_ms),
    }
}

/// May `actor` open a break-glass grant at all? Only clinical roles treat patients.
pub fn may_break_glass(actor: &Actor) -> Result<(), String> {
    match actor.role {
        Role::ClinicStaff | Role::Specialist => Ok(()),
        other => Err(format!(
            "break-glass is for clinical staff treating the patient; the {other} role never opens case data"
        )),
    }
}

/// Access that follows from the referral itself (no grace, no break-glass).
fn standing_access(actor: &Actor, case: &Case, facts: &AccessFacts) -> Option<Basis> {
    match actor.role {
        Role::ClinicStaff => {
            let facility = actor.facility.as_ref()?;
            if *facility == case.origin {
                Some(Basis::Requester)
            } else if *facility == case.exam_facility || facts.transfer_facilities.contains(facility) {
                Some(Basis::CareFacility)
            } else {
                None
            }
        }
        Role::Specialist => {
            let is_owner = case.owner.as_ref().is_some_and(|o| o.0 == actor.id);
            (is_owner && case.is_open()).then_some(Basis::Reader)
        }
        Role::System => Some(Basis::Reader),
        Role::Ops | Role::Auditor | Role::Bureau | Role::Admin => None,
    }
}

fn denial(actor: &Actor, case: &Case, facts: &AccessFacts, now_ms: u64) -> Denied {
    let reason = match actor.role {
        Role::ClinicStaff => format!(
            "case `{}` belongs to facility `{}`; staff of other facilities see it only while caring for \
             the patient, or by break-glass with a reason",
            case.id, case.origin
        ),
        Role::Specialist => {
            let was_owner = case.owner.as_ref().is_some_and(|o| o.0 == actor.id);
            if was_owner && !case.is_open() {
                let ended = case.status_since_ms.saturating_add(facts.specialist_grace_ms);
                format!(
                    "the case closed and the grace for its specialist ended {} min ago; use break-glass with a reason if needed",
                    now_ms.saturating_sub(ended) / 60_000
                )
            } else {
                "the case is not offered to or owned by you; use break-glass with a reason if you must treat the patient"
                    .to_owned()
            }
        }
        Role::Ops => "ops see cluster and registry data but no patient data".to_owned(),
        Role::Auditor => "auditors see the audit trail, not case data".to_owned(),
        Role::Bureau => "the bureau sees aggregate figures only".to_owned(),
        Role::Admin => "admins manage users and tokens, not case data".to_owned(),
        Role::System => "the cluster itself".to_owned(),
    };
    Denied { case: case.id.clone(), reason }
}

/// A time-boxed opening of a case outside the access rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassGrant {
    /// Sequence number in the region, from 1.
    pub id: u64,
    /// The case.
    pub case: CaseId,
    /// Who opened it.
    pub actor: Actor,
    /// Why (required).
    pub reason: String,
    /// When it was opened.
    pub from_ms: u64,
    /// When it ends.
    pub until_ms: u64,
    /// Audit sequence of the end event, once the end is committed.
    pub ended_audit_seq: Option<u64>,
}

impl BreakGlassGrant {
    /// Whether the grant lets `actor` read at `now_ms`.
    pub fn opens_for(&self, actor: &Actor, now_ms: u64) -> bool {
        self.actor.role == actor.role && self.actor.id == actor.id && now_ms < self.until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Routing, SlaState, Vitals};
    use crate::patient::PatientKey;
    use crate::priority::Priority;
    use crate::specialist::SpecialistId;
    use crate::status::TaskStatus;

    fn case(status: TaskStatus, owner: &str, since: u64) -> Case {
        Case {
            id: CaseId("C1".into()),
            patient: PatientKey("k".into()),
            complaint: "c".into(),
            vitals: Vitals::default(),
            priority: Priority::Urgent,
            green_channel: None,
            specialty: "cardiology".into(),
            modality: None,
            origin: FacilityId("TS".into()),
            requester: "nurse".into(),
            exam_facility: FacilityId("TS".into()),
            preferred_target: None,
            created_at_ms: 0,
            status,
            status_since_ms: since,
            owner: Some(SpecialistId(owner.into())),
            routing: Routing::default(),
            sla: SlaState::default(),
            reports: Vec::new(),
            transfers: Vec::new(),
            history: Vec::new(),
        }
    }

    fn facts() -> AccessFacts {
        AccessFacts { specialist_grace_ms: 1000, ..AccessFacts::default() }
    }

    #[test]
    fn staff_of_the_origin_only() {
        let c = case(TaskStatus::Requested, "DR", 0);
        assert_eq!(may_read_case(&Actor::staff("n", "TS"), &c, &facts(), 5), Ok(Basis::Requester));
        let other = may_read_case(&Actor::staff("n", "TS2"), &c, &facts(), 5).expect_err("other facility");
        assert!(other.reason.contains("belongs to facility `TS`"));
        let receiving = AccessFacts { transfer_facilities: vec![FacilityId("TS2".into())], ..facts() };
        assert_eq!(may_read_case(&Actor::staff("n", "TS2"), &c, &receiving, 5), Ok(Basis::CareFacility));
    }

    #[test]
    fn specialists_while_owner_then_grace_then_nothing() {
        let dr = Actor::specialist("DR");
        assert_eq!(
            may_read_case(&dr, &case(TaskStatus::InProgress, "DR", 0), &facts(), 5),
            Ok(Basis::Reader)
        );
        assert!(may_read_case(&Actor::specialist("X"), &case(TaskStatus::InProgress, "DR", 0), &facts(), 5)
            .is_err());
        let closed = case(TaskStatus::Completed, "DR", 100);
        assert_eq!(may_read_case(&dr, &closed, &facts(), 1099), Ok(Basis::Grace { until_ms: 1100 }));
        assert!(may_write_case(&dr, &closed, &facts(), 1099).is_err(), "grace is read-only");
        assert!(may_read_case(&dr, &closed, &facts(), 1100)
            .expect_err("grace over")
            .reason
            .contains("grace"));
    }

    #[test]
    fn non_clinical_roles_never_open_cases_but_break_glass_does_for_clinicians() {
        let c = case(TaskStatus::Requested, "DR", 0);
        for actor in [Actor::ops("o"), Actor { role: Role::Auditor, id: "a".into(), facility: None }] {
            assert!(may_read_case(&actor, &c, &facts(), 5).is_err());
            assert!(may_break_glass(&actor).is_err());
        }
        let glass = AccessFacts { break_glass_until_ms: Some(50), ..facts() };
        let nurse = Actor::staff("n", "TS9");
        assert_eq!(may_read_case(&nurse, &c, &glass, 10), Ok(Basis::BreakGlass { until_ms: 50 }));
        assert!(may_write_case(&nurse, &c, &glass, 10).is_err());
        assert!(may_read_case(&nurse, &c, &glass, 50).is_err(), "the grant ends");
    }
}
