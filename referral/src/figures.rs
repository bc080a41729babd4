//! Figures for health bureaus, computed from the replicated state: referral rates, time in each
//! status, referral-to-accept and referral-to-report times and SLA compliance per priority,
//! unrouted cases, per-facility volume and per-specialist workload.
//!
//! Pure and deterministic: [`Figures::compute`] reads the [`Region`] once (one pass over its cases,
//! reaching each transfer through the case it belongs to) and takes the time to measure open
//! intervals against as an argument. Every map is a `BTreeMap`, so the JSON is stable.
//!
//! Which cases count: drafts were never sent and cases entered in error never existed clinically,
//! so both are left out of every figure (they are only counted, in [`Totals::drafts`] and
//! [`Totals::entered_in_error`]), and so are their transfers. Everything else — open or closed,
//! whatever its status — is a *counted case*.
//!
//! Figures reflect what the cluster has committed: a deadline that has passed but whose breach
//! the leader has not yet committed with a `Tick` still counts as running.

use crate::case::{Case, SlaClock};
use crate::facility::{FacilityId, FacilityLevel};
use crate::priority::Priority;
use crate::region::Region;
use crate::specialist::SpecialistId;
use crate::status::TaskStatus;
use crate::transfer::{Direction, TransferStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything a health bureau asks for, computed at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The instant open intervals were measured to (ms since the Unix epoch).
    pub at_ms: u64,
    /// The region's clock when computed: the latest command time applied.
    pub region_clock_ms: u64,
    /// Case counts.
    pub totals: Totals,
    /// Up-, down- and two-way referral rates and the share resolved without transfer.
    pub referrals: Referrals,
    /// Transfers of counted cases by direction and status.
    pub transfers: BTreeMap<Direction, BTreeMap<TransferStatus, u64>>,
    /// Time counted cases spent in each status (FHIR code). Every non-terminal status is listed;
    /// a terminal one only when a reopened case spent time in it.
    pub time_in_status: BTreeMap<TaskStatus, StatusTime>,
    /// Times and SLA compliance per priority; all four priorities are listed.
    pub priorities: BTreeMap<Priority, PriorityFigures>,
    /// Volume per registered facility.
    pub facilities: BTreeMap<FacilityId, FacilityFigures>,
    /// Workload per registered specialist.
    pub specialists: BTreeMap<SpecialistId, SpecialistFigures>,
}

/// Case counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Counted cases: every case except drafts and cases entered in error.
    pub cases: u64,
    /// Counted cases by current status (FHIR code); every status a counted case can have is listed.
    pub by_status: BTreeMap<TaskStatus, u64>,
    /// Counted cases still open (neither draft nor closed).
    pub open: u64,
    /// Open cases nobody eligible could be found for, waiting for ops to assign a reader.
    pub unrouted: u64,
    /// How long the longest-waiting unrouted case has waited (ms), if there is one.
    pub oldest_unrouted_age_ms: Option<u64>,
    /// Counted cases whose requesting facility is at township level (village clinic, township or
    /// community health centre): the rural cases.
    pub rural_cases: u64,
    /// `rural_cases / cases`; `None` when there are no counted cases.
    pub rural_share: Option<f64>,
    /// Drafts, not counted anywhere else.
    pub drafts: u64,
    /// Cases entered in error, not counted anywhere else.
    pub entered_in_error: u64,
}

/// Two-way referral figures. A transfer *counts* unless it was cancelled or rejected (requested,
/// accepted and completed transfers count): the decision to refer was made and stood.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referrals {
    /// Counted cases with at least one counting up-transfer (上转).
    pub cases_with_up: u64,
    /// Counted cases with at least one counting down-transfer (下转).
    pub cases_with_down: u64,
    /// Counted cases with both a counting up- and a counting down-transfer.
    pub cases_with_both: u64,
    /// Counted cases in status `completed`.
    pub completed: u64,
    /// Completed cases without any counting transfer.
    pub completed_without_transfer: u64,
    /// Up-referral rate: `cases_with_up / cases`; `None` when there are no counted cases.
    pub up_referral_rate: Option<f64>,
    /// Down-referral rate: `cases_with_down / cases`; `None` when there are no counted cases.
    pub down_referral_rate: Option<f64>,
    /// Two-way referral rate: of the cases referred up, the share also referred back down:
    /// `cases_with_both / cases_with_up`; `None` when no case was referred up.
    pub two_way_rate: Option<f64>,
    /// Share of completed cases resolved without moving the patient ("小病不出乡"):
    /// `completed_without_transfer / completed`; `None` when no case is completed.
    pub resolved_without_transfer_share: Option<f64>,
}

/// Time counted cases spent in one status, from their history. An interval runs from the event
/// that moved a case into the status to the event that moved it out; for an open case the current
/// status runs until [`Figures::at_ms`]. Closed cases accumulate nothing in their final status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusTime {
    /// Cases that were in the status at some point.
    pub cases: u64,
    /// Intervals spent in it (a case may return to a status, e.g. `requested` after a hand-off).
    pub visits: u64,
    /// Total time in the status over all cases (ms).
    pub total_ms: u64,
    /// Mean time per case that was in the status: `total_ms / cases` (ms, rounded down).
    pub mean_ms: Option<u64>,
}

