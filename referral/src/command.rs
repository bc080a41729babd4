//! Commands that change the region, and what they return.

use crate::actor::Actor;
use crate::audit::AccessRecord;
use crate::case::{CaseId, Vitals};
use crate::facility::{Capacity, FacilityId, FacilityLevel, GeoPoint};
use crate::lifecycle::CaseAction;
use crate::modality::Modality;
use crate::patient::PatientKey;
use crate::priority::{GreenChannel, Priority, RegionPolicy};
use crate::specialist::SpecialistId;
use crate::status::TaskStatus;
use crate::study::{HolderNode, InstanceBatch};
use crate::transfer::{Direction, FollowUp, RejectReason, TransferId, TransferStatus};
use crate::user::UserRegistration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Where a command came from, for the audit trail: the caller's network address and the
/// purpose of use they declared (both recorded on every audit event the command writes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provenance {
    /// The caller's network address, as the API saw it.
    pub source: Option<String>,
    /// The declared purpose of use (an HL7 PurposeOfUse code such as TREAT).
    pub purpose: Option<String>,
}

/// A change to the region by an actor. Commands are replicated through Raft and applied in log
/// order with the time the leader stamped on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Who asks for the change.
    pub actor: Actor,
    /// The change.
    pub change: Change,
    /// Where the command came from.
    pub provenance: Provenance,
}

impl Command {
    /// `change` issued by `actor`.
    pub fn new(actor: Actor, change: Change) -> Self {
        Self { actor, change, provenance: Provenance::default() }
    }

    /// The same command, recorded as coming from `provenance`.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = provenance;
        self
    }

    /// The leader's periodic deadline evaluation.
    pub fn tick() -> Self {
        Self::new(Actor::system(), Change::Tick)
    }
}

/// The changes the region accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Register a clinic or hospital (ops).
    RegisterFacility(FacilityRegistration),
    /// Register a specialist (ops).
    RegisterSpecialist(SpecialistRegistration),
    /// Set a region's SLA and routing policy (ops).
    SetPolicy {
        /// The region.
        region: String,
        /// The policy.
        policy: RegionPolicy,
    },
    /// A specialist goes on or off shift (the specialist or ops). Going on starts a new shift.
    SetShift {
        /// The specialist.
        specialist: SpecialistId,
        /// On shift or not.
        on_shift: bool,
    },
    /// A facility declares its capacity for a service (its staff or ops).
    DeclareCapacity {
        /// The facility.
        facility: FacilityId,
        /// The service, e.g. `rehab-stroke`.
        service: String,
        /// What it can take.
        capacity: Capacity,
    },
    /// A facility marks a device in or out of service (its staff or ops).
    SetDevice {
        /// The facility.
        facility: FacilityId,
        /// The device's modality.
        modality: Modality,
        /// Whether it works.
        in_service: bool,
        /// Why it is out of service.
        reason: Option<String>,
    },
    /// Clinic staff submit a case.
    SubmitCase(CaseSubmission),
    /// Someone acts on a case under the transition table.
    Case {
        /// The case.
        case: CaseId,
        /// What they do.
        action: CaseAction,
        /// Why (required by some rules).
        reason: Option<String>,
    },
    /// Request a patient transfer up or down.
    RequestTransfer(TransferRequest),
    /// Act on a transfer.
    Transfer {
        /// The transfer.
        transfer: TransferId,
        /// What is done.
        action: TransferAction,
    },
    /// A node stored instances of a case's study (the node itself, the sending staff, or ops).
    RecordInstances(InstanceBatch),
    /// The sender declares a study complete (staff of the case's facility, ops, or a node).
    CommitStudy {
        /// Study Instance UID.
        study_uid: String,
    },
    /// A node verified its copies of a study's instances (nodes only, after checking every hash).
    HoldStudyCopy {
        /// Study Instance UID.
        study_uid: String,
        /// The node.
        node: HolderNode,
        /// SOP Instance UIDs it verified.
        instances: Vec<String>,
    },
    /// The leader evaluates deadlines that have passed and commits their consequences.
    Tick,
    /// Create a user account (admin; the first admin may be created on an empty user table).
    AddUser(UserRegistration),
    /// Disable a user (admin): no more logins, and their sessions and API tokens are refused.
    DisableUser {
        /// The user.
        user: String,
    },
    /// Refuse every session of the user issued until now (the user themself, or admin).
    RevokeSessions {
        /// The user.
        user: String,
    },
    /// Create an API token for an integration acting as `user` (admin).
    CreateApiToken {
        /// Token id (its public part).
        id: String,
        /// The user it acts as.
        user: String,
        /// SHA-256 (hex) of the secret part.
        secret_hash: String,
        /// What it is for.
        label: String,
    },
    /// Revoke an API token (admin).
    RevokeApiToken {
        /// Token id.
        id: String,
    },
    /// Open a case outside the access rules, with a reason, for a limited time (clinical staff).
    BreakGlass {
        /// The case.
        case: CaseId,
        /// Why (required).
        reason: String,
        /// For how long, in minutes (1 to 1440).
        minutes: u32,
    },
    /// Reads served and accesses refused by a node, written to the audit trail (the cluster only).
    RecordAccess(Vec<AccessRecord>),
}

