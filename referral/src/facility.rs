//! Facilities: township clinics, county and provincial hospitals.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable identifier of a facility, chosen by the region's administrator (e.g. `TS-LIJIA`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FacilityId(pub String);

impl fmt::Display for FacilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tier of a facility in the county medical community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FacilityLevel {
    /// Village clinic or township health centre (基层).
    Township,
    /// County hospital.
    County,
    /// Provincial hospital.
    Provincial,
}

/// A registered facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facility {
    /// Identifier.
    pub id: FacilityId,
    /// Display name, e.g. "李家镇卫生院".
    pub name: String,
    /// Tier.
    pub level: FacilityLevel,
    /// Region (county or province) the facility belongs to.
    pub region: String,
    /// The facility one tier up that normally receives its referrals, if any.
    pub parent: Option<FacilityId>,
}