/// Summary of a set of durations. Percentiles are exact nearest-rank percentiles: the smallest
/// sample with at least p % of the samples at or below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// Number of samples.
    pub count: u64,
    /// Mean (ms, rounded down).
    pub mean_ms: Option<u64>,
    /// Median (ms).
    pub p50_ms: Option<u64>,
    /// 90th percentile (ms).
    pub p90_ms: Option<u64>,
    /// Longest (ms).
    pub max_ms: Option<u64>,
}

/// How one SLA clock went for the counted cases of a priority. Each case gets at most one verdict
/// per clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockCompliance {
    /// Stopped at or before its deadline, with no breach recorded.
    pub met: u64,
    /// A breach was recorded for the clock (in any request round), or it stopped after its
    /// deadline.
    pub breached: u64,
    /// Still running on an open case, with no breach recorded yet.
    pub running: u64,
    /// `met / (met + breached)`; `None` when no case has a verdict yet.
    pub compliance: Option<f64>,
}

/// Figures for one priority. Times are measured on the current request round of each case
/// (a reopen starts a new round).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriorityFigures {
    /// Counted cases of this priority.
    pub cases: u64,
    /// Of them, open.
    pub open: u64,
    /// From request (submission or reopen) to acceptance by a reader, for accepted cases.
    pub referral_to_accept: Durations,
    /// From request to the filed report, for reported cases.
    pub referral_to_report: Durations,
    /// The accept clock (request → acceptance, due at `sla.accept_due_ms`). Cases closed before
    /// acceptance without a breach get no verdict.
    pub accept_sla: ClockCompliance,
    /// The report clock (acceptance → report, due at `sla.report_due_ms`). Only accepted cases get
    /// a verdict; cases closed before a report without a breach get none.
    pub report_sla: ClockCompliance,
}

/// Volume of one facility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityFigures {
    /// Tier.
    pub level: FacilityLevel,
    /// Counted cases the facility requested (it is their origin).
    pub submitted: u64,
    /// Counted cases taken by its readers: accepted (in the current round), with their current or
    /// last owner working here.
    pub received: u64,
    /// Counted cases whose latest report was written by one of its readers.
    pub reported: u64,
    /// Counting up-transfers arriving here.
    pub up_in: u64,
    /// Counting up-transfers leaving from here.
    pub up_out: u64,
    /// Counting down-transfers arriving here.
    pub down_in: u64,
    /// Counting down-transfers leaving from here.
    pub down_out: u64,
    /// Transfers sent here that the facility rejected ("转入难").
    pub rejected_in: u64,
}

/// Workload of one specialist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialistFigures {
    /// Facility they work at.
    pub facility: FacilityId,
    /// Specialty.
    pub specialty: String,
    /// Whether they are on shift.
    pub on_shift: bool,
    /// Most open cases at once (STAT cases may exceed it).
    pub cap: u32,
    /// Workload units accepted in the current (or last) shift.
    pub shift_load: u32,
    /// Open cases offered to them and not yet accepted (`requested`/`received`).
    pub open_offered: u64,
    /// Open cases they own (`accepted`, `ready`, `in-progress`, `on-hold`).
    pub open_owned: u64,
    /// Of their open cases (offered or owned), STAT ones.
    pub open_stat: u64,
    /// Counted cases completed with them as owner.
    pub completed: u64,
}

impl Figures {
    /// Compute the figures of `region`, measuring open intervals (time in the current status,
    /// unrouted age) up to `now_ms`. One pass over the cases; each transfer is reached through its
    /// case.
    pub fn compute(region: &Region, now_ms: u64) -> Figures {
        let mut acc = Accumulator::new(region, now_ms);
        for case in region.cases() {
            acc.add_case(region, case);
        }
        acc.finish(region.clock_ms())
    }
}

/// Running sums for one computation.
struct Accumulator {
    now_ms: u64,
    totals: Totals,
    referrals: Referrals,
    transfers: BTreeMap<Direction, BTreeMap<TransferStatus, u64>>,
    status_time: [StatusTime; TaskStatus::ALL.len()],
    priorities: [PriorityFigures; Priority::ALL.len()],
    to_accept: [Vec<u64>; Priority::ALL.len()],
    to_report: [Vec<u64>; Priority::ALL.len()],
    oldest_unrouted_since: Option<u64>,
    facilities: BTreeMap<FacilityId, FacilityFigures>,
    specialists: BTreeMap<SpecialistId, SpecialistFigures>,
}

/// A clock's verdict for one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Breached,
    Running,
}

