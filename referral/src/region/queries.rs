//! Read-only views: case search, a reader's worklist, and capacity search for down-referral.

use super::routing::distance;
use super::Region;
use crate::case::Case;
use crate::facility::{Capacity, FacilityId, FacilityLevel};
use crate::patient::PatientKey;
use crate::priority::Priority;
use crate::specialist::SpecialistId;
use crate::status::TaskStatus;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;

/// Micro-degrees of latitude per kilometre (approximately).
const MICRODEG_PER_KM: f64 = 1e6 / 111.0;

/// Which cases to list. Unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFilter {
    /// Status.
    pub status: Option<TaskStatus>,
    /// Owner (offered or owning reader).
    pub owner: Option<SpecialistId>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Requesting facility.
    pub origin: Option<FacilityId>,
    /// Only unrouted (true) or only routed (false) cases.
    pub unrouted: Option<bool>,
    /// Patient key.
    pub patient: Option<PatientKey>,
}

impl CaseFilter {
    /// Whether `case` matches.
    pub fn matches(&self, case: &Case) -> bool {
        self.status.is_none_or(|s| case.status == s)
            && self.owner.as_ref().is_none_or(|o| case.owner.as_ref() == Some(o))
            && self.priority.is_none_or(|p| case.priority == p)
            && self.origin.as_ref().is_none_or(|o| case.origin == *o)
            && self.unrouted.is_none_or(|u| case.is_unrouted() == u)
            && self.patient.as_ref().is_none_or(|p| case.patient == *p)
    }
}

/// A facility that declared capacity for a service, with its distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityOption {
    /// The facility.
    pub facility: FacilityId,
    /// Its name.
    pub name: String,
    /// Its tier.
    pub level: FacilityLevel,
    /// What it declared.
    pub capacity: Capacity,
    /// Straight-line distance from the reference facility in km (to 0.1 km), if both positions
    /// are known.
    pub distance_km: Option<f64>,
}

impl Region {
    /// Cases matching `filter`, by id.
    pub fn find_cases<'a>(&'a self, filter: &'a CaseFilter) -> impl Iterator<Item = &'a Case> + 'a {
        self.cases.values().filter(move |c| filter.matches(c))
    }

    /// A reader's worklist: open cases offered to or owned by them, most urgent first, then the
    /// earliest deadline.
    pub fn worklist(&self, specialist: &SpecialistId) -> Vec<&Case> {
        let mut cases: Vec<&Case> =
            self.index.open_cases_of(specialist).filter_map(|id| self.cases.get(id)).collect();
        cases.sort_by_key(|c| (Reverse(c.priority), c.next_deadline().unwrap_or(u64::MAX), c.id.clone()));
        cases
    }

    /// Facilities that can take a patient for `service` (declared yes or waitlist), nearest to
    /// `near` first. Carries no patient identity.
    pub fn capacity_options(&self, service: &str, near: &FacilityId) -> Vec<CapacityOption> {
        let origin = self.facilities.get(near).and_then(|f| f.location);
        let mut out: Vec<(u128, CapacityOption)> = self
            .facilities
            .values()
            .filter_map(|f| {
                let capacity = f.capacity_for(service).filter(|c| c.can_take())?;
                let d = distance(origin, f.location);
                let km =
                    (d != u128::MAX).then(|| ((d as f64).sqrt() / MICRODEG_PER_KM * 10.0).round() / 10.0);
                let option = CapacityOption {
                    facility: f.id.clone(),
                    name: f.name.clone(),
                    level: f.level,
                    capacity,
                    distance_km: km,
                };
                Some((d, option))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.facility.cmp(&b.1.facility)));
        out.into_iter().map(|(_, o)| o).collect()
    }

    /// The nearest facility to `near` whose tier satisfies `fits`, that declared it can take
    /// patients for `service`, other than those in `exclude`.
    pub fn nearest_with_capacity(
        &self,
        service: &str,
        near: &FacilityId,
        fits: impl Fn(FacilityLevel) -> bool,
        exclude: &[&FacilityId],
    ) -> Option<FacilityId> {
        let origin = self.facilities.get(near).and_then(|f| f.location);
        self.facilities
            .values()
            .filter(|f| !exclude.contains(&&f.id) && fits(f.level))
            .filter(|f| f.capacity_for(service).is_some_and(Capacity::can_take))
            .min_by_key(|f| {
                (distance(origin, f.location), f.capacity_for(service) != Some(Capacity::Yes), f.id.clone())
            })
            .map(|f| f.id.clone())
    }
}
