//! Property tests: random command sequences against the fixed region, checking after every step
//! that
//!
//! * a case has at most one active owner (owned cases have one, unrouted and closed cases hold no
//!   offer, every reader's worklist is exactly the open cases they hold);
//! * terminal states stay terminal except through an audited reopen;
//! * every offer went to a reader eligible when it was made, and every accepted case is owned by
//!   the reader of its last, accepted offer;
//! * applying the same commands to two fresh regions gives identical states and answers, a
//!   refused command changes nothing but the clock, persisting only the touched entities
//!   reproduces the region, and a serde round trip restores it (indexes included).
//!
//! The number of cases defaults to 64; set `PROPTEST_CASES` to run more.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use yilian_referral::case::OfferOutcome;
use yilian_referral::transfer::RejectReason;
use yilian_referral::{
    Actor, Applied, Capacity, Case, CaseAction, CaseFilter, CaseId, Change, Command, Direction, Entity,
    GreenChannel, Ineligible, Modality, Outcome, Priority, Region, RegionPolicy, SpecialistId, TaskStatus,
    TransferAction, TransferId, TransferRequest, TransferStatus,
};

// ---------------------------------------------------------------------------------------------
// Generated operations: abstract choices, resolved against the current state into commands.
// ---------------------------------------------------------------------------------------------

const ORIGINS: [&str; 6] = [TS1, TS2, TS3, TS4, CTY1, CTY2];
const TARGETS: [&str; 4] = [CTY1, CTY2, PROV, TS2];
const SPECIALTIES: [&str; 4] = ["radiology", "cardiology", "neurology", "dermatology"];
const MODALITIES: [Option<Modality>; 6] = [
    None,
    Some(Modality::Us),
    Some(Modality::Dr),
    Some(Modality::Ct),
    Some(Modality::Ecg),
    Some(Modality::Mr),
];
const SERVICES: [&str; 3] = ["rehab-stroke", "cardiology-ward", "Rehab Stroke"];
const PATIENTS: u8 = 4;

/// Readers of the standard fixture, plus one that does not exist.
fn reader_pool() -> Vec<String> {
    let mut ids: Vec<String> = standard_readers().into_iter().map(|r| r.id.0).collect();
    ids.push("ghost".into());
    ids
}

#[derive(Debug, Clone)]
enum Who {
    /// The case's current owner (or, without one, some reader).
    Owner,
    /// Staff of the case's (or the facility's) own clinic.
    OwnStaff,
    Ops,
    /// Some reader from the pool.
    Reader(usize),
    /// Staff of some facility.
    Staff(usize),
    System,
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        origin: usize,
        patient: u8,
        priority: usize,
        specialty: usize,
        modality: usize,
        green: bool,
        draft: bool,
        target: Option<usize>,
        by_own_staff: bool,
    },
    /// Any action by anyone.
    Act {
        case: usize,
        action: usize,
        who: Who,
        reason: bool,
        colleague: usize,
    },
    /// The natural next step of the case, by the party who would take it.
    Progress {
        case: usize,
        pick: usize,
    },
    Shift {
        reader: usize,
        on: bool,
        who: Who,
    },
    Capacity {
        facility: usize,
        service: usize,
        capacity: usize,
        who: Who,
    },
    Device {
        facility: usize,
        modality: usize,
        in_service: bool,
        reason: bool,
        who: Who,
    },
    Policy {
        auto_ready: bool,
        short_clocks: bool,
    },
    RequestTransfer {
        case: usize,
        up: bool,
        to: usize,
        from: Option<usize>,
        service: usize,
        who: Who,
    },
    TransferAct {
        transfer: usize,
        action: usize,
        who: Who,
    },
    /// The natural next step of a case's transfers: request one up or down, or move the open one on.
    TransferProgress {
        case: usize,
        pick: usize,
    },
    Tick {
        advance: u64,
        by_system: bool,
    },
    Advance {
        ms: u64,
    },
    /// The next command is stamped earlier than the region clock.
    Rewind {
        ms: u64,
    },
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        5 => Just(Who::Owner),
        3 => Just(Who::OwnStaff),
        2 => Just(Who::Ops),
        1 => (0..10usize).prop_map(Who::Reader),
        1 => (0..FACILITIES.len()).prop_map(Who::Staff),
        1 => Just(Who::System),
    ]
}

fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(2 * MINUTE),
        Just(2 * HOUR),
        1..=15 * MINUTE,
        15 * MINUTE..=2 * HOUR,
        2 * HOUR..=8 * HOUR,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let submit = (
        0..ORIGINS.len(),
        0..PATIENTS,
        0..4usize,
        0..SPECIALTIES.len(),
        0..MODALITIES.len(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.15, 0..TARGETS.len()),
        prop::bool::weighted(0.95),
    )
        .prop_map(
            |(origin, patient, priority, specialty, modality, green, draft, target, by_own_staff)| {
                Op::Submit {
                    origin,
                    patient,
                    priority,
                    specialty,
                    modality,
                    green,
                    draft,
                    target,
                    by_own_staff,
                }
            },
        );
    let act = (any::<usize>(), 0..16usize, who(), prop::bool::weighted(0.8), 0..10usize)
        .prop_map(|(case, action, who, reason, colleague)| Op::Act { case, action, who, reason, colleague });
    let progress = (any::<usize>(), any::<usize>()).prop_map(|(case, pick)| Op::Progress { case, pick });
    let shift =
        (0..10usize, any::<bool>(), prop_oneof![3 => Just(Who::Owner), 2 => Just(Who::Ops), 1 => who()])
            .prop_map(|(reader, on, who)| Op::Shift { reader, on, who });
    let capacity = (0..FACILITIES.len(), 0..SERVICES.len(), 0..3usize, who())
        .prop_map(|(facility, service, capacity, who)| Op::Capacity { facility, service, capacity, who });
    let device = (
        0..FACILITIES.len(),
        1..MODALITIES.len(),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.9),
        who(),
    )
        .prop_map(|(facility, modality, in_service, reason, who)| Op::Device {
            facility,
            modality,
            in_service,
            reason,
            who,
        });
    let policy = (any::<bool>(), any::<bool>())
        .prop_map(|(auto_ready, short_clocks)| Op::Policy { auto_ready, short_clocks });
    let transfer = (
        any::<usize>(),
        any::<bool>(),
        0..FACILITIES.len(),
        prop::option::weighted(0.3, 0..FACILITIES.len()),
        0..SERVICES.len(),
        who(),
    )
        .prop_map(|(case, up, to, from, service, who)| Op::RequestTransfer {
            case,
            up,
            to,
            from,
            service,
            who,
        });
    let transfer_act = (any::<usize>(), 0..5usize, who())
        .prop_map(|(transfer, action, who)| Op::TransferAct { transfer, action, who });
    let transfer_progress =
        (any::<usize>(), any::<usize>()).prop_map(|(case, pick)| Op::TransferProgress { case, pick });
    let tick = (delay(), prop::bool::weighted(0.95))
        .prop_map(|(advance, by_system)| Op::Tick { advance, by_system });
    prop_oneof![
        6 => submit,
        8 => act,
        10 => progress,
        2 => shift,
        2 => capacity,
        2 => device,
        2 => (0..TOWNSHIPS.len(), 1..3usize, prop::bool::weighted(0.3), who()).prop_map(
            |(township, modality, in_service, who)| Op::Device { facility: 3 + township, modality, in_service, reason: true, who }
        ),
        1 => policy,
        3 => transfer,
        3 => transfer_act,
        4 => transfer_progress,
        6 => tick,
        2 => delay().prop_map(|ms| Op::Advance { ms }),
        1 => (1..=HOUR).prop_map(|ms| Op::Rewind { ms }),
    ]
}

/// The test's view of time and the region, for turning operations into commands.
struct Resolver {
    readers: Vec<String>,
    now: u64,
}

