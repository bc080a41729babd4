//! Yilian referral domain: facilities, specialists, cases, routing, SLA clocks, transfers and the
//! audit trail.
//!
//! Pure logic, no I/O and no clock of its own. Every change to the region goes through
//! [`Region::apply`], which is deterministic given the command and the time the Raft leader
//! stamped on it, so every replica that applies the same log reaches the same state.

pub mod access;
pub mod actor;
pub mod audit;
pub mod case;
pub mod codec;
pub mod command;
pub mod error;
pub mod facility;
pub mod figures;
pub mod lifecycle;
pub mod modality;
pub mod patient;
pub mod priority;
pub mod region;
pub mod specialist;
pub mod status;
pub mod study;
pub mod transfer;
pub mod user;
pub mod wire;

pub use access::{AccessFacts, Basis, BreakGlassGrant, CaseOperation, Denied};
pub use actor::{Actor, Role};
pub use audit::{verify_chain, AccessRecord, AuditAction, AuditEvent, AuditOutcome, ChainError};
pub use case::{Case, CaseId, SlaClock, Vitals};
pub use command::{
    CaseSubmission, Change, Command, FacilityRegistration, Outcome, Provenance, SpecialistRegistration,
    TransferAction, TransferRequest,
};
pub use error::DomainError;
pub use facility::{Capacity, Facility, FacilityId, FacilityLevel, GeoPoint};
pub use figures::Figures;
pub use lifecycle::CaseAction;
pub use modality::Modality;
pub use patient::PatientKey;
pub use priority::{GreenChannel, Priority, RegionPolicy, SlaTargets};
pub use region::{
    AccessError, Applied, CapacityOption, CaseFilter, DeidentifyWant, Entity, EntityKey, EntityRef,
    Ineligible, PrefetchWant, Region, MAX_INSTANCES_PER_BATCH,
};
pub use specialist::{Specialist, SpecialistId};
pub use status::TaskStatus;
pub use study::{is_dicom_uid, HolderNode, InstanceBatch, InstanceRecord, ManifestInstance, StudyManifest};
pub use transfer::{Direction, Transfer, TransferId, TransferStatus};
pub use user::{ApiToken, User, UserRegistration, UserSummary};
