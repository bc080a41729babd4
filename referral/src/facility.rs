//! Facilities: township clinics, county and provincial hospitals, with their devices and capacity.

use crate::modality::Modality;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// A position in micro-degrees (integers keep every replica's arithmetic identical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude × 10⁶.
    pub lat_e6: i32,
    /// Longitude × 10⁶.
    pub lon_e6: i32,
}

impl GeoPoint {
    /// Squared planar distance (longitude scaled for mid-latitudes), good enough to rank neighbours.
    pub fn distance_sq(&self, other: &GeoPoint) -> u128 {
        let dlat = i128::from(self.lat_e6) - i128::from(other.lat_e6);
        let dlon = (i128::from(self.lon_e6) - i128::from(other.lon_e6)) * 85 / 100;
        (dlat * dlat + dlon * dlon) as u128
    }
}

/// Whether a facility can take a patient for a service, as it declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    /// Can take patients now.
    Yes,
    /// Cannot take patients.
    No,
    /// Can take patients after a wait of about this many days.
    Waitlist {
        /// Expected wait band in days.
        days: u16,
    },
}

impl Capacity {
    /// Whether a patient may be sent (now or onto the waitlist).
    pub fn can_take(self) -> bool {
        !matches!(self, Capacity::No)
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capacity::Yes => f.write_str("yes"),
            Capacity::No => f.write_str("no"),
            Capacity::Waitlist { days } => write!(f, "waitlist ({days} days)"),
        }
    }
}

/// A declared capacity with when and by whom it was declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityDeclaration {
    /// What was declared.
    pub capacity: Capacity,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who declared it.
    pub by: String,
}

/// A device's state at a facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Whether the device can be used.
    pub in_service: bool,
    /// Why it is out of service, if it is.
    pub reason: Option<String>,
    /// When the status last changed.
    pub since_ms: u64,
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
    /// Region (county or province) the facility belongs to; readers are licensed per region.
    pub region: String,
    /// The facility one tier up that normally receives its referrals, if any.
    pub parent: Option<FacilityId>,
    /// Where it is, used to suggest the nearest facility.
    pub location: Option<GeoPoint>,
    /// Devices the facility has, and whether each is in service.
    pub devices: BTreeMap<Modality, DeviceStatus>,
    /// Declared capacity per service (e.g. `rehab-stroke`), used before sending a patient down.
    pub capacity: BTreeMap<String, CapacityDeclaration>,
}

impl Facility {
    /// Whether the facility has a working device of this modality.
    pub fn device_in_service(&self, modality: Modality) -> bool {
        self.devices.get(&modality).is_some_and(|d| d.in_service)
    }

    /// What the facility declared for `service` (undeclared counts as no).
    pub fn capacity_for(&self, service: &str) -> Option<Capacity> {
        self.capacity.get(service).map(|d| d.capacity)
    }
}
