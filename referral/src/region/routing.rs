//! Routing: the tier ladder, reader eligibility, choosing a reader, offers, preemption and reroutes.

use super::index::Load;
use super::Region;
use crate::actor::Actor;
use crate::case::{Case, CaseId, OfferOutcome, OfferRecord};
use crate::facility::{FacilityId, FacilityLevel};
use crate::modality::Modality;
use crate::priority::Priority;
use crate::specialist::{Specialist, SpecialistId};
use crate::status::TaskStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Longest parent chain followed when building the ladder (guards against misconfiguration).
const MAX_LADDER_DEPTH: usize = 8;

/// Why a reader cannot take a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    /// Another specialty.
    WrongSpecialty,
    /// Not privileged for the case's modality.
    NoModalityPrivilege,
    /// Off shift.
    OffShift,
    /// Not licensed for the case's region.
    NotLicensed,
    /// At the cap of open cases (STAT cases are exempt).
    AtCap,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ineligible::WrongSpecialty => "their specialty differs from the case's",
            Ineligible::NoModalityPrivilege => "they are not privileged for the case's modality",
            Ineligible::OffShift => "they are off shift",
            Ineligible::NotLicensed => "they are not licensed for the case's region",
            Ineligible::AtCap => "they are at their cap of open cases",
        })
    }
}

impl Region {
    /// The facilities to try for `case`, step by step: the requester's preferred target, then
    /// the head of its medical community, then each tier above it.
    pub fn ladder(&self, case: &Case) -> Vec<Vec<FacilityId>> {
        let mut seen = BTreeSet::new();
        let mut steps = Vec::new();
        if let Some(t) = &case.preferred_target {
            seen.insert(t.clone());
            steps.push(vec![t.clone()]);
        }
        let mut next = Some(self.community_head(&case.origin));
        for _ in 0..MAX_LADDER_DEPTH {
            let Some(id) = next.take() else { break };
            next = self.facilities.get(&id).and_then(|f| f.parent.clone());
            if seen.insert(id.clone()) {
                steps.push(vec![id]);
            }
        }
        steps
    }

    /// The hospital heading the medical community of `facility` (its nearest ancestor at county
    /// level or above; itself for a hospital).
    pub fn community_head(&self, facility: &FacilityId) -> FacilityId {
        let mut current = facility.clone();
        for _ in 0..MAX_LADDER_DEPTH {
            match self.facilities.get(&current) {
                Some(f) if f.level < FacilityLevel::County => match &f.parent {
                    Some(p) => current = p.clone(),
                    None => break,
                },
                _ => break,
            }
        }
        current
    }

    /// Whether `specialist` could be offered `case` now (ignoring who already passed on it).
    pub fn eligibility(&self, case: &Case, specialist: &Specialist) -> Result<(), Ineligible> {
        if specialist.specialty != case.specialty {
            return Err(Ineligible::WrongSpecialty);
        }
        if case.modality.is_some_and(|m: Modality| !specialist.modalities.contains(&m)) {
            return Err(Ineligible::NoModalityPrivilege);
        }
        if !specialist.on_shift {
            return Err(Ineligible::OffShift);
        }
        let region = self.facilities.get(&case.origin).map(|f| f.region.as_str()).unwrap_or_default();
        if !specialist.licensed_regions.contains(region) {
            return Err(Ineligible::NotLicensed);
        }
        if case.priority != Priority::Stat && self.load(&specialist.id, &case.id).open >= specialist.cap {
            return Err(Ineligible::AtCap);
        }
        Ok(())
    }

    /// `specialist`'s current load, not counting `excluding` (the case being routed).
    pub(super) fn load(&self, specialist: &SpecialistId, excluding: &CaseId) -> Load {
        let mut load = self.index.load_of(specialist);
        if self.index.owns_open(specialist, excluding) {
            if let Some(c) = self.cases.get(excluding) {
                load.remove(c);
            }
        }
        load
    }

    fn routable(&self, case: &Case, s: &Specialist) -> bool {
        !case.routing.passed_over.contains(&s.id) && self.eligibility(case, s).is_ok()
    }

