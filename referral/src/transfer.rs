//! Two-way referral of the patient: up to a higher tier, or down for rehab and follow-up.

use crate::actor::Actor;
use crate::case::CaseId;
use crate::facility::{Capacity, FacilityId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifier of a transfer (e.g. `T00000007`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferId(pub String);

impl TransferId {
    /// The id of the `seq`-th transfer in the region.
    pub fn from_sequence(seq: u64) -> Self {
        Self(format!("T{seq:08}"))
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way the patient moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// To a higher tier (上转).
    Up,
    /// Back to a lower tier for rehab or follow-up (下转).
    Down,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Sent, waiting for the receiving facility.
    Requested,
    /// The receiving facility will take the patient.
    Accepted,
    /// The receiving facility refused (e.g. at capacity).
    Rejected,
    /// Withdrawn by the sender.
    Cancelled,
    /// The patient arrived.
    Completed,
}

impl TransferStatus {
    /// Whether nothing more can happen to the transfer.
    pub fn is_closed(self) -> bool {
        matches!(self, TransferStatus::Rejected | TransferStatus::Cancelled | TransferStatus::Completed)
    }
}

impl fmt::Display for TransferStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferStatus::Requested => "requested",
            TransferStatus::Accepted => "accepted",
            TransferStatus::Rejected => "rejected",
            TransferStatus::Cancelled => "cancelled",
            TransferStatus::Completed => "completed",
        })
    }
}

/// A follow-up task that goes with a down-referred patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// What to do, e.g. "BP check", "rehab session".
    pub what: String,
    /// Days after arrival it is due.
    pub due_after_days: u16,
}

/// Why a receiving facility refused a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No capacity for the service now.
    AtCapacity,
    /// Another reason, in words.
    Other(String),
}

/// One change to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEvent {
    /// When.
    pub at_ms: u64,
    /// Who.
    pub actor: Actor,
    /// Status after.
    pub status: TransferStatus,
    /// Why, if given.
    pub reason: Option<String>,
}

/// A patient transfer between facilities, linked to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Identifier.
    pub id: TransferId,
    /// The case it belongs to.
    pub case: CaseId,
    /// Up or down.
    pub direction: Direction,
    /// Sending facility.
    pub from: FacilityId,
    /// Receiving facility.
    pub to: FacilityId,
    /// Service needed at the receiver (e.g. `cardiology-ward`, `rehab-stroke`).
    pub service: String,
    /// Requested admission slot (ms since the Unix epoch), for up-referrals.
    pub requested_slot_ms: Option<u64>,
    /// Capacity the receiver had declared when the transfer was sent.
    pub declared_capacity: Option<Capacity>,
    /// Follow-up tasks that go with the patient.
    pub follow_up: Vec<FollowUp>,
    /// Current status.
    pub status: TransferStatus,
    /// Why it was rejected, if it was.
    pub reject_reason: Option<RejectReason>,
    /// The nearest other facility that can take the patient, offered when this one refused.
    pub suggestion: Option<FacilityId>,
    /// Every change, oldest first.
    pub history: Vec<TransferEvent>,
}
