//! Audit events written in the same replicated command as the change they record.
//!
//! The trail is append-only and hash-chained: each event carries the hash of the one before it,
//! and its own hash covers every field plus that link, so an altered, removed or reordered
//! event breaks the chain at a place [`verify_chain`] names. Events are never deleted, which
//! keeps them well beyond the six months the rules ask for ([`RETENTION_DAYS_MIN`]).
//!
//! Reads of case data and refused accesses are recorded too (see [`AccessRecord`]), with the
//! caller's network address and purpose of use.

use crate::actor::Actor;
use crate::case::CaseId;
use crate::patient::PatientKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest retention of audit events the rules allow (等保 level 3: at least six months). The
/// trail is append-only and never purged, so it is kept longer than this.
pub const RETENTION_DAYS_MIN: u32 = 183;

/// Whether the recorded action was carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done.
    #[default]
    Success,
    /// Refused by an access rule.
    Denied,
}

/// A read or a refused access, recorded by the node that served (or refused) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Who asked.
    pub actor: Actor,
    /// Event type, e.g. `case.read`, `case.read-denied`.
    pub event_type: String,
    /// C/R/U/D/E of what was asked.
    pub action: AuditAction,
    /// Served or refused.
    pub outcome: AuditOutcome,
    /// The case concerned, if any.
    pub case: Option<CaseId>,
    /// The study concerned, if any (DICOM Study Instance UID).
    pub study: Option<String>,
    /// Other object concerned (e.g. a transfer id).
    pub object: Option<String>,
    /// The caller's network address.
    pub source: Option<String>,
    /// Purpose of use (HL7 PurposeOfUse code, e.g. TREAT, ETREAT).
    pub purpose: Option<String>,
    /// Why access was granted or refused.
    pub detail: Option<String>,
}

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// Served or refused.
    pub outcome: AuditOutcome,
    /// The study concerned, if any.
    pub study: Option<String>,
    /// The caller's network address, when recorded by the API.
    pub source: Option<String>,
    /// Purpose of use, when recorded by the API.
    pub purpose: Option<String>,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) over this event's fields and `prev_hash`.
    pub hash: String,
}

/// The fields an event's hash covers (everything but the hash itself), in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at_ms: u64,
    event_type: &'a str,
    action: AuditAction,
    actor: &'a Actor,
    case: &'a Option<CaseId>,
    patient: &'a Option<PatientKey>,
    object: &'a Option<String>,
    detail: &'a Option<String>,
    outcome: AuditOutcome,
    study: &'a Option<String>,
    source: &'a Option<String>,
    purpose: &'a Option<String>,
    prev_hash: &'a str,
}

impl AuditEvent {
    /// The hash this event should carry, computed from its other fields.
    pub fn compute_hash(&self) -> String {
        let content = Hashed {
            seq: self.seq,
            at_ms: self.at_ms,
            event_type: &self.event_type,
            action: self.action,
            actor: &self.actor,
            case: &self.case,
            patient: &self.patient,
            object: &self.object,
            detail: &self.detail,
            outcome: self.outcome,
            study: &self.study,
            source: &self.source,
            purpose: &self.purpose,
            prev_hash: &self.prev_hash,
        };
        let mut hasher = Sha256::new();
        // Serialising plain data to JSON cannot fail; an empty input would still be hashed.
        hasher.update(serde_json::to_vec(&content).unwrap_or_default());
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where an audit trail stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An event is missing (sequence numbers jump).
    #[error("audit event {expected} is missing (found {found} next); the trail was cut — restore it from another node or a backup")]
    Missing {
        /// The sequence number expected.
        expected: u64,
        /// The one found instead.
        found: u64,
    },
    /// An event's content does not match its hash.
    #[error("audit event {seq} was altered: its content no longer matches its hash")]
    Altered {
        /// The event.
        seq: u64,
    },
    /// An event does not link to the hash of the one before.
    #[error("audit event {seq} does not link to event {}: the trail was edited or reordered", .seq - 1)]
    Broken {
        /// The event.
        seq: u64,
    },
}

/// Check a whole trail, oldest first; returns how many events were verified.
pub fn verify_chain<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> Result<u64, ChainError> {
    let mut prev = GENESIS_HASH.to_owned();
    let mut expected = 1;
    for e in events {
        if e.seq != expected {
            return Err(ChainError::Missing { expected, found: e.seq });
        }
        if e.prev_hash != prev {
            return Err(ChainError::Broken { seq: e.seq });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Altered { seq: e.seq });
        }
        prev.clone_from(&e.hash);
        expected += 1;
    }
    Ok(expected - 1)
}