impl Resolver {
    fn nth_case<'a>(&self, region: &'a Region, idx: usize) -> Option<&'a Case> {
        let n = region.cases().count();
        (n > 0).then(|| region.cases().nth(idx % n)).flatten()
    }

    fn case_id(&self, region: &Region, idx: usize) -> CaseId {
        self.nth_case(region, idx).map_or_else(|| CaseId::from_sequence(999), |c| c.id.clone())
    }

    fn actor(&self, who: &Who, case: Option<&Case>, own_facility: Option<&str>) -> Actor {
        match who {
            Who::Owner => match case.and_then(|c| c.owner.as_ref()) {
                Some(o) => Actor::specialist(&o.0),
                None => {
                    Actor::specialist(&self.readers[case.map_or(0, |c| c.history.len()) % self.readers.len()])
                }
            },
            Who::OwnStaff => match (case, own_facility) {
                (Some(c), _) => staff(&c.origin.0),
                (None, Some(f)) => staff(f),
                (None, None) => staff(TS1),
            },
            Who::Ops => ops(),
            Who::Reader(i) => Actor::specialist(&self.readers[i % self.readers.len()]),
            Who::Staff(i) => staff(FACILITIES[i % FACILITIES.len()]),
            Who::System => Actor::system(),
        }
    }

    /// A reader other than the owner who could take `case` now (some reader if nobody could).
    fn colleague(&self, region: &Region, case: &Case, pick: usize) -> SpecialistId {
        let candidates: Vec<_> = region
            .specialists()
            .filter(|s| Some(&s.id) != case.owner.as_ref() && region.eligibility(case, s).is_ok())
            .map(|s| s.id.clone())
            .collect();
        match candidates.len() {
            0 => sid(&self.readers[pick % self.readers.len()]),
            n => candidates[pick % n].clone(),
        }
    }

    fn reason(&self, given: bool) -> Option<String> {
        given.then(|| "clinical reason".to_owned())
    }

    /// The command `op` stands for now, if any (some operations only move the test clock).
    fn resolve(&mut self, op: &Op, region: &Region) -> Option<Command> {
        let command = match op {
            Op::Submit {
                origin,
                patient: p,
                priority,
                specialty,
                modality,
                green,
                draft,
                target,
                by_own_staff,
            } => {
                let origin = ORIGINS[*origin];
                let mut s = submission(
                    origin,
                    patient(*p),
                    Priority::ALL[*priority],
                    SPECIALTIES[*specialty],
                    MODALITIES[*modality],
                );
                s.green_channel = green.then_some(GreenChannel::Stroke);
                s.draft = *draft;
                s.target = target.map(|t| fid(TARGETS[t]));
                let actor = if *by_own_staff { staff(origin) } else { staff(PROV) };
                Command::new(actor, Change::SubmitCase(s))
            }
            Op::Act { case, action, who, reason, colleague } => {
                let c = self.nth_case(region, *case);
                let to = sid(&self.readers[colleague % self.readers.len()]);
                let action = match action {
                    0 => CaseAction::Submit,
                    1 => CaseAction::Receive,
                    2 => CaseAction::Accept,
                    3 => CaseAction::Decline,
                    4 => CaseAction::Reject,
                    5 => CaseAction::Start,
                    6 => CaseAction::Hold,
                    7 => CaseAction::Resume,
                    8 => CaseAction::Report { text: "findings".into() },
                    9 => CaseAction::Complete,
                    10 => CaseAction::Fail,
                    11 => CaseAction::Cancel,
                    12 => CaseAction::EnterInError,
                    13 => CaseAction::Reopen,
                    14 => CaseAction::HandOff { to },
                    _ => CaseAction::Assign { to },
                };
                let change =
                    Change::Case { case: self.case_id(region, *case), action, reason: self.reason(*reason) };
                Command::new(self.actor(who, c, None), change)
            }
            Op::Progress { case, pick } => {
                let c = self.nth_case(region, *case)?;
                let owner = || c.owner.as_ref().map_or_else(ops, |o| Actor::specialist(&o.0));
                let reported = c.sla.reported_at_ms.is_some();
                let (actor, action, reason) = match c.status {
                    TaskStatus::Draft => (staff(&c.origin.0), CaseAction::Submit, None),
                    TaskStatus::Requested | TaskStatus::Received if c.owner.is_none() => {
                        (ops(), CaseAction::Assign { to: self.colleague(region, c, *pick) }, None)
                    }
                    TaskStatus::Requested if pick % 4 == 0 => (owner(), CaseAction::Receive, None),
                    TaskStatus::Requested | TaskStatus::Received if pick % 5 == 1 => {
                        (owner(), CaseAction::Decline, None)
                    }
                    TaskStatus::Requested | TaskStatus::Received => (owner(), CaseAction::Accept, None),
                    TaskStatus::Accepted => (owner(), CaseAction::Start, None),
                    TaskStatus::InProgress if pick % 6 == 0 => (owner(), CaseAction::Hold, Some("waiting")),
                    TaskStatus::InProgress | TaskStatus::Ready | TaskStatus::OnHold if pick % 5 == 0 => {
                        let to = self.colleague(region, c, *pick);
                        (owner(), CaseAction::HandOff { to }, Some("shift change"))
                    }
                    TaskStatus::InProgress | TaskStatus::Ready if !reported => {
                        (owner(), CaseAction::Report { text: "findings".into() }, None)
                    }
                    TaskStatus::InProgress | TaskStatus::Ready => (owner(), CaseAction::Complete, None),
                    TaskStatus::OnHold => (staff(&c.origin.0), CaseAction::Resume, None),
                    _ if pick % 3 == 0 => (ops(), CaseAction::Reopen, Some("audit review")),
                    _ => (staff(&c.origin.0), CaseAction::Reopen, Some("second opinion")),
                };
                let change = Change::Case { case: c.id.clone(), action, reason: reason.map(str::to_owned) };
                Command::new(actor, change)
            }
            Op::Shift { reader, on, who } => {
                let id = &self.readers[reader % self.readers.len()];
                let actor = match who {
                    Who::Owner => Actor::specialist(id),
                    other => self.actor(other, None, None),
                };
                Command::new(actor, Change::SetShift { specialist: sid(id), on_shift: *on })
            }
            Op::Capacity { facility, service, capacity, who } => {
                let f = FACILITIES[*facility];
                let capacity = [Capacity::Yes, Capacity::No, Capacity::Waitlist { days: 7 }][*capacity];
                let change = Change::DeclareCapacity {
                    facility: fid(f),
                    service: SERVICES[*service].into(),
                    capacity,
                };
                Command::new(self.actor(who, None, Some(f)), change)
            }
            Op::Device { facility, modality, in_service, reason, who } => {
                let f = FACILITIES[*facility];
                let modality = MODALITIES[*modality].unwrap_or(Modality::Us);
                let reason = self.reason(*reason);
                let change =
                    Change::SetDevice { facility: fid(f), modality, in_service: *in_service, reason };
                Command::new(self.actor(who, None, Some(f)), change)
            }
            Op::Policy { auto_ready, short_clocks } => {
                let mut policy = RegionPolicy { stat_auto_ready: *auto_ready, ..RegionPolicy::default() };
                if *short_clocks {
                    let targets = yilian_referral::SlaTargets {
                        offer_timeout_ms: 20 * MINUTE,
                        offer_to_accept_ms: 30 * MINUTE,
                        accept_to_report_ms: HOUR,
                    };
                    policy.sla.insert(Priority::Routine, targets);
                }
                Command::new(ops(), Change::SetPolicy { region: REGION.into(), policy })
            }
            Op::RequestTransfer { case, up, to, from, service, who } => {
                let c = self.nth_case(region, *case);
                let request = TransferRequest {
                    case: self.case_id(region, *case),
                    direction: if *up { Direction::Up } else { Direction::Down },
                    to: fid(FACILITIES[*to]),
                    from: from.map(|f| fid(FACILITIES[f])),
                    service: SERVICES[*service].into(),
                    slot_ms: None,
                    follow_up: Vec::new(),
                };
                Command::new(self.actor(who, c, None), Change::RequestTransfer(request))
            }
            Op::TransferAct { transfer, action, who } => {
                let n = region.transfers().count();
                let t = (n > 0).then(|| region.transfers().nth(transfer % n)).flatten();
                let id = t.map_or_else(|| TransferId::from_sequence(999), |t| t.id.clone());
                let action = match action {
                    0 => TransferAction::Accept,
                    1 => TransferAction::Reject { reason: RejectReason::AtCapacity },
                    2 => TransferAction::Reject { reason: RejectReason::Other("no bed".into()) },
                    3 => TransferAction::Cancel { reason: "patient declined".into() },
                    _ => TransferAction::Complete,
                };
                // The receiver for accept/reject/complete, the sender for cancel, unless told otherwise.
                let own =
                    t.map(|t| if matches!(action, TransferAction::Cancel { .. }) { &t.from } else { &t.to });
                let actor = match (who, own) {
                    (Who::Owner | Who::OwnStaff, Some(f)) => staff(&f.0),
                    (other, _) => self.actor(other, None, None),
                };
                Command::new(actor, Change::Transfer { transfer: id, action })
            }
            Op::TransferProgress { case, pick } => {
                let c = self.nth_case(region, *case)?;
                let transfers: Vec<_> = c.transfers.iter().filter_map(|t| region.transfer(t).ok()).collect();
                let change = match transfers.iter().find(|t| !t.status.is_closed()) {
                    Some(t) => {
                        let (actor, action) = match (t.status, pick % 6) {
                            (_, 0) => {
                                (staff(&t.from.0), TransferAction::Cancel { reason: "plan changed".into() })
                            }
                            (TransferStatus::Requested, 1) => {
                                (staff(&t.to.0), TransferAction::Reject { reason: RejectReason::AtCapacity })
                            }
                            (TransferStatus::Requested, _) => (staff(&t.to.0), TransferAction::Accept),
                            _ => (staff(&t.to.0), TransferAction::Complete),
                        };
                        return Some(Command::new(
                            actor,
                            Change::Transfer { transfer: t.id.clone(), action },
                        ));
                    }
                    None => {
                        let here = transfers
                            .iter()
                            .rev()
                            .find(|t| t.status == TransferStatus::Completed)
                            .map_or(c.origin.clone(), |t| t.to.clone());
                        let level = region.facility(&here).map(|f| f.level).ok()?;
                        let (direction, to, service) = if level == yilian_referral::FacilityLevel::Township {
                            let parent = region.facility(&here).ok()?.parent.clone()?;
                            (Direction::Up, parent, "cardiology-ward")
                        } else {
                            (Direction::Down, fid(TOWNSHIPS[pick % TOWNSHIPS.len()]), "rehab-stroke")
                        };
                        let request = TransferRequest {
                            case: c.id.clone(),
                            direction,
                            to,
                            from: None,
                            service: service.into(),
                            slot_ms: None,
                            follow_up: Vec::new(),
                        };
                        Change::RequestTransfer(request)
                    }
                };
                Command::new(ops(), change)
            }
            Op::Tick { advance, by_system } => {
                self.now += advance;
                let actor = if *by_system { Actor::system() } else { ops() };
                Command::new(actor, Change::Tick)
            }
            Op::Advance { ms } => {
                self.now += ms;
                return None;
            }
            Op::Rewind { ms } => {
                self.now = self.now.saturating_sub(*ms);
                return None;
            }
        };
        Some(command)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Offers the test has seen being made and found eligible, by case and offer index.
#[derive(Default)]
struct Checker {
    verified_offers: BTreeSet<(CaseId, usize)>,
}

fn history_rules(case: &Case, from: usize) -> Vec<&str> {
    case.history[from..].iter().map(|e| e.rule.as_str()).collect()
}

fn worklist_key(c: &Case) -> (std::cmp::Reverse<Priority>, u64, CaseId) {
    (std::cmp::Reverse(c.priority), c.next_deadline().unwrap_or(u64::MAX), c.id.clone())
}

/// Invariants of a single state.
fn check_state(r: &Region, checker: &Checker) {
    let mut held: BTreeMap<SpecialistId, BTreeSet<CaseId>> = BTreeMap::new();
    let mut earliest: Option<u64> = None;
    let audit: BTreeMap<u64, _> = r.audit_events().map(|e| (e.seq, e)).collect();

    for c in r.cases() {
        let id = &c.id;
        let open_offers = c.routing.offers.iter().filter(|o| o.outcome.is_none()).count();
        let last = c.routing.offers.last();
        assert!(open_offers <= 1, "{id}: {open_offers} open offers");
        if open_offers == 1 {
            assert!(last.is_some_and(|o| o.outcome.is_none()), "{id}: the open offer is not the latest");
        }
        if c.status == TaskStatus::Draft {
            assert_eq!(c.owner, None, "{id}: draft with an owner");
            assert!(c.routing.offers.is_empty(), "{id}: draft with offers");
        }
        if c.status.is_offer_stage() {
            match &c.owner {
                Some(owner) => {
                    assert!(c.routing.offer_deadline_ms.is_some(), "{id}: offered without a deadline");
                    assert!(!c.is_unrouted(), "{id}: offered and unrouted");
                    assert_eq!(open_offers, 1, "{id}: offered without an open offer record");
                    assert_eq!(
                        last.map(|o| &o.specialist),
                        Some(owner),
                        "{id}: owner is not the offered reader"
                    );
                    // Whoever holds an offer is qualified and on shift (cap may be overridden by ops).
                    let s = r.specialist(owner).expect("offered reader exists");
                    let e = r.eligibility(c, s);
                    assert!(matches!(e, Ok(()) | Err(Ineligible::AtCap)), "{id}: offered to {owner}: {e:?}");
                }
                None => {
                    assert!(c.is_unrouted(), "{id}: waiting without an owner but not flagged unrouted");
                    assert_eq!(c.routing.offer_deadline_ms, None, "{id}: deadline without an offer");
                    assert_eq!(open_offers, 0, "{id}: open offer record without an owner");
                }
            }
        } else {
            assert_eq!(c.routing.offer_deadline_ms, None, "{id} is {} with an offer deadline", c.status);
            assert!(!c.is_unrouted(), "{id} is {} and flagged unrouted", c.status);
            assert_eq!(open_offers, 0, "{id} is {} with an open offer record", c.status);
        }
        if c.status.is_owned_stage() {
            let owner = c.owner.as_ref().unwrap_or_else(|| panic!("{id} is {} without an owner", c.status));
            let last = last.expect("owned case has an offer");
            assert_eq!(&last.specialist, owner, "{id}: owner is not the reader of the last offer");
            assert_eq!(last.outcome, Some(OfferOutcome::Accepted), "{id}: last offer not accepted");
            let idx = c.routing.offers.len() - 1;
            assert!(
                checker.verified_offers.contains(&(id.clone(), idx)),
                "{id}: owned through an offer that was never checked for eligibility"
            );
            assert!(
                c.sla.accepted_at_ms.is_some() && c.sla.report_due_ms.is_some(),
                "{id}: owned without clocks"
            );
        }
        if c.is_open() {
            if let Some(owner) = &c.owner {
                held.entry(owner.clone()).or_default().insert(id.clone());
            }
            if let Some(t) = c.next_deadline() {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }

        // History: a chain of transitions ending in the current status, each with its audit event.
        assert!(!c.history.is_empty(), "{id}: no history");
        assert_eq!(c.history.last().map(|e| e.to), Some(c.status), "{id}: status differs from history");
        for pair in c.history.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "{id}: history is not a chain");
            assert!(pair[0].at_ms <= pair[1].at_ms, "{id}: history runs backwards");
        }
        for e in &c.history {
            let a = audit.get(&e.audit_seq).unwrap_or_else(|| panic!("{id}: no audit event {}", e.audit_seq));
            assert_eq!(a.event_type, format!("case.{}", e.rule));
            assert_eq!(a.case.as_ref(), Some(id));
            assert_eq!(a.actor, e.actor);
            assert_eq!(a.detail, e.reason);
        }
        // Each clock breaches at most once per request round.
        let mut breaches = BTreeSet::new();
        for b in &c.sla.breaches {
            assert!(
                breaches.insert((b.round, b.clock)),
                "{id}: {:?} breached twice in round {}",
                b.clock,
                b.round
            );
            assert!(b.due_ms <= b.at_ms);
        }
        // At most one open transfer per case.
        let open_transfers =
            c.transfers.iter().filter(|t| r.transfer(t).is_ok_and(|t| !t.status.is_closed())).count();
        assert!(open_transfers <= 1, "{id}: {open_transfers} open transfers");
    }

    // Worklists are exactly the open cases each reader holds; no case is on two.
    for s in r.specialists() {
        let list = r.worklist(&s.id);
        let ids: BTreeSet<CaseId> = list.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids.len(), list.len(), "{}: duplicate worklist entries", s.id);
        assert_eq!(
            ids,
            held.remove(&s.id).unwrap_or_default(),
            "{}: worklist differs from owned cases",
            s.id
        );
        assert!(
            list.windows(2).all(|w| worklist_key(w[0]) <= worklist_key(w[1])),
            "{}: worklist not most urgent first, then earliest deadline",
            s.id
        );
    }
    assert!(held.is_empty(), "open cases held by unknown readers: {held:?}");
    assert_eq!(r.next_deadline(), earliest, "deadline index out of step");

    let unrouted = CaseFilter { unrouted: Some(true), ..CaseFilter::default() };
    assert!(r.find_cases(&unrouted).all(|c| c.status.is_offer_stage() && c.owner.is_none()));

    // The audit trail is numbered from 1 without gaps, in time order.
    for (i, e) in r.audit_events().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "audit sequence has a gap");
    }
    let times: Vec<u64> = r.audit_events().map(|e| e.at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "audit trail runs backwards");
    assert!(times.last().is_none_or(|t| *t <= r.clock_ms()));

    for t in r.transfers() {
        let case = r.case(&t.case).expect("transfer's case exists");
        assert!(case.transfers.contains(&t.id));
        assert_eq!(t.history.last().map(|e| e.status), Some(t.status));
    }
}