impl Accumulator {
    fn new(region: &Region, now_ms: u64) -> Self {
        let facilities = region
            .facilities()
            .map(|f| {
                let figures = FacilityFigures {
                    level: f.level,
                    submitted: 0,
                    received: 0,
                    reported: 0,
                    up_in: 0,
                    up_out: 0,
                    down_in: 0,
                    down_out: 0,
                    rejected_in: 0,
                };
                (f.id.clone(), figures)
            })
            .collect();
        let specialists = region
            .specialists()
            .map(|s| {
                let figures = SpecialistFigures {
                    facility: s.facility.clone(),
                    specialty: s.specialty.clone(),
                    on_shift: s.on_shift,
                    cap: s.cap,
                    shift_load: s.shift_load,
                    open_offered: 0,
                    open_owned: 0,
                    open_stat: 0,
                    completed: 0,
                };
                (s.id.clone(), figures)
            })
            .collect();
        let mut totals = Totals::default();
        for status in TaskStatus::ALL {
            if !matches!(status, TaskStatus::Draft | TaskStatus::EnteredInError) {
                totals.by_status.insert(status, 0);
            }
        }
        Self {
            now_ms,
            totals,
            referrals: Referrals::default(),
            transfers: BTreeMap::new(),
            status_time: Default::default(),
            priorities: Default::default(),
            to_accept: Default::default(),
            to_report: Default::default(),
            oldest_unrouted_since: None,
            facilities,
            specialists,
        }
    }

    fn add_case(&mut self, region: &Region, case: &Case) {
        match case.status {
            TaskStatus::Draft => {
                self.totals.drafts += 1;
                return;
            }
            TaskStatus::EnteredInError => {
                self.totals.entered_in_error += 1;
                return;
            }
            _ => {}
        }
        let open = case.is_open();
        self.totals.cases += 1;
        *self.totals.by_status.entry(case.status).or_default() += 1;
        self.totals.open += u64::from(open);
        if let Some(since) = case.routing.unrouted_since_ms.filter(|_| open) {
            self.totals.unrouted += 1;
            self.oldest_unrouted_since = Some(self.oldest_unrouted_since.map_or(since, |o| o.min(since)));
        }
        if let Some(f) = self.facilities.get_mut(&case.origin) {
            f.submitted += 1;
            self.totals.rural_cases += u64::from(f.level == FacilityLevel::Township);
        }
        self.add_readers(case, open);
        self.add_priority(case, open);
        let (up, down) = self.add_transfers(region, case);
        self.referrals.cases_with_up += u64::from(up);
        self.referrals.cases_with_down += u64::from(down);
        self.referrals.cases_with_both += u64::from(up && down);
        if case.status == TaskStatus::Completed {
            self.referrals.completed += 1;
            self.referrals.completed_without_transfer += u64::from(!up && !down);
        }
        self.add_time_in_status(case, open);
    }

    /// Owner workload, facility received/reported.
    fn add_readers(&mut self, case: &Case, open: bool) {
        if let Some(s) = case.owner.as_ref().and_then(|o| self.specialists.get_mut(o)) {
            if open {
                if case.status.is_offer_stage() {
                    s.open_offered += 1;
                } else {
                    s.open_owned += 1;
                }
                s.open_stat += u64::from(case.priority == Priority::Stat);
            }
            s.completed += u64::from(case.status == TaskStatus::Completed);
            if case.sla.accepted_at_ms.is_some() {
                if let Some(f) = self.facilities.get_mut(&s.facility) {
                    f.received += 1;
                }
            }
        }
        let author = case.reports.last().and_then(|r| self.specialists.get(&r.by));
        if let Some(f) = author.and_then(|s| self.facilities.get_mut(&s.facility)) {
            f.reported += 1;
        }
    }

    fn add_priority(&mut self, case: &Case, open: bool) {
        let i = case.priority as usize;
        let p = &mut self.priorities[i];
        p.cases += 1;
        p.open += u64::from(open);
        let sla = &case.sla;
        if let Some(at) = sla.accepted_at_ms {
            self.to_accept[i].push(at.saturating_sub(sla.requested_at_ms));
        }
        if let Some(at) = sla.reported_at_ms {
            self.to_report[i].push(at.saturating_sub(sla.requested_at_ms));
        }
        let recorded = |clock: SlaClock| sla.breaches.iter().any(|b| b.clock == clock);
        let accept = if recorded(SlaClock::Accept) {
            Some(Verdict::Breached)
        } else {
            match sla.accepted_at_ms {
                Some(at) if at > sla.accept_due_ms => Some(Verdict::Breached),
                Some(_) => Some(Verdict::Met),
                None => open.then_some(Verdict::Running),
            }
        };
        let report = if recorded(SlaClock::Report) {
            Some(Verdict::Breached)
        } else {
            match (sla.report_due_ms, sla.reported_at_ms) {
                (Some(due), Some(at)) if at > due => Some(Verdict::Breached),
                (Some(_), Some(_)) => Some(Verdict::Met),
                (Some(_), None) => open.then_some(Verdict::Running),
                (None, _) => None,
            }
        };
        tally(&mut p.accept_sla, accept);
        tally(&mut p.report_sla, report);
    }

