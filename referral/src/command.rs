//! Commands that change the region, and what they return.

use crate::case::{CaseId, CaseStatus, Priority, Vitals};
use crate::facility::{Facility, FacilityId};
use crate::specialist::{Specialist, SpecialistId};
use serde::{Deserialize, Serialize};

/// A change to the region. Commands are replicated through Raft and applied in log order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Register a clinic or hospital.
    RegisterFacility(Facility),
    /// Register a specialist at a hospital.
    RegisterSpecialist(Specialist),
    /// A clinic submits a case.
    SubmitCase(CaseSubmission),
    /// Route a case to a specialist at the receiving facility.
    Assign {
        /// The case.
        case: CaseId,
        /// The specialist.
        specialist: SpecialistId,
    },
    /// The assigned specialist accepts the case.
    Accept {
        /// The case.
        case: CaseId,
        /// The specialist accepting.
        specialist: SpecialistId,
    },
    /// The specialist files a report.
    Report {
        /// The case.
        case: CaseId,
        /// The specialist reporting.
        specialist: SpecialistId,
        /// Findings and recommendation.
        findings: String,
    },
    /// The specialist closes the case.
    Complete {
        /// The case.
        case: CaseId,
        /// The specialist completing.
        specialist: SpecialistId,
    },
}

/// What a clinic sends when it submits a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSubmission {
    /// Pseudonymous patient reference.
    pub patient_ref: String,
    /// Chief complaint.
    pub complaint: String,
    /// Vitals.
    #[serde(default)]
    pub vitals: Vitals,
    /// Urgency.
    pub priority: Priority,
    /// Submitting facility.
    pub origin: FacilityId,
    /// Receiving facility; defaults to the origin's parent.
    #[serde(default)]
    pub target: Option<FacilityId>,
}

/// What an accepted command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A facility or specialist was registered.
    Registered {
        /// Its id.
        id: String,
    },
    /// A case moved to a new status (or was created).
    Case {
        /// The case id.
        case_id: CaseId,
        /// Its status now.
        status: CaseStatus,
    },
}