fn is_action_on(command: &Command, id: &CaseId, pred: impl Fn(&CaseAction) -> bool) -> bool {
    matches!(&command.change, Change::Case { case, action, .. } if case == id && pred(action))
}

/// Properties of one accepted command: how `before` became `after`.
fn check_step(before: &Region, after: &Region, command: &Command, applied: &Applied, checker: &mut Checker) {
    let now = after.clock_ms();
    let new_audit: Vec<_> =
        after.audit_events().filter(|e| e.seq > before.audit_events().count() as u64).collect();
    let is_tick = matches!(command.change, Change::Tick);

    // Nothing is ever deleted.
    for key in before.keys() {
        assert!(after.entity(&key).is_some(), "{key:?} disappeared");
    }

    for c in after.cases() {
        let id = &c.id;
        let prev = before.case(id).ok();
        let (prev_history, prev_offers) = prev.map_or((0, 0), |p| (p.history.len(), p.routing.offers.len()));

        // History and offers are append-only; only an open offer's outcome may be filled in.
        if let Some(p) = prev {
            assert_eq!(c.history[..prev_history], p.history[..], "{id}: history rewritten");
            assert!(c.routing.offers.len() >= prev_offers, "{id}: offers removed");
            for (old, new) in p.routing.offers.iter().zip(&c.routing.offers) {
                assert_eq!((&old.specialist, old.at_ms, old.step), (&new.specialist, new.at_ms, new.step));
                assert!(old.outcome.is_none() || old.outcome == new.outcome, "{id}: offer outcome rewritten");
            }
            assert!(c.sla.breaches.starts_with(&p.sla.breaches), "{id}: breaches rewritten");
        }
        for e in &c.history[prev_history..] {
            assert_eq!(e.at_ms, now, "{id}: event stamped {} at {now}", e.at_ms);
        }

        // Only ticks breach, at the tick's time, for deadlines that have passed.
        let prev_breaches = prev.map_or(0, |p| p.sla.breaches.len());
        for b in &c.sla.breaches[prev_breaches..] {
            assert!(is_tick, "{id}: breach recorded by {:?}", command.change);
            assert_eq!(b.at_ms, now);
            assert!(b.due_ms <= now);
        }

        // Terminal stays terminal, except through an audited reopen (or being marked in error).
        if let Some(p) = prev.filter(|p| p.status.is_terminal()) {
            let new_rules = history_rules(c, prev_history);
            if !c.status.is_terminal() {
                let reason = match &command.change {
                    Change::Case { case, action: CaseAction::Reopen, reason: Some(reason) } if case == id => {
                        reason
                    }
                    other => panic!("{id} left {} through {other:?}", p.status),
                };
                let reopen = &c.history[prev_history];
                assert_eq!(reopen.rule, "audited-reopen");
                assert_eq!((reopen.from, reopen.to), (p.status, TaskStatus::Requested));
                assert_eq!(reopen.reason.as_ref(), Some(reason));
                assert_eq!(reopen.actor, command.actor);
                assert!(
                    new_audit.iter().any(|a| a.event_type == "case.audited-reopen"
                        && a.case.as_ref() == Some(id)
                        && a.detail.as_ref() == Some(reason)
                        && a.seq == reopen.audit_seq),
                    "{id}: reopen without its audit event"
                );
                assert_eq!(c.sla.round, p.sla.round + 1, "{id}: reopen did not start a new round");
            } else if c.status != p.status {
                assert_eq!(c.status, TaskStatus::EnteredInError);
                assert!(is_action_on(command, id, |a| *a == CaseAction::EnterInError));
                assert_eq!(new_rules, ["requester-or-ops-enters-in-error"]);
            } else {
                assert!(new_rules.is_empty(), "{id} is {} yet got {new_rules:?}", p.status);
            }
        }

        // Every new offer went to a qualified, on-shift reader; the one still open (when the
        // router made it) to a reader who is eligible outright and has not passed on the case.
        let by_assign = is_action_on(command, id, |a| matches!(a, CaseAction::Assign { .. }));
        let by_hand_off = is_action_on(command, id, |a| matches!(a, CaseAction::HandOff { .. }));
        for (idx, offer) in c.routing.offers.iter().enumerate().skip(prev_offers) {
            assert_eq!(offer.at_ms, now);
            let s = after.specialist(&offer.specialist).expect("offered reader exists");
            let e = after.eligibility(c, s);
            assert!(matches!(e, Ok(()) | Err(Ineligible::AtCap)), "{id}: offered to {}: {e:?}", s.id);
            let current = idx + 1 == c.routing.offers.len() && offer.outcome.is_none();
            if current && !by_assign {
                assert_eq!(e, Ok(()), "{id}: offered to {} who was not eligible", s.id);
                if !by_hand_off {
                    assert!(!c.routing.passed_over.contains(&s.id), "{id}: rerouted to {} who passed", s.id);
                }
            }
            checker.verified_offers.insert((id.clone(), idx));
        }

        // Escalation climbs the ladder; a decline passes the reader over for good.
        if let Some(p) = prev {
            if history_rules(c, prev_history).contains(&"escalated-to-next-tier") && c.owner.is_some() {
                assert!(
                    c.routing.step > p.routing.step,
                    "{id}: escalated from step {} to {}",
                    p.routing.step,
                    c.routing.step
                );
            }
            if is_action_on(command, id, |a| *a == CaseAction::Decline) {
                let decliner = p.owner.as_ref().expect("declined an offer");
                assert!(c.routing.passed_over.contains(decliner), "{id}: decliner not passed over");
                assert_ne!(c.owner.as_ref(), Some(decliner), "{id}: offered straight back to the decliner");
            }
        }

        // Cases accepted in this step are owned by the reader of their last offer (checked in
        // check_state) and were accepted by that reader or by rule.
        let newly_accepted = c.status.is_owned_stage()
            && prev.is_none_or(|p| {
                !p.status.is_owned_stage() || p.routing.offers.len() != c.routing.offers.len()
            });
        if newly_accepted {
            let rules = history_rules(c, prev_history);
            let by_owner = is_action_on(command, id, |a| *a == CaseAction::Accept)
                && c.owner.as_ref().is_some_and(|o| o.0 == command.actor.id);
            assert!(by_owner || rules.contains(&"stat-ready-by-rule"), "{id} accepted through {rules:?}");
        }
    }

    // Transfers only move forward; a capacity rejection flips the receiver's declaration to no.
    for t in after.transfers() {
        let prev = before.transfer(&t.id).ok();
        match prev.map(|p| p.status) {
            None => {
                assert_eq!(t.status, TransferStatus::Requested);
                if t.direction == Direction::Down {
                    assert!(
                        t.declared_capacity.is_some_and(Capacity::can_take),
                        "{}: sent down without capacity",
                        t.id
                    );
                }
            }
            Some(old) if old == t.status => {}
            Some(old) => {
                let ok = matches!(
                    (old, t.status),
                    (TransferStatus::Requested, TransferStatus::Accepted | TransferStatus::Rejected)
                        | (TransferStatus::Requested | TransferStatus::Accepted, TransferStatus::Cancelled)
                        | (TransferStatus::Accepted, TransferStatus::Completed)
                );
                assert!(ok, "{}: {old} -> {}", t.id, t.status);
                if t.reject_reason == Some(RejectReason::AtCapacity) {
                    let to = after.facility(&t.to).expect("receiver");
                    assert_eq!(to.capacity_for(&t.service), Some(Capacity::No));
                }
            }
        }
    }

    // A tick leaves no deadline behind that has already passed.
    if is_tick {
        assert!(after.next_deadline().is_none_or(|t| t > now), "tick left a passed deadline");
    }

    // The answer matches the state.
    match applied.result.as_ref().expect("accepted") {
        Outcome::Case { case_id, status, owner, unrouted } => {
            let c = after.case(case_id).expect("answered case exists");
            assert_eq!((c.status, &c.owner, c.is_unrouted()), (*status, owner, *unrouted));
        }
        Outcome::Transfer { transfer_id, status, suggestion } => {
            let t = after.transfer(transfer_id).expect("answered transfer exists");
            assert_eq!((t.status, &t.suggestion), (*status, suggestion));
        }
        Outcome::Updated { cases_moved, .. } => {
            for id in cases_moved {
                assert!(after.case(id).is_ok());
            }
        }
        Outcome::Study { study_uid, case_id, instances, committed, holders } => {
            let st = after.study(study_uid).expect("answered study exists");
            assert_eq!(
                (&st.case, st.instances.len(), st.is_committed(), &st.complete_holders()),
                (case_id, *instances, *committed, holders)
            );
        }
        Outcome::BreakGlass { grant, .. } => {
            assert!(after.break_glass_grants().any(|g| g.id == *grant));
        }
        Outcome::Registered { .. } | Outcome::Tick { .. } | Outcome::Recorded { .. } => {}
    }
}