    /// Count the case's transfers; returns whether it has a counting up- and down-transfer.
    fn add_transfers(&mut self, region: &Region, case: &Case) -> (bool, bool) {
        let (mut up, mut down) = (false, false);
        for t in case.transfers.iter().filter_map(|id| region.transfer(id).ok()) {
            *self.transfers.entry(t.direction).or_default().entry(t.status).or_default() += 1;
            match t.status {
                TransferStatus::Cancelled => continue,
                TransferStatus::Rejected => {
                    if let Some(f) = self.facilities.get_mut(&t.to) {
                        f.rejected_in += 1;
                    }
                    continue;
                }
                TransferStatus::Requested | TransferStatus::Accepted | TransferStatus::Completed => {}
            }
            let is_up = t.direction == Direction::Up;
            up |= is_up;
            down |= !is_up;
            if let Some(f) = self.facilities.get_mut(&t.from) {
                *if is_up { &mut f.up_out } else { &mut f.down_out } += 1;
            }
            if let Some(f) = self.facilities.get_mut(&t.to) {
                *if is_up { &mut f.up_in } else { &mut f.down_in } += 1;
            }
        }
        (up, down)
    }

    /// Walk the case's history: the first event creates it in its `to` status, and every event
    /// that changes the status closes one interval and opens the next.
    fn add_time_in_status(&mut self, case: &Case, open: bool) {
        let Some((first, rest)) = case.history.split_first() else { return };
        let mut seen = [false; TaskStatus::ALL.len()];
        let mut current = first.to;
        let mut since = first.at_ms;
        for event in rest {
            if event.to != current {
                self.add_interval(&mut seen, current, event.at_ms.saturating_sub(since));
                current = event.to;
                since = event.at_ms;
            }
        }
        if open {
            self.add_interval(&mut seen, current, self.now_ms.saturating_sub(since));
        }
    }

    fn add_interval(&mut self, seen: &mut [bool; TaskStatus::ALL.len()], status: TaskStatus, ms: u64) {
        let i = status as usize;
        let t = &mut self.status_time[i];
        t.visits += 1;
        t.total_ms = t.total_ms.saturating_add(ms);
        if !seen[i] {
            seen[i] = true;
            t.cases += 1;
        }
    }

    fn finish(mut self, region_clock_ms: u64) -> Figures {
        let cases = self.totals.cases;
        self.totals.oldest_unrouted_age_ms =
            self.oldest_unrouted_since.map(|s| self.now_ms.saturating_sub(s));
        self.totals.rural_share = ratio(self.totals.rural_cases, cases);
        let r = &mut self.referrals;
        r.up_referral_rate = ratio(r.cases_with_up, cases);
        r.down_referral_rate = ratio(r.cases_with_down, cases);
        r.two_way_rate = ratio(r.cases_with_both, r.cases_with_up);
        r.resolved_without_transfer_share = ratio(r.completed_without_transfer, r.completed);

        let mut time_in_status = BTreeMap::new();
        for (status, mut t) in TaskStatus::ALL.into_iter().zip(self.status_time) {
            if t.visits == 0 && status.is_terminal() {
                continue;
            }
            t.mean_ms = (t.cases > 0).then(|| t.total_ms / t.cases);
            time_in_status.insert(status, t);
        }

        let mut priorities = BTreeMap::new();
        let samples = self.to_accept.into_iter().zip(self.to_report);
        for ((priority, mut p), (to_accept, to_report)) in
            Priority::ALL.into_iter().zip(self.priorities).zip(samples)
        {
            p.referral_to_accept = Durations::from_samples(to_accept);
            p.referral_to_report = Durations::from_samples(to_report);
            for c in [&mut p.accept_sla, &mut p.report_sla] {
                c.compliance = ratio(c.met, c.met + c.breached);
            }
            priorities.insert(priority, p);
        }

        Figures {
            at_ms: self.now_ms,
            region_clock_ms,
            totals: self.totals,
            referrals: self.referrals,
            transfers: self.transfers,
            time_in_status,
            priorities,
            facilities: self.facilities,
            specialists: self.specialists,
        }
    }
}

fn tally(c: &mut ClockCompliance, verdict: Option<Verdict>) {
    match verdict {
        Some(Verdict::Met) => c.met += 1,
        Some(Verdict::Breached) => c.breached += 1,
        Some(Verdict::Running) => c.running += 1,
        None => {}
    }
}

/// `num / den`, or `None` when `den` is 0.
fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Durations {
    /// Summarise `samples` (ms), in any order.
    pub fn from_samples(mut samples: Vec<u64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Self {
            count: n as u64,
            mean_ms: Some((sum / n as u128) as u64),
            p50_ms: Some(nearest_rank(&samples, 50)),
            p90_ms: Some(nearest_rank(&samples, 90)),
            max_ms: samples.last().copied(),
        }
    }
}

