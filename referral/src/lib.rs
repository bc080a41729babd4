//! Yilian referral domain: facilities, specialists, cases and their lifecycle.
//!
//! Pure logic, no I/O. Every change to the region goes through [`Region::apply`], which is
//! deterministic given the command and the timestamp the leader stamped on it, so every Raft
//! replica that applies the same log reaches the same state.

pub mod case;
pub mod command;
pub mod error;
pub mod facility;
pub mod region;
pub mod specialist;

pub use case::{Case, CaseId, CaseStatus, Priority, Vitals};
pub use command::{CaseSubmission, Command, Outcome};
pub use error::DomainError;
pub use facility::{Facility, FacilityId, FacilityLevel};
pub use region::{Applied, Entity, EntityKey, Region};
pub use specialist::{Specialist, SpecialistId};