/// Apply one command to both replicas and the "disk", and check everything.
fn step(replicas: &mut [Region; 2], disk: &mut Region, checker: &mut Checker, at: u64, command: &Command) {
    let before = replicas[0].clone();
    let applied = replicas[0].apply(at, command);
    let applied_b = replicas[1].apply(at, command);

    // Determinism: same answer, same touched list, same state.
    assert_eq!(applied, applied_b, "replicas answered differently");
    assert_eq!(replicas[0], replicas[1], "replicas diverged");
    let after = &replicas[0];
    assert_eq!(after.clock_ms(), before.clock_ms().max(at));

    // Persisting just the touched entities reproduces the state (indexes rebuilt as they load).
    // They are stored as storage does: encoded from the borrowed entity, which must give the
    // owned entity's bytes, and decoded as owned when loaded.
    for key in &applied.touched {
        let stored = after.entity_ref(key).unwrap_or_else(|| panic!("touched {key:?} does not exist"));
        let bytes = yilian_referral::codec::encode(&stored).expect("encode borrowed");
        let owned = stored.to_entity();
        assert_eq!(bytes, yilian_referral::codec::encode(&owned).expect("encode owned"), "{key:?}");
        let loaded: Entity = yilian_referral::codec::decode(&bytes).expect("decode");
        assert_eq!(loaded, owned, "{key:?}");
        disk.restore(loaded);
    }
    assert_eq!(&*disk, after, "persisting the touched entities did not reproduce the region");

    match &applied.result {
        Err(_) => assert_unchanged_by_refusal(&before, after, at, &applied.touched),
        Ok(_) => check_step(&before, after, command, &applied, checker),
    }
    check_state(after, checker);
}