    /// The reader to offer `case` to, and the ladder step they are at, starting at `from_step`.
    pub(super) fn choose_reader(&self, case: &Case, from_step: u32) -> Option<(SpecialistId, u32)> {
        let ladder = self.ladder(case);
        let step_of = |f: &FacilityId| ladder.iter().position(|step| step.contains(f)).map(|p| p as u32);
        // A patient's open cases stay with one reader: the owner of their earliest other open
        // case that fits, each owner looked at once.
        for owner in self.index.owners_of_patient(&case.patient, &case.id) {
            if let Some(s) = self.specialists.get(owner) {
                if let Some(step) = step_of(&s.facility).filter(|st| *st >= from_step) {
                    if self.routable(case, s) {
                        return Some((s.id.clone(), step));
                    }
                }
            }
        }
        for (step, facilities) in ladder.iter().enumerate().skip(from_step as usize) {
            let best = self
                .specialists
                .values()
                .filter(|s| facilities.contains(&s.facility) && self.routable(case, s))
                .min_by_key(|s| {
                    let load = self.load(&s.id, &case.id);
                    if case.priority == Priority::Stat {
                        (load.stat, load.open_units, s.shift_load)
                    } else {
                        (s.shift_load + load.open_units, load.stat, load.open)
                    }
                });
            if let Some(s) = best {
                return Some((s.id.clone(), step as u32));
            }
        }
        None
    }

    /// Offer `case` to the best reader from `from_step` on, or flag it unrouted; store it. A STAT
    /// case offered to a reader at their cap preempts that reader's newest pending routine offer.
    pub(super) fn route_case(&mut self, now: u64, mut case: Case, from_step: u32) {
        let system = Actor::system();
        match self.choose_reader(&case, from_step) {
            Some((reader, step)) => {
                let over_cap = case.priority == Priority::Stat
                    && self
                        .specialists
                        .get(&reader)
                        .is_some_and(|s| self.load(&reader, &case.id).open >= s.cap);
                self.offer(now, &system, &mut case, (&reader, step), "routed", None);
                self.put_case(case);
                if over_cap {
                    if let Some(victim) = self.preemption_victim(&reader) {
                        self.withdraw_offer_and_reroute(
                            now,
                            &system,
                            &victim,
                            OfferOutcome::Withdrawn,
                            "preempted-by-stat",
                            None,
                        );
                    }
                }
            }
            None => {
                case.owner = None;
                case.routing.offer_deadline_ms = None;
                if case.routing.unrouted_since_ms.is_none() {
                    case.routing.unrouted_since_ms = Some(now);
                    let reason = "nobody eligible on the ladder; ops must assign a reader";
                    self.record(now, &system, &mut case, "unrouted", TaskStatus::Requested, Some(reason));
                }
                self.put_case(case);
            }
        }
    }

    /// Make `reader` the case's owner with a fresh offer (or, for STAT under an auto-ready policy,
    /// accept it by rule). Records the event; the caller stores the case.
    pub(super) fn offer(
        &mut self,
        now: u64,
        actor: &Actor,
        case: &mut Case,
        (reader, step): (&SpecialistId, u32),
        rule: &str,
        reason: Option<&str>,
    ) {
        let policy = self.policy_for_case(case);
        let targets = policy.targets(case.priority);
        case.owner = Some(reader.clone());
        case.routing.step = step;
        case.routing.unrouted_since_ms = None;
        case.routing.offers.push(OfferRecord { specialist: reader.clone(), at_ms: now, step, outcome: None });
        let detail = reason
            .map(str::to_owned)
            .unwrap_or_else(|| format!("offered to `{reader}` at ladder step {step}"));
        if policy.stat_auto_ready && case.priority == Priority::Stat && case.sla.accepted_at_ms.is_none() {
            self.take_offer(now, case);
            self.record(now, actor, case, "stat-ready-by-rule", TaskStatus::Ready, Some(&detail));
        } else {
            case.routing.offer_deadline_ms = Some(now + targets.offer_timeout_ms);
            self.record(now, actor, case, rule, TaskStatus::Requested, Some(&detail));
        }
    }

    /// The owner takes the open offer: stop the accept clock, start the report clock, count the
    /// workload against the owner's shift.
    pub(super) fn take_offer(&mut self, now: u64, case: &mut Case) {
        if let Some(last) = case.routing.offers.last_mut() {
            last.outcome = Some(OfferOutcome::Accepted);
        }
        case.routing.offer_deadline_ms = None;
        if case.sla.accepted_at_ms.is_none() {
            let targets = self.policy_for_case(case).targets(case.priority);
            case.sla.accepted_at_ms = Some(now);
            case.sla.report_due_ms = Some(now + targets.accept_to_report_ms);
        }
        if let Some(mut s) = case.owner.as_ref().and_then(|o| self.specialists.get(o)).cloned() {
            s.shift_load += case.workload_units();
            self.put_specialist(s);
        }
    }

