//! Cases: what a clinic sends up, and what a specialist does with it.

use crate::facility::FacilityId;
use crate::specialist::SpecialistId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifier the cluster assigns to a case when it is submitted (e.g. `C00000042`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseId(pub String);

impl CaseId {
    /// The id of the `seq`-th case submitted in the region.
    pub fn from_sequence(seq: u64) -> Self {
        Self(format!("C{seq:08}"))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How fast the case must be seen. Ordered: `Routine < Urgent < Stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Routine referral.
    Routine,
    /// Urgent: seen within hours.
    Urgent,
    /// STAT "green channel" (stroke, chest pain): seen within minutes.
    Stat,
}

/// Where a case is in its lifecycle (a subset of FHIR Task status for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Submitted by the clinic, waiting for a specialist (FHIR `requested`).
    Submitted,
    /// Routed to a specialist who has not yet accepted (FHIR `received`).
    Assigned,
    /// The specialist accepted and is reading it (FHIR `in-progress`).
    Accepted,
    /// The specialist wrote a report.
    Reported,
    /// Closed (FHIR `completed`).
    Completed,
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CaseStatus::Submitted => "submitted",
            CaseStatus::Assigned => "assigned",
            CaseStatus::Accepted => "accepted",
            CaseStatus::Reported => "reported",
            CaseStatus::Completed => "completed",
        };
        f.write_str(s)
    }
}

/// Vital signs recorded at the clinic. Every field is optional; units are fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: Option<u16>,
    /// Systolic blood pressure, mmHg.
    pub systolic_mmhg: Option<u16>,
    /// Diastolic blood pressure, mmHg.
    pub diastolic_mmhg: Option<u16>,
    /// Oxygen saturation, percent.
    pub spo2_percent: Option<u8>,
    /// Body temperature, tenths of a degree Celsius (e.g. 372 = 37.2 °C).
    pub temperature_decicelsius: Option<u16>,
}

/// One entry in a case's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When it happened (ms since the Unix epoch, stamped by the Raft leader).
    pub at_ms: u64,
    /// Status after the event.
    pub status: CaseStatus,
    /// Who did it (facility or specialist id).
    pub actor: String,
}

/// A referral case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Identifier.
    pub id: CaseId,
    /// Pseudonymous patient reference from the clinic's record system. Never log it.
    pub patient_ref: String,
    /// Chief complaint.
    pub complaint: String,
    /// Vitals at the clinic.
    pub vitals: Vitals,
    /// Urgency.
    pub priority: Priority,
    /// Submitting facility.
    pub origin: FacilityId,
    /// Receiving facility.
    pub target: FacilityId,
    /// Specialist the case is routed to, once assigned.
    pub specialist: Option<SpecialistId>,
    /// Current status.
    pub status: CaseStatus,
    /// The specialist's report, once written.
    pub report: Option<String>,
    /// Submission time (ms since the Unix epoch).
    pub submitted_at_ms: u64,
    /// Every status change, oldest first.
    pub history: Vec<CaseEvent>,
}