fn round_trip(region: &Region) {
    let bytes = yilian_referral::codec::encode(region).expect("serialize");
    let back: Region = yilian_referral::codec::decode(&bytes).expect("deserialize");
    assert_eq!(&back, region, "serde round trip changed the region");
}

/// The standard region, with stroke-rehab capacity declared at two townships.
fn fresh() -> Sim {
    let mut sim = Sim::standard();
    for (ts, capacity) in [(TS3, Capacity::Yes), (TS4, Capacity::Waitlist { days: 10 })] {
        sim.ok(
            staff(ts),
            Change::DeclareCapacity { facility: fid(ts), service: "rehab-stroke".into(), capacity },
        );
    }
    sim
}

fn run(ops: &[Op]) {
    let start = fresh();
    let mut replicas = [start.region.clone(), fresh().region];
    let mut disk: Region =
        yilian_referral::codec::decode(&yilian_referral::codec::encode(&start.region).expect("ser"))
            .expect("de");
    assert_eq!(disk, start.region);
    let mut checker = Checker::default();
    let mut resolver = Resolver { readers: reader_pool(), now: start.now };
    for op in ops {
        let Some(command) = resolver.resolve(op, &replicas[0]) else { continue };
        step(&mut replicas, &mut disk, &mut checker, resolver.now, &command);
        round_trip(&replicas[0]);
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_command_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..=60)) {
        run(&ops);
    }
}

