//! Audit events written in the same replicated command as the change they record.

use crate::actor::Actor;
use crate::case::CaseId;
use crate::patient::PatientKey;
use serde::{Deserialize, Serialize};

/// The kind of access, as in ATNA/FHIR AuditEvent.action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// Create.
    C,
    /// Read.
    R,
    /// Update.
    U,
    /// Delete.
    D,
    /// Execute (system actions such as deadline consequences).
    E,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Sequence number in the region, from 1.
    pub seq: u64,
    /// When (ms since the Unix epoch, stamped by the leader).
    pub at_ms: u64,
    /// Event type, e.g. `case.owner-accepts-offer`, `transfer.request`, `facility.device`.
    pub event_type: String,
    /// C/R/U/D/E.
    pub action: AuditAction,
    /// Who.
    pub actor: Actor,
    /// The case concerned, if any.
    pub case: Option<CaseId>,
    /// Pseudonymous patient key concerned, if any.
    pub patient: Option<PatientKey>,
    /// Other object concerned (facility, specialist, transfer id), if any.
    pub object: Option<String>,
    /// Reason or detail given.
    pub detail: Option<String>,
}