    /// End the open offer on `case_id` with `outcome` and offer it to the next reader from
    /// `from_step` (default: the current step). Declines and timeouts pass over the reader.
    pub(super) fn withdraw_offer_and_reroute(
        &mut self,
        now: u64,
        actor: &Actor,
        case_id: &CaseId,
        outcome: OfferOutcome,
        rule: &str,
        from_step: Option<u32>,
    ) {
        let Some(mut case) = self.cases.get(case_id).cloned() else { return };
        self.end_offer(&mut case, outcome);
        let from_step = from_step.unwrap_or(case.routing.step);
        self.record(now, actor, &mut case, rule, TaskStatus::Requested, None);
        self.route_case(now, case, from_step);
    }

    /// Close the open offer (if any) with `outcome` and clear the owner.
    pub(super) fn end_offer(&mut self, case: &mut Case, outcome: OfferOutcome) {
        if let Some(owner) = case.owner.take() {
            if matches!(outcome, OfferOutcome::Declined | OfferOutcome::TimedOut) {
                case.routing.passed_over.insert(owner);
            }
            if let Some(last) = case.routing.offers.last_mut().filter(|o| o.outcome.is_none()) {
                last.outcome = Some(outcome);
            }
        }
        case.routing.offer_deadline_ms = None;
    }

    /// The newest pending non-STAT offer held by `reader`, to make room for a STAT case.
    fn preemption_victim(&self, reader: &SpecialistId) -> Option<CaseId> {
        self.index
            .open_cases_of(reader)
            .filter_map(|id| self.cases.get(id))
            .filter(|c| c.status.is_offer_stage() && c.priority != Priority::Stat)
            .max_by_key(|c| (c.routing.offers.last().map_or(0, |o| o.at_ms), c.id.clone()))
            .map(|c| c.id.clone())
    }

    /// Try every unrouted case again (after a reader came on shift, registered, or freed capacity).
    pub(super) fn retry_unrouted(&mut self, now: u64) -> Vec<CaseId> {
        let mut moved = Vec::new();
        for id in self.index.unrouted() {
            let Some(case) = self.cases.get(&id).cloned() else { continue };
            if self.choose_reader(&case, 0).is_some() {
                self.route_case(now, case, 0);
                moved.push(id);
            }
        }
        moved
    }

    /// Move the examinations of open cases needing `modality` at `facility` to the nearest
    /// neighbour whose device is in service.
    pub(super) fn move_exams_off(
        &mut self,
        now: u64,
        actor: &Actor,
        facility: &FacilityId,
        modality: Modality,
    ) -> Vec<CaseId> {
        let affected: Vec<CaseId> = self
            .cases
            .values()
            .filter(|c| {
                c.exam_facility == *facility
                    && c.modality == Some(modality)
                    && c.sla.reported_at_ms.is_none()
                    && !c.status.is_terminal()
            })
            .map(|c| c.id.clone())
            .collect();
        let neighbour = self.nearest_with_device(facility, modality);
        let mut moved = Vec::new();
        for id in affected {
            let Some(mut case) = self.cases.get(&id).cloned() else { continue };
            let status = case.status;
            match &neighbour {
                Some(n) => {
                    let reason =
                        format!("{modality} out of service at `{facility}`; examination moved to `{n}`");
                    case.exam_facility = n.clone();
                    self.record(now, actor, &mut case, "device-outage-reroute", status, Some(&reason));
                    moved.push(id);
                }
                None => {
                    let reason = format!("{modality} out of service at `{facility}` and at every neighbour");
                    self.record(now, actor, &mut case, "device-outage-no-neighbour", status, Some(&reason));
                }
            }
            self.put_case(case);
        }
        moved
    }

    /// The nearest facility in the same region as `from` with `modality` in service.
    pub(super) fn nearest_with_device(&self, from: &FacilityId, modality: Modality) -> Option<FacilityId> {
        let origin = self.facilities.get(from)?;
        self.facilities
            .values()
            .filter(|f| f.id != *from && f.region == origin.region && f.device_in_service(modality))
            .min_by_key(|f| (distance(origin.location, f.location), f.level, f.id.clone()))
            .map(|f| f.id.clone())
    }
}

/// Squared distance between two optional points; unknown positions sort last.
pub(super) fn distance(a: Option<crate::facility::GeoPoint>, b: Option<crate::facility::GeoPoint>) -> u128 {
    match (a, b) {
        (Some(a), Some(b)) => a.distance_sq(&b),
        _ => u128::MAX,
    }
}