/// A hand-written sequence through the same checker, so the checks themselves are exercised on
/// every interesting path even if the random ones happen to miss some.
#[test]
fn scripted_sequence_keeps_the_invariants() {
    let who = |i| Who::Reader(i);
    let mut ops = vec![Op::Policy { auto_ready: false, short_clocks: true }];
    for p in 0..PATIENTS {
        for (specialty, modality) in [(0, 1), (0, 2), (1, 4), (2, 3), (3, 0)] {
            let origin = usize::from(p) % ORIGINS.len();
            ops.push(Op::Submit {
                origin,
                patient: p,
                priority: usize::from(p),
                specialty,
                modality,
                green: false,
                draft: p == 1,
                target: None,
                by_own_staff: true,
            });
        }
    }
    for round in 0..6usize {
        for case in 0..20 {
            ops.push(Op::Progress { case, pick: case + round });
        }
        ops.push(Op::Shift { reader: round, on: round % 2 == 1, who: Who::Ops });
        ops.push(Op::Device {
            facility: 3 + round % 4,
            modality: 1,
            in_service: round % 2 == 1,
            reason: true,
            who: Who::Ops,
        });
        ops.push(Op::Act { case: round, action: 15, who: Who::Ops, reason: false, colleague: round });
        ops.push(Op::Act { case: round + 3, action: 3, who: who(round), reason: true, colleague: 0 });
        ops.push(Op::Capacity {
            facility: 3 + round % 4,
            service: 0,
            capacity: round % 3,
            who: Who::OwnStaff,
        });
        ops.push(Op::RequestTransfer {
            case: round,
            up: round % 2 == 0,
            to: round % 7,
            from: None,
            service: 0,
            who: Who::Ops,
        });
        ops.push(Op::TransferAct { transfer: round, action: round % 5, who: Who::OwnStaff });
        ops.push(Op::Tick { advance: 25 * MINUTE * round as u64, by_system: true });
    }
    ops.push(Op::Rewind { ms: HOUR });
    ops.push(Op::Tick { advance: 0, by_system: true });
    ops.push(Op::Tick { advance: 3 * 24 * HOUR, by_system: true });
    run(&ops);
}

