//! Cases: what a clinic sends up, and everything that has happened to it since.

use crate::actor::Actor;
use crate::facility::FacilityId;
use crate::modality::Modality;
use crate::patient::PatientKey;
use crate::priority::{GreenChannel, Priority};
use crate::specialist::SpecialistId;
use crate::status::TaskStatus;
use crate::transfer::TransferId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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

/// Vital signs recorded at the clinic. Every field is optional; units are fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// One entry in a case's history; every transition and deadline consequence writes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When it happened (ms since the Unix epoch, stamped by the Raft leader).
    pub at_ms: u64,
    /// Who did it.
    pub actor: Actor,
    /// The rule or action name, e.g. `owner-accepts-offer`, `offer-timeout`, `routed`.
    pub rule: String,
    /// Status before.
    pub from: TaskStatus,
    /// Status after.
    pub to: TaskStatus,
    /// Owner (offered or owning reader) after the event.
    pub owner: Option<SpecialistId>,
    /// Why, if a reason was given.
    pub reason: Option<String>,
    /// Sequence number of the audit event written with it.
    pub audit_seq: u64,
}

/// One offer made to a reader, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// The reader.
    pub specialist: SpecialistId,
    /// When it was offered.
    pub at_ms: u64,
    /// Step of the routing ladder it was made at (0 = the case's own medical community).
    pub step: u32,
    /// How it ended, once it has.
    pub outcome: Option<OfferOutcome>,
}

/// How an offer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    /// Taken by the reader (or by rule, for STAT auto-ready).
    Accepted,
    /// Declined by the reader.
    Declined,
    /// Not answered in time.
    TimedOut,
    /// Withdrawn by escalation, preemption, reassignment or a closing transition.
    Withdrawn,
}

/// Where a case stands in routing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// Current step of the ladder.
    pub step: u32,
    /// When the current offer lapses, if one is open.
    pub offer_deadline_ms: Option<u64>,
    /// Readers who declined or let an offer lapse; not offered this case again by the router.
    pub passed_over: BTreeSet<SpecialistId>,
    /// Since when nobody eligible could be found, if that is the case now.
    pub unrouted_since_ms: Option<u64>,
    /// Every offer made, oldest first.
    pub offers: Vec<OfferRecord>,
}

/// Which SLA clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    /// Request to acceptance.
    Accept,
    /// Acceptance to report.
    Report,
}

/// A missed deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreach {
    /// Request round it belongs to (0 = first request, +1 per reopen).
    pub round: u32,
    /// Which clock.
    pub clock: SlaClock,
    /// When it was due.
    pub due_ms: u64,
    /// When the breach was committed.
    pub at_ms: u64,
}

/// The case's SLA clocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaState {
    /// Request round: 0 for the first request, incremented on every reopen.
    pub round: u32,
    /// When the current request started (submission or reopen).
    pub requested_at_ms: u64,
    /// When acceptance is due.
    pub accept_due_ms: u64,
    /// When it was accepted (or made ready), if it has been.
    pub accepted_at_ms: Option<u64>,
    /// When the report is due, once accepted.
    pub report_due_ms: Option<u64>,
    /// When the report was filed.
    pub reported_at_ms: Option<u64>,
    /// Missed deadlines, oldest first (each clock breaches at most once per request).
    pub breaches: Vec<SlaBreach>,
}

impl SlaState {
    /// Whether `clock` has breached in the current request.
    pub fn breached(&self, clock: SlaClock) -> bool {
        self.breaches.iter().any(|b| b.clock == clock && b.round == self.round)
    }
}

/// A filed report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Findings and recommendation (advice to the requesting facility, which keeps responsibility).
    pub text: String,
    /// Who wrote it.
    pub by: SpecialistId,
    /// When.
    pub at_ms: u64,
}

/// A referral case (FHIR Task + ServiceRequest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Identifier.
    pub id: CaseId,
    /// Pseudonymous patient key. Never log it in full.
    pub patient: PatientKey,
    /// Chief complaint.
    pub complaint: String,
    /// Vitals at the clinic.
    pub vitals: Vitals,
    /// Urgency.
    pub priority: Priority,
    /// Green-channel pathway, if any.
    pub green_channel: Option<GreenChannel>,
    /// Specialty needed to read it.
    pub specialty: String,
    /// Modality to be read, if any.
    pub modality: Option<Modality>,
    /// Requesting facility (keeps clinical responsibility).
    pub origin: FacilityId,
    /// Staff member who requested it.
    pub requester: String,
    /// Where the examination is performed (moves when the device there is out of service).
    pub exam_facility: FacilityId,
    /// Facility the requester asked for, tried before the usual ladder.
    pub preferred_target: Option<FacilityId>,
    /// Creation time.
    pub created_at_ms: u64,
    /// Current status.
    pub status: TaskStatus,
    /// When the current status began.
    pub status_since_ms: u64,
    /// The reader it is offered to (requested/received) or owned by (later statuses).
    pub owner: Option<SpecialistId>,
    /// Routing state.
    pub routing: Routing,
    /// SLA clocks.
    pub sla: SlaState,
    /// Reports filed, oldest first (a reopened case may get another).
    pub reports: Vec<Report>,
    /// Patient transfers linked to this case.
    pub transfers: Vec<TransferId>,
    /// Every event, oldest first.
    pub history: Vec<CaseEvent>,
}

impl Case {
    /// Whether the case is open (neither draft nor closed).
    pub fn is_open(&self) -> bool {
        self.status != TaskStatus::Draft && !self.status.is_terminal()
    }

    /// Whether nobody eligible could be found and it waits for ops.
    pub fn is_unrouted(&self) -> bool {
        self.routing.unrouted_since_ms.is_some()
    }

    /// Workload units of reading this case.
    pub fn workload_units(&self) -> u32 {
        self.modality.map_or(1, |m| m.workload_units())
    }

    /// The earliest deadline still running on this case, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        let mut next: Option<u64> = None;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if self.status.is_offer_stage() {
            if let Some(t) = self.routing.offer_deadline_ms {
                consider(t);
            }
            if self.sla.accepted_at_ms.is_none() && !self.sla.breached(SlaClock::Accept) {
                consider(self.sla.accept_due_ms);
            }
        }
        if let Some(due) = self.sla.report_due_ms {
            if self.sla.reported_at_ms.is_none() && !self.sla.breached(SlaClock::Report) {
                consider(due);
            }
        }
        next
    }
}