/// The nearest-rank `pct`-th percentile of sorted, non-empty `sorted`.
fn nearest_rank(sorted: &[u64], pct: usize) -> u64 {
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::case::CaseId;
    use crate::command::{
        CaseSubmission, Change, Command, FacilityRegistration, Outcome, SpecialistRegistration,
        TransferAction, TransferRequest,
    };
    use crate::facility::Capacity;
    use crate::lifecycle::CaseAction;
    use crate::patient::PatientKey;
    use crate::transfer::{RejectReason, TransferId};

    const T0: u64 = 1_700_000_000_000;
    const MIN: u64 = 60_000;

    fn fid(id: &str) -> FacilityId {
        FacilityId(id.into())
    }

    fn sid(id: &str) -> SpecialistId {
        SpecialistId(id.into())
    }

    fn staff(facility: &str) -> Actor {
        Actor::staff(&format!("staff-{}", facility.to_lowercase()), facility)
    }

    fn card1() -> Actor {
        Actor::specialist("CARD-1")
    }

    /// A region driven by commands stamped in minutes after `T0`.
    struct Sim {
        region: Region,
    }

    impl Sim {
        /// PROV ← CTY ← {TS1, TS2}; an on-shift cardiologist at CTY, an off-shift one at PROV.
        fn new() -> Self {
            let mut sim = Sim { region: Region::default() };
            let facility = |id: &str, level, parent: Option<&str>| {
                Change::RegisterFacility(FacilityRegistration {
                    id: fid(id),
                    name: format!("{id} facility"),
                    level,
                    region: "lanshan".into(),
                    parent: parent.map(fid),
                    location: None,
                    devices: Default::default(),
                })
            };
            let reader = |id: &str, facility: &str, on_shift| {
                Change::RegisterSpecialist(SpecialistRegistration {
                    id: sid(id),
                    name: format!("Dr {id}"),
                    facility: fid(facility),
                    specialty: "cardiology".into(),
                    modalities: Default::default(),
                    licensed_regions: Default::default(),
                    cap: 8,
                    on_shift,
                })
            };
            for change in [
                facility("PROV", FacilityLevel::Provincial, None),
                facility("CTY", FacilityLevel::County, Some("PROV")),
                facility("TS1", FacilityLevel::Township, Some("CTY")),
                facility("TS2", FacilityLevel::Township, Some("CTY")),
                reader("CARD-1", "CTY", true),
                reader("PROV-CARD", "PROV", false),
            ] {
                sim.ok(0, Actor::ops("ops"), change);
            }
            sim
        }

        #[track_caller]
        fn ok(&mut self, minute: u64, actor: Actor, change: Change) -> Outcome {
            assert!(T0 + minute * MIN >= self.region.clock_ms(), "commands must come in time order");
            let what = format!("{change:?} by {actor}");
            match self.region.apply(T0 + minute * MIN, &Command::new(actor, change)).result {
                Ok(outcome) => outcome,
                Err(e) => panic!("{what} was refused: {e}"),
            }
        }

        #[track_caller]
        fn submit(
            &mut self,
            minute: u64,
            origin: &str,
            patient: u8,
            priority: Priority,
            draft: bool,
        ) -> CaseId {
            let s = CaseSubmission {
                patient: PatientKey(format!("{patient:02x}").repeat(32)),
                complaint: "chest pain".into(),
                vitals: Default::default(),
                priority,
                green_channel: None,
                specialty: "cardiology".into(),
                modality: None,
                origin: fid(origin),
                target: None,
                draft,
            };
            match self.ok(minute, staff(origin), Change::SubmitCase(s)) {
                Outcome::Case { case_id, .. } => case_id,
                other => panic!("submit: {other:?}"),
            }
        }

        #[track_caller]
        fn act(&mut self, minute: u64, actor: Actor, case: &CaseId, action: CaseAction) {
            let reason =
                matches!(action, CaseAction::Cancel | CaseAction::EnterInError).then(|| "dup".into());
            self.ok(minute, actor, Change::Case { case: case.clone(), action, reason });
        }

        #[track_caller]
        fn transfer(
            &mut self,
            minute: u64,
            by: &str,
            case: &CaseId,
            direction: Direction,
            to: &str,
            service: &str,
        ) -> TransferId {
            let r = TransferRequest {
                case: case.clone(),
                direction,
                to: fid(to),
                from: None,
                service: service.into(),
                slot_ms: None,
                follow_up: Vec::new(),
            };
            match self.ok(minute, staff(by), Change::RequestTransfer(r)) {
                Outcome::Transfer { transfer_id, .. } => transfer_id,
                other => panic!("transfer: {other:?}"),
            }
        }

        #[track_caller]
        fn on_transfer(&mut self, minute: u64, by: &str, transfer: &TransferId, action: TransferAction) {
            self.ok(minute, staff(by), Change::Transfer { transfer: transfer.clone(), action });
        }

        fn tick(&mut self, minute: u64) {
            assert!(T0 + minute * MIN >= self.region.clock_ms(), "commands must come in time order");
            self.region.apply(T0 + minute * MIN, &Command::tick()).result.expect("tick");
        }
    }

    /// The scenario every figure below is checked against (minutes after `T0`):
    ///
    /// - C1 routine TS1 @0: received 5, accepted 10, started 15, reported 60, completed 70.
    /// - C2 STAT TS1 @1: accepted 2, started 4, report breach committed by the tick at 20
    ///   (due 17), reported 30, completed 31; up to PROV (accepted, completed), then down to TS2
    ///   with capacity declared (accepted).
    /// - C3 routine CTY @2: never accepted; the tick at 242 commits the accept breach and the
    ///   lapsed offer, and nobody else is on shift, so it waits unrouted from 242.
    /// - C5 draft TS1 @6; C6 routine TS1 @7, entered in error at 9.
    /// - C7 ASAP TS2 @5, cancelled at 8.
    /// - C4 routine TS2 @25, accepted at 30 and left open; an up-transfer requested and cancelled.
    /// - C8 urgent TS1 @40: accepted 50, started 55, reported 90, completed 95; an up-transfer to
    ///   CTY rejected at capacity.
    ///
    /// Figures are computed at minute 300.
    fn scenario() -> Region {
        let mut sim = Sim::new();
        let c1 = sim.submit(0, "TS1", 1, Priority::Routine, false);
        let c2 = sim.submit(1, "TS1", 2, Priority::Stat, false);
        sim.act(2, card1(), &c2, CaseAction::Accept);
        let c3 = sim.submit(2, "CTY", 3, Priority::Routine, false);
        sim.act(4, card1(), &c2, CaseAction::Start);
        sim.act(5, card1(), &c1, CaseAction::Receive);
        let c7 = sim.submit(5, "TS2", 7, Priority::Asap, false);
        sim.submit(6, "TS1", 5, Priority::Routine, true);
        let c6 = sim.submit(7, "TS1", 6, Priority::Routine, false);
        sim.act(8, staff("TS2"), &c7, CaseAction::Cancel);
        sim.act(9, staff("TS1"), &c6, CaseAction::EnterInError);
        sim.act(10, card1(), &c1, CaseAction::Accept);
        sim.act(15, card1(), &c1, CaseAction::Start);
        sim.tick(20);
        let c4 = sim.submit(25, "TS2", 4, Priority::Routine, false);
        sim.act(30, card1(), &c2, CaseAction::Report { text: "findings".into() });
        sim.act(30, card1(), &c4, CaseAction::Accept);
        sim.act(31, card1(), &c2, CaseAction::Complete);
        let up = sim.transfer(32, "TS1", &c2, Direction::Up, "PROV", "stroke-unit");
        let c4_up = sim.transfer(35, "TS2", &c4, Direction::Up, "CTY", "cardiology-ward");
        let cancel = TransferAction::Cancel { reason: "family declined".into() };
        sim.on_transfer(36, "TS2", &c4_up, cancel);
        let c8 = sim.submit(40, "TS1", 8, Priority::Urgent, false);
        sim.on_transfer(40, "PROV", &up, TransferAction::Accept);
        sim.act(50, card1(), &c8, CaseAction::Accept);
        sim.act(55, card1(), &c8, CaseAction::Start);
        sim.act(60, card1(), &c1, CaseAction::Report { text: "findings".into() });
        sim.act(70, card1(), &c1, CaseAction::Complete);
        sim.act(90, card1(), &c8, CaseAction::Report { text: "findings".into() });
        sim.act(95, card1(), &c8, CaseAction::Complete);
        let c8_up = sim.transfer(96, "TS1", &c8, Direction::Up, "CTY", "cardiology-ward");
        sim.on_transfer(100, "CTY", &c8_up, TransferAction::Reject { reason: RejectReason::AtCapacity });
        sim.on_transfer(120, "PROV", &up, TransferAction::Complete);
        let declare = Change::DeclareCapacity {
            facility: fid("TS2"),
            service: "rehab-stroke".into(),
            capacity: Capacity::Yes,
        };
        sim.ok(120, staff("TS2"), declare);
        let down = sim.transfer(180, "PROV", &c2, Direction::Down, "TS2", "rehab-stroke");
        sim.on_transfer(190, "TS2", &down, TransferAction::Accept);
        sim.tick(242);
        let c3 = sim.region.case(&c3).expect("c3");
        assert!(c3.is_unrouted(), "C3 waits for ops: {:?}", c3.history.last());
        sim.region
    }

    fn figures() -> Figures {
        Figures::compute(&scenario(), T0 + 300 * MIN)
    }

    #[test]
    fn totals_count_cases_by_status_and_leave_out_drafts_and_errors() {
        let f = figures();
        let t = &f.totals;
        assert_eq!(f.at_ms, T0 + 300 * MIN);
        assert_eq!(f.region_clock_ms, T0 + 242 * MIN);
        assert_eq!((t.cases, t.drafts, t.entered_in_error), (6, 1, 1));
        let by_status: Vec<(&str, u64)> = t.by_status.iter().map(|(s, n)| (s.code(), *n)).collect();
        assert_eq!(
            by_status,
            [
                ("requested", 1),
                ("received", 0),
                ("accepted", 1),
                ("rejected", 0),
                ("ready", 0),
                ("in-progress", 0),
                ("on-hold", 0),
                ("completed", 3),
                ("cancelled", 1),
                ("failed", 0),
            ]
        );
        assert_eq!((t.open, t.unrouted), (2, 1));
        assert_eq!(t.oldest_unrouted_age_ms, Some(58 * MIN));
        assert_eq!(t.rural_cases, 5, "all but C3 come from townships");
        assert_eq!(t.rural_share, Some(5.0 / 6.0));
    }

    #[test]
    fn referral_rates_count_only_transfers_that_stood() {
        let f = figures();
        let r = &f.referrals;
        assert_eq!((r.cases_with_up, r.cases_with_down, r.cases_with_both), (1, 1, 1));
        assert_eq!(r.up_referral_rate, Some(1.0 / 6.0));
        assert_eq!(r.down_referral_rate, Some(1.0 / 6.0));
        assert_eq!(r.two_way_rate, Some(1.0));
        // C1 and C8 (whose only transfer was rejected) were resolved without moving the patient.
        assert_eq!((r.completed, r.completed_without_transfer), (3, 2));
        assert_eq!(r.resolved_without_transfer_share, Some(2.0 / 3.0));
        let up = &f.transfers[&Direction::Up];
        let down = &f.transfers[&Direction::Down];
        assert_eq!(
            up.iter().map(|(s, n)| (*s, *n)).collect::<Vec<_>>(),
            [(TransferStatus::Rejected, 1), (TransferStatus::Cancelled, 1), (TransferStatus::Completed, 1)]
        );
        assert_eq!(down.iter().map(|(s, n)| (*s, *n)).collect::<Vec<_>>(), [(TransferStatus::Accepted, 1)]);
    }

    #[test]
    fn time_in_status_follows_history_and_runs_to_now_for_open_cases() {
        let f = figures();
        let got: Vec<(&str, u64, u64, u64, Option<u64>)> = f
            .time_in_status
            .iter()
            .map(|(s, t)| (s.code(), t.cases, t.visits, t.total_ms / MIN, t.mean_ms))
            .collect();
        // requested: C1 5 + C2 1 + C3 298 (open) + C7 3 + C4 5 + C8 10 = 322 min over 6 cases.
        // received: C1 5. accepted: C1 5 + C2 2 + C4 270 (open) + C8 5 = 282 over 4.
        // in-progress: C1 55 + C2 27 + C8 40 = 122 over 3.
        assert_eq!(
            got,
            [
                ("draft", 0, 0, 0, None),
                ("requested", 6, 6, 322, Some(322 * MIN / 6)),
                ("received", 1, 1, 5, Some(5 * MIN)),
                ("accepted", 4, 4, 282, Some(282 * MIN / 4)),
                ("ready", 0, 0, 0, None),
                ("in-progress", 3, 3, 122, Some(122 * MIN / 3)),
                ("on-hold", 0, 0, 0, None),
            ]
        );
    }

    #[test]
    fn per_priority_times_and_sla_compliance() {
        let f = figures();
        let d = |count, mean: u64, p50: u64, p90: u64, max: u64| Durations {
            count,
            mean_ms: Some(mean),
            p50_ms: Some(p50 * MIN),
            p90_ms: Some(p90 * MIN),
            max_ms: Some(max * MIN),
        };
        let c = |met, breached, running, compliance| ClockCompliance { met, breached, running, compliance };

        let routine = &f.priorities[&Priority::Routine];
        assert_eq!((routine.cases, routine.open), (3, 2));
        assert_eq!(routine.referral_to_accept, d(2, 15 * MIN / 2, 5, 10, 10), "C4 5 min, C1 10 min");
        assert_eq!(routine.referral_to_report, d(1, 60 * MIN, 60, 60, 60));
        assert_eq!(routine.accept_sla, c(2, 1, 0, Some(2.0 / 3.0)), "C3 breached");
        assert_eq!(routine.report_sla, c(1, 0, 1, Some(1.0)), "C4 still running");

        let urgent = &f.priorities[&Priority::Urgent];
        assert_eq!((urgent.cases, urgent.open), (1, 0));
        assert_eq!(urgent.referral_to_accept, d(1, 10 * MIN, 10, 10, 10));
        assert_eq!(urgent.referral_to_report, d(1, 50 * MIN, 50, 50, 50));
        assert_eq!(urgent.accept_sla, c(1, 0, 0, Some(1.0)));
        assert_eq!(urgent.report_sla, c(1, 0, 0, Some(1.0)));

        // C7 was cancelled before anyone accepted it: no samples and no verdict.
        let asap = &f.priorities[&Priority::Asap];
        assert_eq!((asap.cases, asap.open), (1, 0));
        assert_eq!(asap.referral_to_accept, Durations::default());
        assert_eq!(asap.accept_sla, c(0, 0, 0, None));
        assert_eq!(asap.report_sla, c(0, 0, 0, None));

        let stat = &f.priorities[&Priority::Stat];
        assert_eq!(stat.referral_to_accept, d(1, MIN, 1, 1, 1));
        assert_eq!(stat.referral_to_report, d(1, 29 * MIN, 29, 29, 29));
        assert_eq!(stat.accept_sla, c(1, 0, 0, Some(1.0)));
        assert_eq!(stat.report_sla, c(0, 1, 0, Some(0.0)), "breach committed at minute 20");
    }

    #[test]
    fn per_facility_volume_and_transfers() {
        let f = figures();
        let row = |id: &str| {
            let x = &f.facilities[&fid(id)];
            [x.submitted, x.received, x.reported, x.up_in, x.up_out, x.down_in, x.down_out, x.rejected_in]
        };
        assert_eq!(f.facilities.len(), 4);
        //                         sub rec rep up_in up_out down_in down_out rej_in
        assert_eq!(row("PROV"), [0, 0, 0, 1, 0, 0, 1, 0]);
        assert_eq!(row("CTY"), [1, 4, 3, 0, 0, 0, 0, 1]);
        assert_eq!(row("TS1"), [3, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(row("TS2"), [2, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(f.facilities[&fid("TS1")].level, FacilityLevel::Township);
    }

    #[test]
    fn per_specialist_workload() {
        let f = figures();
        let card = &f.specialists[&sid("CARD-1")];
        assert_eq!(card.facility, fid("CTY"));
        assert_eq!(card.specialty, "cardiology");
        assert!(card.on_shift);
        assert_eq!(card.cap, 8);
        assert_eq!(card.shift_load, 4, "C1, C2, C4 and C8 accepted, one unit each");
        assert_eq!((card.open_offered, card.open_owned, card.open_stat, card.completed), (0, 1, 0, 3));
        let prov = &f.specialists[&sid("PROV-CARD")];
        assert!(!prov.on_shift);
        assert_eq!((prov.open_offered, prov.open_owned, prov.open_stat, prov.completed), (0, 0, 0, 0));
    }

    #[test]
    fn open_offers_and_stat_load_are_counted_per_reader() {
        let mut sim = Sim::new();
        let routine = sim.submit(0, "TS1", 1, Priority::Routine, false);
        let stat = sim.submit(1, "TS2", 2, Priority::Stat, false);
        sim.act(2, card1(), &stat, CaseAction::Accept);
        let f = Figures::compute(&sim.region, T0 + 3 * MIN);
        let card = &f.specialists[&sid("CARD-1")];
        assert_eq!((card.open_offered, card.open_owned, card.open_stat), (1, 1, 1));
        let requested = &f.time_in_status[&TaskStatus::Requested];
        assert_eq!((requested.cases, requested.total_ms), (2, 3 * MIN + MIN), "3 min + 1 min");
        assert_eq!(f.totals.unrouted, 0);
        assert!(sim.region.case(&routine).expect("case").owner.is_some());
    }

    #[test]
    fn late_acceptance_without_a_committed_breach_still_counts_as_breached() {
        let mut sim = Sim::new();
        let late = sim.submit(0, "TS1", 1, Priority::Urgent, false);
        // Urgent cases must be accepted within an hour; no tick ran before this acceptance.
        sim.act(61, card1(), &late, CaseAction::Accept);
        assert!(sim.region.case(&late).expect("case").sla.breaches.is_empty());
        let f = Figures::compute(&sim.region, T0 + 61 * MIN);
        let urgent = &f.priorities[&Priority::Urgent];
        assert_eq!((urgent.accept_sla.met, urgent.accept_sla.breached), (0, 1));
        assert_eq!(urgent.accept_sla.compliance, Some(0.0));
        assert_eq!(urgent.report_sla.running, 1);
    }

    #[test]
    fn empty_region_has_no_rates() {
        let f = Figures::compute(&Region::default(), T0);
        assert_eq!(f.totals.cases, 0);
        assert_eq!(f.totals.rural_share, None);
        assert_eq!(f.totals.oldest_unrouted_age_ms, None);
        let r = &f.referrals;
        assert_eq!(
            (r.up_referral_rate, r.down_referral_rate, r.two_way_rate, r.resolved_without_transfer_share),
            (None, None, None, None)
        );
        assert_eq!(f.priorities.len(), 4);
        assert!(f.priorities.values().all(|p| p.accept_sla.compliance.is_none()));
        assert!(f.facilities.is_empty() && f.specialists.is_empty() && f.transfers.is_empty());
    }

    #[test]
    fn deterministic_and_serializable() {
        let region = scenario();
        let a = Figures::compute(&region, T0 + 300 * MIN);
        let b = Figures::compute(&region.clone(), T0 + 300 * MIN);
        assert_eq!(a, b);
        let bytes = bincode::serialize(&a).expect("serialize");
        let back: Figures = bincode::deserialize(&bytes).expect("deserialize");
        assert_eq!(back, a);
        // Restoring the region from its entities (as a follower does from a snapshot) gives the
        // same figures.
        let mut restored = Region::default();
        for key in region.keys() {
            restored.restore(region.entity(&key).expect("entity"));
        }
        assert_eq!(Figures::compute(&restored, T0 + 300 * MIN), a);
    }

    #[test]
    fn array_slots_follow_declaration_order() {
        // The accumulator indexes arrays by discriminant; `ALL` must list variants in that order.
        assert!(Priority::ALL.iter().enumerate().all(|(i, p)| *p as usize == i));
        assert!(TaskStatus::ALL.iter().enumerate().all(|(i, s)| *s as usize == i));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d = Durations::from_samples((1..=10).rev().collect());
        assert_eq!(
            d,
            Durations { count: 10, mean_ms: Some(5), p50_ms: Some(5), p90_ms: Some(9), max_ms: Some(10) }
        );
        let one = Durations::from_samples(vec![7]);
        assert_eq!((one.p50_ms, one.p90_ms, one.max_ms), (Some(7), Some(7), Some(7)));
        let big = Durations::from_samples(vec![u64::MAX, u64::MAX]);
        assert_eq!(big.mean_ms, Some(u64::MAX));
        assert_eq!(Durations::from_samples(Vec::new()), Durations::default());
    }
}
