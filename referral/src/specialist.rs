//! Specialists who read cases at county and provincial hospitals, with their privileges and shifts.

use crate::facility::FacilityId;
use crate::modality::Modality;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
    /// Modalities the specialist is privileged to read.
    pub modalities: BTreeSet<Modality>,
    /// Regions the specialist is licensed to read for.
    pub licensed_regions: BTreeSet<String>,
    /// Most open cases (offered or owned) at once; STAT cases may exceed it.
    pub cap: u32,
    /// Whether the specialist is on shift and can be offered cases.
    pub on_shift: bool,
    /// When the current (or last) shift started.
    pub shift_started_ms: Option<u64>,
    /// Workload units accepted in the current shift (routine balancing key).
    pub shift_load: u32,
}