/// The checker itself notices a broken state (here: an accepted case that lost its owner, as a
/// bad snapshot or a handler writing around `put_case` could produce).
#[test]
#[should_panic(expected = "without an owner")]
fn checker_rejects_an_owned_case_without_owner() {
    let mut sim = fresh();
    let id = sim.submit(submission(TS1, patient(1), Priority::Routine, "radiology", Some(Modality::Dr)));
    sim.owner_act(&id, CaseAction::Accept, None);
    let mut checker = Checker::default();
    let case = sim.case(&id);
    checker.verified_offers.insert((id.clone(), case.routing.offers.len() - 1));
    check_state(&sim.region, &checker);
    let mut broken = case.clone();
    broken.owner = None;
    sim.region.restore(yilian_referral::Entity::Case(Box::new(broken)));
    check_state(&sim.region, &checker);
}

/// ... and an accepted case whose offer was never seen being made to an eligible reader.
#[test]
#[should_panic(expected = "never checked for eligibility")]
fn checker_rejects_an_acceptance_it_did_not_see_offered() {
    let mut sim = fresh();
    let id = sim.submit(submission(TS1, patient(1), Priority::Routine, "radiology", Some(Modality::Dr)));
    sim.owner_act(&id, CaseAction::Accept, None);
    check_state(&sim.region, &Checker::default());
}
