//! Case status, modelled on FHIR R4 `Task.status`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a case is in its lifecycle. Codes are FHIR R4 Task status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Being prepared by the requester; not yet actionable.
    Draft,
    /// Submitted; offered to a reader (owner set) or waiting for one (unrouted).
    Requested,
    /// The offered reader has seen the offer but not decided.
    Received,
    /// The reader accepted the case.
    Accepted,
    /// The reader rejected the case as not suitable for remote reading (terminal).
    Rejected,
    /// Assigned and accepted by rule (STAT auto-accept).
    Ready,
    /// The reader is working on it.
    InProgress,
    /// Paused.
    OnHold,
    /// Done (terminal).
    Completed,
    /// Withdrawn (terminal).
    Cancelled,
    /// Could not be done (terminal).
    Failed,
    /// Created in error (terminal).
    EnteredInError,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 12] = [
        TaskStatus::Draft,
        TaskStatus::Requested,
        TaskStatus::Received,
        TaskStatus::Accepted,
        TaskStatus::Rejected,
        TaskStatus::Ready,
        TaskStatus::InProgress,
        TaskStatus::OnHold,
        TaskStatus::Completed,
        TaskStatus::Cancelled,
        TaskStatus::Failed,
        TaskStatus::EnteredInError,
    ];

    /// The FHIR code, e.g. `in-progress`.
    pub fn code(self) -> &'static str {
        match self {
            TaskStatus::Draft => "draft",
            TaskStatus::Requested => "requested",
            TaskStatus::Received => "received",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Rejected => "rejected",
            TaskStatus::Ready => "ready",
            TaskStatus::InProgress => "in-progress",
            TaskStatus::OnHold => "on-hold",
            TaskStatus::Completed => "completed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Failed => "failed",
            TaskStatus::EnteredInError => "entered-in-error",
        }
    }

    /// Parse a FHIR code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether the case is closed (only an audited reopen moves it again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Cancelled
                | TaskStatus::Failed
                | TaskStatus::Rejected
                | TaskStatus::EnteredInError
        )
    }

    /// Whether the case waits for a reader to take it (offered or unrouted).
    pub fn is_offer_stage(self) -> bool {
        matches!(self, TaskStatus::Requested | TaskStatus::Received)
    }

    /// Whether a reader owns the case and is working on it.
    pub fn is_owned_stage(self) -> bool {
        matches!(self, TaskStatus::Accepted | TaskStatus::Ready | TaskStatus::InProgress | TaskStatus::OnHold)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