/// A facility to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityRegistration {
    /// Identifier.
    pub id: FacilityId,
    /// Display name.
    pub name: String,
    /// Tier.
    pub level: FacilityLevel,
    /// Region it belongs to.
    pub region: String,
    /// The facility one tier up.
    #[serde(default)]
    pub parent: Option<FacilityId>,
    /// Where it is.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// Devices it has (all in service at registration).
    #[serde(default)]
    pub devices: BTreeSet<Modality>,
}

fn default_cap() -> u32 {
    8
}

/// A specialist to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistRegistration {
    /// Identifier.
    pub id: SpecialistId,
    /// Display name.
    pub name: String,
    /// Facility.
    pub facility: FacilityId,
    /// Specialty.
    pub specialty: String,
    /// Modalities the specialist may read.
    #[serde(default)]
    pub modalities: BTreeSet<Modality>,
    /// Regions licensed for; empty means the facility's own region.
    #[serde(default)]
    pub licensed_regions: BTreeSet<String>,
    /// Most open cases at once (default 8).
    #[serde(default = "default_cap")]
    pub cap: u32,
    /// Whether the specialist starts on shift.
    #[serde(default)]
    pub on_shift: bool,
}

/// What a clinic sends when it submits a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSubmission {
    /// Pseudonymous patient key (computed by the node from the patient's ID).
    pub patient: PatientKey,
    /// Chief complaint.
    pub complaint: String,
    /// Vitals.
    #[serde(default)]
    pub vitals: Vitals,
    /// Urgency.
    pub priority: Priority,
    /// Green-channel pathway (forces STAT).
    #[serde(default)]
    pub green_channel: Option<GreenChannel>,
    /// Specialty needed.
    pub specialty: String,
    /// Modality to be read.
    #[serde(default)]
    pub modality: Option<Modality>,
    /// Submitting facility.
    pub origin: FacilityId,
    /// Preferred receiving facility, tried first.
    #[serde(default)]
    pub target: Option<FacilityId>,
    /// Keep as a draft instead of sending now.
    #[serde(default)]
    pub draft: bool,
}

/// A request to move a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The case.
    pub case: CaseId,
    /// Up or down.
    pub direction: Direction,
    /// Receiving facility.
    pub to: FacilityId,
    /// Sending facility; defaults to where the patient is (see the transfer rules).
    #[serde(default)]
    pub from: Option<FacilityId>,
    /// Service needed.
    pub service: String,
    /// Requested admission slot (up-referrals).
    #[serde(default)]
    pub slot_ms: Option<u64>,
    /// Follow-up tasks that go with the patient (down-referrals).
    #[serde(default)]
    pub follow_up: Vec<FollowUp>,
}

/// What can be done to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferAction {
    /// The receiver will take the patient (its staff).
    Accept,
    /// The receiver refuses (its staff), e.g. at capacity.
    Reject {
        /// Why.
        reason: RejectReason,
    },
    /// The sender withdraws it.
    Cancel {
        /// Why.
        reason: String,
    },
    /// The patient arrived (receiver's staff).
    Complete,
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
    /// A setting changed (policy, shift, capacity, device).
    Updated {
        /// What changed, in words.
        what: String,
        /// Cases moved as a consequence (device outage reroutes, unrouted cases now routed).
        cases_moved: Vec<CaseId>,
    },
    /// A case was created or moved.
    Case {
        /// The case id.
        case_id: CaseId,
        /// Its status now.
        status: TaskStatus,
        /// Its owner (offered or owning reader) now.
        owner: Option<SpecialistId>,
        /// Whether nobody eligible could be found.
        unrouted: bool,
    },
    /// A transfer was requested or moved.
    Transfer {
        /// Its id.
        transfer_id: TransferId,
        /// Its status now.
        status: TransferStatus,
        /// The nearest other facility that can take the patient, if this one refused.
        suggestion: Option<FacilityId>,
    },
    /// A study's manifest changed.
    Study {
        /// Study Instance UID.
        study_uid: String,
        /// The case it belongs to.
        case_id: CaseId,
        /// Instances in the manifest now.
        instances: usize,
        /// Whether the study is committed.
        committed: bool,
        /// Nodes holding a verified copy of every instance.
        holders: BTreeSet<HolderNode>,
    },
    /// Deadlines evaluated.
    Tick {
        /// Consequences committed (timeouts, breaches, escalations).
        consequences: u32,
    },
    /// A break-glass grant was opened.
    BreakGlass {
        /// Grant id.
        grant: u64,
        /// When it ends.
        until_ms: u64,
    },
    /// Accesses recorded in the audit trail.
    Recorded {
        /// Sequence number of the last event written.
        last_seq: u64,
    },
}
