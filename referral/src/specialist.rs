//! Specialists who read cases at county and provincial hospitals.

use crate::facility::FacilityId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable identifier of a specialist (e.g. the staff number `CTY1-CARD-01`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecialistId(pub String);

impl fmt::Display for SpecialistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registered specialist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specialist {
    /// Identifier.
    pub id: SpecialistId,
    /// Display name.
    pub name: String,
    /// Facility the specialist works at.
    pub facility: FacilityId,
    /// Specialty, e.g. "cardiology", "neurology", "radiology".
    pub specialty: String,
}
