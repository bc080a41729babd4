//! Scenario tests: short, readable stories through the referral domain, each asserting statuses,
//! owners, history rules and audit events along the way.

mod common;

use common::*;
use yilian_referral::case::{OfferOutcome, SlaClock};
use yilian_referral::transfer::{FollowUp, RejectReason};
use yilian_referral::{
    Actor, AuditAction, Capacity, CaseAction, CaseFilter, Change, Direction, DomainError, GreenChannel,
    Modality, Outcome, Priority, RegionPolicy, TaskStatus, TransferAction, TransferId, TransferRequest,
    TransferStatus,
};

use Modality::{Ct, Dr, Ecg, Us};

fn routine(origin: &str, p: u8, specialty: &str, modality: Modality) -> yilian_referral::CaseSubmission {
    submission(origin, patient(p), Priority::Routine, specialty, Some(modality))
}

fn stat(origin: &str, p: u8, specialty: &str, modality: Modality) -> yilian_referral::CaseSubmission {
    submission(origin, patient(p), Priority::Stat, specialty, Some(modality))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Escalation on timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn unanswered_offer_moves_on_then_accept_breach_escalates_to_the_province_once() {
    let mut sim = Sim::with_readers(&[
        reader("cty1-rad-a", CTY1, "radiology", &[Us], 2, true),
        reader("cty1-rad-b", CTY1, "radiology", &[Us], 2, true),
        reader("prov-rad-a", PROV, "radiology", &[Us], 3, true),
    ]);
    sim.advance(MINUTE);
    let t = sim.now;
    let id = sim.submit(routine(TS1, 1, "radiology", Us));

    // Routine: a 2 h offer, 4 h to acceptance. Offered at the community head first.
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Requested);
    assert_eq!(case.owner, Some(sid("cty1-rad-a")));
    assert_eq!(case.routing.step, 0);
    assert_eq!(case.routing.offer_deadline_ms, Some(t + 2 * HOUR));
    assert_eq!(case.sla.accept_due_ms, t + 4 * HOUR);
    assert_eq!(sim.region.next_deadline(), Some(t + 2 * HOUR));

    // Nothing is due a millisecond early.
    assert_eq!(sim.tick_at(t + 2 * HOUR - 1), 0);
    assert_eq!(sim.owner(&id), Some(sid("cty1-rad-a")));

    // The offer lapses: the next reader at the same step gets it, the first one is passed over.
    assert_eq!(sim.tick_at(t + 2 * HOUR), 1);
    let case = sim.case(&id);
    assert_eq!(case.owner, Some(sid("cty1-rad-b")));
    assert_eq!(case.routing.step, 0);
    assert_eq!(case.routing.offers[0].outcome, Some(OfferOutcome::TimedOut));
    assert!(case.routing.passed_over.contains(&sid("cty1-rad-a")));
    assert_eq!(case.routing.offer_deadline_ms, Some(t + 4 * HOUR));
    assert_eq!(strs(&sim.rules(&id)), ["submitted", "routed", "offer-timeout", "routed"]);
    assert!(case.sla.breaches.is_empty());

    // The accept clock runs out: one breach, and the case climbs to the provincial tier.
    assert_eq!(sim.tick_at(t + 4 * HOUR), 1);
    let case = sim.case(&id);
    assert_eq!(case.sla.breaches.len(), 1);
    let breach = &case.sla.breaches[0];
    assert_eq!(
        (breach.clock, breach.round, breach.due_ms, breach.at_ms),
        (SlaClock::Accept, 0, t + 4 * HOUR, t + 4 * HOUR)
    );
    assert_eq!(case.owner, Some(sid("prov-rad-a")));
    assert_eq!(case.routing.step, 1);
    assert_eq!(case.status, TaskStatus::Requested);
    assert_eq!(case.routing.offers[1].outcome, Some(OfferOutcome::TimedOut));
    assert_eq!(
        strs(&sim.rules(&id)),
        [
            "submitted",
            "routed",
            "offer-timeout",
            "routed",
            "sla-accept-breach",
            "escalated-to-next-tier",
            "routed"
        ]
    );
    let breach_event = sim.events(&id, "sla-accept-breach")[0];
    assert_eq!(breach_event.actor, Actor::system());
    assert!(breach_event.reason.as_deref().is_some_and(|r| r.contains("escalating")));
    let audits = sim.audit_of(&id, "case.sla-accept-breach");
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].action, AuditAction::E);
    assert_eq!(sim.worklist("prov-rad-a"), vec![id.clone()]);
    assert!(sim.worklist("cty1-rad-b").is_empty());

    // Ticking again at the same time or later does not breach again.
    assert_eq!(sim.tick_at(t + 4 * HOUR), 0);
    assert_eq!(sim.tick_at(t + 5 * HOUR), 0);
    assert_eq!(sim.case(&id).sla.breaches.len(), 1);
    assert_eq!(sim.events(&id, "sla-accept-breach").len(), 1);

    // The provincial offer lapses too: nobody is left on the ladder, so the case waits for ops,
    // still with a single breach.
    assert_eq!(sim.tick_at(t + 6 * HOUR), 1);
    let case = sim.case(&id);
    assert_eq!(case.owner, None);
    assert!(case.is_unrouted());
    assert_eq!(sim.rules(&id).last().map(String::as_str), Some("unrouted"));
    assert_eq!(case.sla.breaches.len(), 1);
    assert_eq!(case.next_deadline(), None);
    assert_eq!(sim.tick_at(t + 48 * HOUR), 0);
    assert_eq!(sim.case(&id).sla.breaches.len(), 1);
}

#[test]
fn accept_breach_without_a_higher_tier_alerts_ops_and_keeps_the_offer() {
    let mut sim = Sim::with_readers(&[reader("cty1-rad-a", CTY1, "radiology", &[Us], 2, true)]);
    let policy = RegionPolicy {
        sla: [(
            Priority::Routine,
            yilian_referral::SlaTargets {
                offer_timeout_ms: 6 * HOUR,
                offer_to_accept_ms: HOUR,
                accept_to_report_ms: 20 * HOUR,
            },
        )]
        .into(),
        stat_auto_ready: false,
        specialist_grace_ms: None,
    };
    sim.ok(ops(), Change::SetPolicy { region: REGION.into(), policy });
    let t = sim.now;
    let id = sim.submit(routine(TS1, 1, "radiology", Us));
    assert_eq!(sim.tick_at(t + HOUR), 1);
    let case = sim.case(&id);
    assert_eq!(case.sla.breaches.len(), 1);
    assert_eq!(case.owner, Some(sid("cty1-rad-a")), "nobody higher up: the offer stands");
    assert_eq!(case.routing.offer_deadline_ms, Some(t + 6 * HOUR));
    let ev = sim.events(&id, "sla-accept-breach")[0];
    assert!(ev.reason.as_deref().is_some_and(|r| r.contains("ops alerted")));
    assert!(sim.events(&id, "escalated-to-next-tier").is_empty());
    assert_eq!(sim.tick_at(t + 2 * HOUR), 0);
}

#[test]
fn report_clock_breaches_once_and_stops_when_the_report_is_filed() {
    let mut sim = Sim::with_readers(&[reader("cty1-rad-a", CTY1, "radiology", &[Dr], 2, true)]);
    let id = sim.submit(routine(TS1, 1, "radiology", Dr));
    sim.advance(10 * MINUTE);
    sim.owner_act(&id, CaseAction::Accept, None);
    let accepted = sim.now;
    let case = sim.case(&id);
    assert_eq!(case.sla.accepted_at_ms, Some(accepted));
    assert_eq!(case.sla.report_due_ms, Some(accepted + 20 * HOUR));
    assert_eq!(sim.region.specialist(&sid("cty1-rad-a")).map(|s| s.shift_load), Ok(1));
    sim.owner_act(&id, CaseAction::Start, None);

    assert_eq!(sim.tick_at(accepted + 20 * HOUR), 1);
    let case = sim.case(&id);
    assert_eq!(case.sla.breaches.len(), 1);
    assert_eq!(case.sla.breaches[0].clock, SlaClock::Report);
    assert_eq!(case.status, TaskStatus::InProgress, "a breach does not move the case");
    assert_eq!(sim.tick_at(accepted + 21 * HOUR), 0);

    sim.owner_act(&id, CaseAction::Report { text: "no fracture".into() }, None);
    sim.owner_act(&id, CaseAction::Complete, None);
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Completed);
    assert_eq!(case.reports.len(), 1);
    assert_eq!(case.next_deadline(), None);
    assert_eq!(
        strs(&sim.rules(&id)),
        [
            "submitted",
            "routed",
            "owner-accepts-offer",
            "owner-starts",
            "sla-report-breach",
            "owner-reports",
            "owner-completes-reported"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// (b) STAT preemption
// ---------------------------------------------------------------------------------------------

#[test]
fn stat_case_preempts_the_newest_pending_routine_offer_of_a_reader_at_cap() {
    let mut sim = Sim::with_readers(&[
        reader("cty1-rad-a", CTY1, "radiology", &[Dr, Ct], 2, true),
        reader("prov-rad-a", PROV, "radiology", &[Dr, Ct], 3, true),
    ]);
    let older = sim.submit(routine(TS1, 1, "radiology", Dr));
    sim.advance(MINUTE);
    let newer = sim.submit(routine(TS2, 2, "radiology", Dr));
    assert_eq!(sim.worklist("cty1-rad-a"), [older.clone(), newer.clone()]);
    assert_eq!(sim.region.specialist(&sid("cty1-rad-a")).map(|s| s.cap), Ok(2));

    sim.advance(MINUTE);
    let urgent = sim.submit(stat(TS1, 3, "radiology", Ct));

    // The STAT case goes to the community reader even though they are at cap ...
    let s = sim.case(&urgent);
    assert_eq!(s.owner, Some(sid("cty1-rad-a")));
    assert_eq!(s.status, TaskStatus::Requested);
    // ... whose newest pending routine offer is withdrawn (not held against them) and rerouted.
    let victim = sim.case(&newer);
    assert_eq!(victim.routing.offers[0].specialist, sid("cty1-rad-a"));
    assert_eq!(victim.routing.offers[0].outcome, Some(OfferOutcome::Withdrawn));
    assert!(victim.routing.passed_over.is_empty());
    assert_eq!(victim.owner, Some(sid("prov-rad-a")));
    assert_eq!(victim.routing.step, 1);
    assert_eq!(strs(&sim.rules(&newer)), ["submitted", "routed", "preempted-by-stat", "routed"]);
    let preempted = sim.audit_of(&newer, "case.preempted-by-stat");
    assert_eq!(preempted.len(), 1);
    assert_eq!(preempted[0].actor, Actor::system());
    // The older routine offer is untouched.
    assert_eq!(strs(&sim.rules(&older)), ["submitted", "routed"]);
    assert_eq!(sim.owner(&older), Some(sid("cty1-rad-a")));
    // The STAT case heads the reader's worklist.
    assert_eq!(sim.worklist("cty1-rad-a"), [urgent.clone(), older.clone()]);
    assert_eq!(sim.worklist("prov-rad-a"), vec![newer.clone()]);

    // Owned cases are never preempted: once the routine case is accepted, another STAT case
    // simply goes over the cap.
    sim.owner_act(&older, CaseAction::Accept, None);
    sim.advance(MINUTE);
    let urgent2 = sim.submit(stat(TS2, 4, "radiology", Ct));
    assert_eq!(sim.owner(&urgent2), Some(sid("cty1-rad-a")));
    assert_eq!(sim.case(&older).status, TaskStatus::Accepted);
    assert_eq!(sim.worklist("cty1-rad-a"), [urgent, urgent2, older]);
    assert!(sim.region.audit_events().filter(|e| e.event_type == "case.preempted-by-stat").count() == 1);
}

#[test]
fn stat_auto_ready_policy_accepts_stat_cases_by_rule() {
    let mut sim = Sim::with_readers(&[reader("cty1-card-a", CTY1, "cardiology", &[Ecg], 2, true)]);
    let policy = RegionPolicy { stat_auto_ready: true, ..RegionPolicy::default() };
    sim.ok(ops(), Change::SetPolicy { region: REGION.into(), policy });
    let mut s = stat(TS1, 1, "cardiology", Ecg);
    s.green_channel = Some(GreenChannel::ChestPain);
    let id = sim.submit(s);
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Ready);
    assert_eq!(case.owner, Some(sid("cty1-card-a")));
    assert_eq!(case.routing.offers[0].outcome, Some(OfferOutcome::Accepted));
    assert_eq!(case.routing.offer_deadline_ms, None);
    assert_eq!(case.sla.accepted_at_ms, Some(sim.now));
    assert_eq!(case.sla.report_due_ms, Some(sim.now + 15 * MINUTE));
    assert_eq!(strs(&sim.rules(&id)), ["submitted", "stat-ready-by-rule"]);
    // Ready cases can be reported and completed directly.
    sim.owner_act(&id, CaseAction::Report { text: "STEMI, activate cath lab".into() }, None);
    sim.owner_act(&id, CaseAction::Complete, None);
    assert_eq!(sim.case(&id).status, TaskStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// (c) Down-referral to a facility at capacity
// ---------------------------------------------------------------------------------------------

fn transfer_id(outcome: Outcome) -> TransferId {
    match outcome {
        Outcome::Transfer { transfer_id, .. } => transfer_id,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn down(case: &yilian_referral::CaseId, to: &str) -> Change {
    Change::RequestTransfer(TransferRequest {
        case: case.clone(),
        direction: Direction::Down,
        to: fid(to),
        from: None,
        service: "rehab-stroke".into(),
        slot_ms: None,
        follow_up: vec![FollowUp { what: "rehab session".into(), due_after_days: 3 }],
    })
}

#[test]
fn down_referral_respects_declared_capacity_and_suggests_the_nearest_alternative() {
    let mut sim = Sim::with_readers(&[reader("cty1-neuro-a", CTY1, "neurology", &[Ct], 4, true)]);
    let id = sim.submit(stat(TS1, 1, "neurology", Ct));
    sim.owner_act(&id, CaseAction::Accept, None);

    // Capacity for stroke rehab, declared by each township's own staff.
    for (ts, capacity) in [(TS2, Capacity::No), (TS3, Capacity::Yes), (TS4, Capacity::Waitlist { days: 14 })]
    {
        let change = Change::DeclareCapacity { facility: fid(ts), service: "rehab-stroke".into(), capacity };
        sim.ok(staff(ts), change);
    }
    // Another facility's staff cannot declare for TS3.
    let err = sim.refused(
        staff(TS2),
        Change::DeclareCapacity {
            facility: fid(TS3),
            service: "rehab-stroke".into(),
            capacity: Capacity::No,
        },
    );
    assert!(
        matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "facility-staff-declares-capacity")
    );

    // Up to the county hospital (no capacity check going up), admitted, arrived.
    let up = Change::RequestTransfer(TransferRequest {
        case: id.clone(),
        direction: Direction::Up,
        to: fid(CTY1),
        from: None,
        service: "stroke-unit".into(),
        slot_ms: Some(sim.now + HOUR),
        follow_up: Vec::new(),
    });
    let t_up = transfer_id(sim.ok(staff(TS1), up));
    assert_eq!(sim.region.transfer(&t_up).map(|t| t.from.clone()), Ok(fid(TS1)));
    sim.ok(staff(CTY1), Change::Transfer { transfer: t_up.clone(), action: TransferAction::Accept });
    sim.ok(staff(CTY1), Change::Transfer { transfer: t_up.clone(), action: TransferAction::Complete });

    // Down to TS2, which declared no capacity: refused, naming the nearest township that can.
    sim.advance(3 * 24 * HOUR);
    let err = sim.refused(staff(CTY1), down(&id, TS2));
    assert_eq!(
        err,
        DomainError::NoCapacity {
            facility: TS2.into(),
            service: "rehab-stroke".into(),
            declared: "no".into(),
            suggestion: Some(TS3.into()),
        }
    );
    // TS1 never declared: refused as undeclared, again suggesting TS3.
    let err = sim.refused(staff(CTY1), down(&id, TS1));
    assert!(matches!(err, DomainError::NoCapacity { ref declared, ref suggestion, .. }
        if declared == "undeclared" && suggestion.as_deref() == Some(TS3)));
    // "Down" to a facility of the same or a higher tier is invalid.
    let err = sim.refused(staff(CTY1), down(&id, PROV));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "to"));

    // TS3 declared yes: the transfer is sent from where the patient is now (CTY1).
    let t_down = transfer_id(sim.ok(staff(CTY1), down(&id, TS3)));
    let t = sim.region.transfer(&t_down).expect("transfer").clone();
    assert_eq!((t.from.0.as_str(), t.to.0.as_str()), (CTY1, TS3));
    assert_eq!(t.status, TransferStatus::Requested);
    assert_eq!(t.declared_capacity, Some(Capacity::Yes));
    assert_eq!(t.follow_up.len(), 1);
    assert_eq!(sim.case(&id).transfers, [t_up.clone(), t_down.clone()]);

    // At most one open transfer per case.
    let err = sim.refused(staff(CTY1), down(&id, TS4));
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "one-transfer-at-a-time"));
    // Only the receiver decides.
    let err = sim
        .refused(staff(TS4), Change::Transfer { transfer: t_down.clone(), action: TransferAction::Accept });
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "receiver-decides"));

    // The receiver turns out to be full: the transfer is rejected, its declaration flips to no,
    // and the next nearest facility that can take the patient is suggested.
    let reject = TransferAction::Reject { reason: RejectReason::AtCapacity };
    let outcome = sim.ok(staff(TS3), Change::Transfer { transfer: t_down.clone(), action: reject });
    assert_eq!(
        outcome,
        Outcome::Transfer {
            transfer_id: t_down.clone(),
            status: TransferStatus::Rejected,
            suggestion: Some(fid(TS4))
        }
    );
    let t = sim.region.transfer(&t_down).expect("transfer");
    assert_eq!(t.reject_reason, Some(RejectReason::AtCapacity));
    assert_eq!(t.suggestion, Some(fid(TS4)));
    let ts3 = sim.region.facility(&fid(TS3)).expect("TS3");
    assert_eq!(ts3.capacity_for("rehab-stroke"), Some(Capacity::No));
    assert_eq!(ts3.capacity.get("rehab-stroke").map(|d| d.by.as_str()), Some("staff-ts3"));
    let rejected = sim.region.audit_events().filter(|e| e.event_type == "transfer.receiver-decides").last();
    assert_eq!(rejected.and_then(|e| e.detail.as_deref()), Some("at capacity"));
    let options: Vec<_> =
        sim.region.capacity_options("rehab-stroke", &fid(TS3)).into_iter().map(|o| o.facility).collect();
    assert_eq!(options, [fid(TS4)]);

    // With the rejected transfer closed, the suggested facility (waitlist) can be asked.
    let t_next = transfer_id(sim.ok(staff(CTY1), down(&id, TS4)));
    let t = sim.region.transfer(&t_next).expect("transfer");
    assert_eq!(t.declared_capacity, Some(Capacity::Waitlist { days: 14 }));
}

// ---------------------------------------------------------------------------------------------
// (d) Device outage reroute
// ---------------------------------------------------------------------------------------------

#[test]
fn device_outage_moves_open_unreported_exams_to_the_nearest_working_device() {
    let mut sim = Sim::with_readers(&[
        reader("cty1-rad-a", CTY1, "radiology", &[Us, Dr], 8, true),
        reader("prov-rad-a", PROV, "radiology", &[Us, Dr], 8, true),
    ]);
    let open = sim.submit(routine(TS1, 1, "radiology", Us));
    let started = sim.submit(routine(TS1, 2, "radiology", Us));
    sim.owner_act(&started, CaseAction::Accept, None);
    sim.owner_act(&started, CaseAction::Start, None);
    let reported = sim.submit(routine(TS1, 3, "radiology", Us));
    sim.owner_act(&reported, CaseAction::Accept, None);
    sim.owner_act(&reported, CaseAction::Start, None);
    sim.owner_act(&reported, CaseAction::Report { text: "normal".into() }, None);
    let closed = sim.submit(routine(TS1, 4, "radiology", Us));
    sim.owner_act(&closed, CaseAction::Accept, None);
    sim.owner_act(&closed, CaseAction::Start, None);
    sim.owner_act(&closed, CaseAction::Report { text: "normal".into() }, None);
    sim.owner_act(&closed, CaseAction::Complete, None);
    let other_modality = sim.submit(routine(TS1, 5, "radiology", Dr));
    let elsewhere = sim.submit(routine(TS3, 6, "radiology", Us));
    for id in [&open, &started, &reported, &closed, &other_modality] {
        assert_eq!(sim.case(id).exam_facility, fid(TS1));
    }

    // Only ops or TS1's own staff may take TS1's ultrasound out, and they must say why.
    let out = |reason: Option<&str>| Change::SetDevice {
        facility: fid(TS1),
        modality: Us,
        in_service: false,
        reason: reason.map(str::to_owned),
    };
    let err = sim.refused(staff(TS2), out(Some("probe broken")));
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "facility-staff-sets-device"));
    let err = sim.refused(staff(TS1), out(None));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "reason"));

    sim.advance(HOUR);
    let outcome = sim.ok(staff(TS1), out(Some("probe broken")));
    match outcome {
        Outcome::Updated { cases_moved, .. } => assert_eq!(cases_moved, [open.clone(), started.clone()]),
        other => panic!("unexpected outcome {other:?}"),
    }
    // Open, unreported US exams go to TS2, the nearest facility with a working ultrasound.
    for id in [&open, &started] {
        let case = sim.case(id);
        assert_eq!(case.exam_facility, fid(TS2));
        let events = sim.events(id, "device-outage-reroute");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].from, events[0].to, "a reroute does not change the status");
        assert!(events[0].reason.as_deref().is_some_and(|r| r.contains("TS2")));
        assert_eq!(sim.audit_of(id, "case.device-outage-reroute").len(), 1);
    }
    assert_eq!(sim.case(&open).status, TaskStatus::Requested);
    assert_eq!(sim.case(&started).status, TaskStatus::InProgress);
    // Reported and closed cases, other modalities and other facilities stay where they are.
    for id in [&reported, &closed, &other_modality] {
        assert_eq!(sim.case(id).exam_facility, fid(TS1));
        assert!(sim.events(id, "device-outage-reroute").is_empty());
    }
    assert_eq!(sim.case(&elsewhere).exam_facility, fid(TS3));
    assert!(!sim.region.facility(&fid(TS1)).expect("TS1").device_in_service(Us));

    // New US cases from TS1 are examined at TS2 from the start while the device is down.
    let fresh = sim.submit(routine(TS1, 7, "radiology", Us));
    assert_eq!(sim.case(&fresh).exam_facility, fid(TS2));

    // TS2's ultrasound fails too: everything there moves on to TS3, the next nearest.
    let out2 = Change::SetDevice {
        facility: fid(TS2),
        modality: Us,
        in_service: false,
        reason: Some("power".into()),
    };
    sim.ok(staff(TS2), out2);
    for id in [&open, &started, &fresh] {
        assert_eq!(sim.case(id).exam_facility, fid(TS3));
    }
    assert_eq!(sim.events(&open, "device-outage-reroute").len(), 2);

    // Back in service: exams already moved stay where they are.
    let back = Change::SetDevice { facility: fid(TS1), modality: Us, in_service: true, reason: None };
    match sim.ok(staff(TS1), back) {
        Outcome::Updated { cases_moved, .. } => assert!(cases_moved.is_empty()),
        other => panic!("unexpected outcome {other:?}"),
    }
    assert_eq!(sim.case(&open).exam_facility, fid(TS3));
    assert!(sim.region.facility(&fid(TS1)).expect("TS1").device_in_service(Us));
}

#[test]
fn device_outage_with_no_working_neighbour_is_recorded_but_nothing_moves() {
    let mut sim = Sim::with_readers(&[reader("cty1-card-a", CTY1, "cardiology", &[Ecg], 4, true)]);
    let id = sim.submit(routine(TS1, 1, "cardiology", Ecg));
    // Every other ECG in the region goes down first (nobody has an ECG case there).
    for f in [PROV, CTY1, CTY2] {
        sim.ok(
            ops(),
            Change::SetDevice {
                facility: fid(f),
                modality: Ecg,
                in_service: false,
                reason: Some("recall".into()),
            },
        );
    }
    let outcome = sim.ok(
        staff(TS1),
        Change::SetDevice {
            facility: fid(TS1),
            modality: Ecg,
            in_service: false,
            reason: Some("recall".into()),
        },
    );
    assert!(matches!(outcome, Outcome::Updated { ref cases_moved, .. } if cases_moved.is_empty()));
    assert_eq!(sim.case(&id).exam_facility, fid(TS1));
    assert_eq!(sim.events(&id, "device-outage-no-neighbour").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Transition table and roles
// ---------------------------------------------------------------------------------------------

#[test]
fn illegal_transition_names_the_rule_and_the_allowed_statuses() {
    let mut sim = Sim::standard();
    let id = sim.submit(routine(TS1, 1, "radiology", Dr));
    let owner = sim.owner(&id).expect("routed");
    let before = sim.region.clone();
    let err =
        sim.act(Actor::specialist(&owner.0), &id, CaseAction::Start, None).expect_err("start is illegal");
    assert_eq!(
        err,
        DomainError::InvalidTransition {
            case: id.0.clone(),
            status: "requested".into(),
            action: "start".into(),
            allowed: "accepted".into(),
            rule: "owner-starts".into(),
        }
    );
    assert!(err.to_string().contains("owner-starts"));
    assert_eq!(sim.region, before);

    // Completing needs a filed report.
    sim.owner_act(&id, CaseAction::Accept, None);
    sim.owner_act(&id, CaseAction::Start, None);
    let err = sim.refused(
        Actor::specialist(&owner.0),
        Change::Case { case: id.clone(), action: CaseAction::Complete, reason: None },
    );
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "owner-completes-reported"));
    // Holding needs a reason.
    let err = sim.refused(
        Actor::specialist(&owner.0),
        Change::Case { case: id.clone(), action: CaseAction::Hold, reason: None },
    );
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "reason"));
    // Accepting twice is illegal.
    let err = sim.refused(
        Actor::specialist(&owner.0),
        Change::Case { case: id.clone(), action: CaseAction::Accept, reason: None },
    );
    assert!(matches!(err, DomainError::InvalidTransition { ref rule, .. } if rule == "owner-accepts-offer"));
    // Unknown case.
    let err = sim.refused(
        ops(),
        Change::Case {
            case: yilian_referral::CaseId("C99999999".into()),
            action: CaseAction::Cancel,
            reason: None,
        },
    );
    assert!(matches!(err, DomainError::NotFound { ref kind, .. } if kind == "case"));
}

#[test]
fn actions_outside_ones_role_are_refused_by_the_rule() {
    let mut sim = Sim::standard();
    let id = sim.submit(routine(TS1, 1, "radiology", Dr));
    let owner = sim.owner(&id).expect("routed");
    let not_allowed =
        |e: &DomainError, r: &str| matches!(e, DomainError::NotAllowed { rule, .. } if rule == r);

    // The requesting clinic cannot accept on the reader's behalf, nor can another reader or ops.
    for actor in [staff(TS1), Actor::specialist("cty1-rad-b"), ops()] {
        let change = Change::Case { case: id.clone(), action: CaseAction::Accept, reason: None };
        let err = sim.refused(actor, change);
        assert!(not_allowed(&err, "owner-accepts-offer"), "{err}");
    }
    // A reader cannot cancel a case that is not theirs; staff of another clinic cannot either.
    for actor in [Actor::specialist("prov-rad-a"), staff(TS2)] {
        let change =
            Change::Case { case: id.clone(), action: CaseAction::Cancel, reason: Some("dup".into()) };
        let err = sim.refused(actor, change);
        assert!(not_allowed(&err, "owner-or-requester-cancels"), "{err}");
    }
    // Only ops assign.
    let assign = CaseAction::Assign { to: sid("cty1-rad-b") };
    let change = Change::Case { case: id.clone(), action: assign, reason: None };
    let err = sim.refused(Actor::specialist(&owner.0), change);
    assert!(not_allowed(&err, "ops-assigns"));
    // Cases are submitted by the origin's own staff.
    let err = sim.refused(staff(TS2), Change::SubmitCase(routine(TS1, 2, "radiology", Dr)));
    assert!(not_allowed(&err, "staff-of-origin-submits"));
    // Only the cluster evaluates deadlines; only ops register; shifts are one's own.
    let err = sim.refused(ops(), Change::Tick);
    assert!(not_allowed(&err, "system-evaluates-deadlines"));
    let err =
        sim.refused(staff(TS1), Change::RegisterSpecialist(reader("x", CTY1, "radiology", &[], 1, true)));
    assert!(not_allowed(&err, "ops-registers-specialists"));
    let err =
        sim.refused(Actor::specialist("cty1-rad-b"), Change::SetShift { specialist: owner, on_shift: false });
    assert!(not_allowed(&err, "specialist-or-ops-sets-shift"));

    // The requester may cancel (with a reason); the case is closed and leaves the worklist.
    sim.act_ok(staff(TS1), &id, CaseAction::Cancel, Some("patient transferred by ambulance"));
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Cancelled);
    assert_eq!(case.routing.offer_deadline_ms, None);
    assert_eq!(case.routing.offers[0].outcome, Some(OfferOutcome::Withdrawn));
    assert!(sim.region.worklist(&sid("cty1-rad-a")).is_empty());
}

#[test]
fn reopen_requires_a_reason_and_is_audited() {
    let mut sim = Sim::standard();
    let id = sim.submit(routine(TS1, 1, "radiology", Dr));
    sim.owner_act(&id, CaseAction::Accept, None);
    sim.owner_act(&id, CaseAction::Start, None);
    sim.owner_act(&id, CaseAction::Report { text: "no fracture".into() }, None);
    sim.owner_act(&id, CaseAction::Complete, None);
    let first_reader = sim.owner(&id).expect("owner");
    sim.advance(HOUR);

    let reopen = |reason: Option<&str>| Change::Case {
        case: id.clone(),
        action: CaseAction::Reopen,
        reason: reason.map(str::to_owned),
    };
    let err = sim.refused(staff(TS1), reopen(None));
    assert_eq!(err, DomainError::invalid("reason", "rule `audited-reopen` requires a reason"));
    let err = sim.refused(Actor::specialist(&first_reader.0), reopen(Some("second look")));
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "audited-reopen"));
    let err = sim.refused(staff(TS1), reopen(Some("   ")));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "reason"));

    let outcome = sim.ok(staff(TS1), reopen(Some("pain persists, second read requested")));
    assert!(matches!(outcome, Outcome::Case { status: TaskStatus::Requested, .. }));
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Requested);
    assert!(case.owner.is_some());
    assert_eq!(case.sla.round, 1);
    assert_eq!(case.sla.accepted_at_ms, None);
    assert_eq!(case.sla.reported_at_ms, None);
    assert_eq!(case.reports.len(), 1, "the first report is kept");
    let ev = sim.events(&id, "audited-reopen");
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].from, ev[0].to), (TaskStatus::Completed, TaskStatus::Requested));
    assert_eq!(ev[0].reason.as_deref(), Some("pain persists, second read requested"));
    let audit = sim.audit_of(&id, "case.audited-reopen");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].seq, ev[0].audit_seq);
    assert_eq!(audit[0].actor, staff(TS1));
    assert_eq!(audit[0].detail.as_deref(), Some("pain persists, second read requested"));
    assert_eq!(audit[0].patient, Some(patient(1)));

    // Entered-in-error is reachable from a closed case (still closed), and can be reopened by ops.
    sim.act_ok(staff(TS1), &id, CaseAction::Cancel, Some("duplicate"));
    sim.act_ok(ops(), &id, CaseAction::EnterInError, Some("wrong patient"));
    assert_eq!(sim.case(&id).status, TaskStatus::EnteredInError);
    sim.act_ok(ops(), &id, CaseAction::Reopen, Some("right patient after all"));
    assert_eq!(sim.case(&id).sla.round, 2);
}

#[test]
fn green_channel_cases_must_be_stat() {
    let mut sim = Sim::standard();
    let mut s = submission(TS1, patient(1), Priority::Urgent, "neurology", Some(Ct));
    s.green_channel = Some(GreenChannel::Stroke);
    let err = sim.refused(staff(TS1), Change::SubmitCase(s.clone()));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "priority"));
    s.priority = Priority::Stat;
    let id = sim.submit(s);
    let case = sim.case(&id);
    assert_eq!(case.green_channel, Some(GreenChannel::Stroke));
    assert_eq!(case.owner, Some(sid("prov-neuro-a")), "no neurologist at CTY1: the province reads it");
    assert_eq!(case.routing.step, 1);
    assert_eq!(case.sla.accept_due_ms, sim.now + 5 * MINUTE);
}

#[test]
fn submissions_are_validated_before_anything_changes() {
    let mut sim = Sim::standard();
    let mut bad_key = routine(TS1, 1, "radiology", Dr);
    bad_key.patient = yilian_referral::PatientKey("110101199003071234".into());
    let err = sim.refused(staff(TS1), Change::SubmitCase(bad_key));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "patient_key"));
    let mut bad_vitals = routine(TS1, 1, "radiology", Dr);
    bad_vitals.vitals.spo2_percent = Some(12);
    let err = sim.refused(staff(TS1), Change::SubmitCase(bad_vitals));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "vitals.spo2_percent"));
    let mut township_target = routine(TS1, 1, "radiology", Dr);
    township_target.target = Some(fid(TS2));
    let err = sim.refused(staff(TS1), Change::SubmitCase(township_target));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "target"));
    assert_eq!(sim.region.cases().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[test]
fn unrouted_case_waits_for_ops_and_is_routed_when_a_reader_comes_on_shift() {
    let mut sim = Sim::standard();
    // Cardiology ECG from CTY2's community: cty2-card-a has cap 1 and gets the first case; the
    // provincial cardiologist is off shift, so the second case has nobody.
    let first = sim.submit(routine(TS3, 1, "cardiology", Ecg));
    assert_eq!(sim.owner(&first), Some(sid("cty2-card-a")));
    let waiting = sim.submit(routine(TS3, 2, "cardiology", Ecg));
    let case = sim.case(&waiting);
    assert_eq!(case.status, TaskStatus::Requested);
    assert_eq!(case.owner, None);
    assert!(case.is_unrouted());
    assert_eq!(case.routing.offer_deadline_ms, None);
    assert_eq!(strs(&sim.rules(&waiting)), ["submitted", "unrouted"]);
    let unrouted = CaseFilter { unrouted: Some(true), ..CaseFilter::default() };
    let listed: Vec<_> = sim.region.find_cases(&unrouted).map(|c| c.id.clone()).collect();
    assert_eq!(listed, vec![waiting.clone()]);
    let routed = CaseFilter { unrouted: Some(false), ..CaseFilter::default() };
    assert_eq!(sim.region.find_cases(&routed).count(), 1);

    // Ops may not assign to a reader who is off shift.
    let err = sim.refused(
        ops(),
        Change::Case {
            case: waiting.clone(),
            action: CaseAction::Assign { to: sid("prov-card-a") },
            reason: None,
        },
    );
    assert!(
        matches!(err, DomainError::NotAllowed { ref rule, ref reason } if rule == "ops-assigns" && reason.contains("off shift"))
    );

    // The provincial cardiologist starts a shift: the waiting case is routed to them.
    sim.advance(10 * MINUTE);
    let outcome = sim.ok(
        Actor::specialist("prov-card-a"),
        Change::SetShift { specialist: sid("prov-card-a"), on_shift: true },
    );
    assert!(matches!(outcome, Outcome::Updated { ref cases_moved, .. } if *cases_moved == [waiting.clone()]));
    let case = sim.case(&waiting);
    assert_eq!(case.owner, Some(sid("prov-card-a")));
    assert_eq!(case.routing.step, 1);
    assert!(!case.is_unrouted());
    assert_eq!(sim.region.find_cases(&unrouted).count(), 0);
    assert_eq!(sim.region.specialist(&sid("prov-card-a")).map(|s| s.shift_started_ms), Ok(Some(sim.now)));
}

#[test]
fn ops_can_assign_an_unrouted_case_past_a_readers_cap() {
    let mut sim = Sim::standard();
    let first = sim.submit(routine(TS3, 1, "cardiology", Ecg));
    let waiting = sim.submit(routine(TS3, 2, "cardiology", Ecg));
    assert!(sim.case(&waiting).is_unrouted());
    let assign = CaseAction::Assign { to: sid("cty2-card-a") };
    sim.act_ok(ops(), &waiting, assign, None);
    let case = sim.case(&waiting);
    assert_eq!(case.owner, Some(sid("cty2-card-a")));
    assert!(!case.is_unrouted());
    assert_eq!(strs(&sim.rules(&waiting)), ["submitted", "unrouted", "ops-assigns"]);
    assert_eq!(sim.worklist("cty2-card-a"), [first, waiting]);
}

#[test]
fn open_cases_of_one_patient_go_to_the_same_reader() {
    let mut sim = Sim::standard();
    let a = sim.submit(routine(TS1, 7, "radiology", Dr));
    assert_eq!(sim.owner(&a), Some(sid("cty1-rad-a")));
    // Load balancing alone would pick cty1-rad-b for the next case ...
    let b = sim.submit(routine(TS2, 8, "radiology", Dr));
    assert_eq!(sim.owner(&b), Some(sid("cty1-rad-b")));
    // ... but a second open case of patient 7 follows the first to cty1-rad-a.
    let c = sim.submit(routine(TS1, 7, "radiology", Us));
    assert_eq!(sim.owner(&c), Some(sid("cty1-rad-a")));
    let same_patient = CaseFilter { patient: Some(patient(7)), ..CaseFilter::default() };
    let owners: Vec<_> = sim.region.find_cases(&same_patient).map(|c| c.owner.clone()).collect();
    assert_eq!(owners, [Some(sid("cty1-rad-a")), Some(sid("cty1-rad-a"))]);
}

#[test]
fn declined_offer_passes_the_reader_over_and_climbs_when_the_tier_is_exhausted() {
    let mut sim = Sim::standard();
    let id = sim.submit(routine(TS1, 1, "radiology", Us));
    assert_eq!(sim.owner(&id), Some(sid("cty1-rad-a")));
    sim.owner_act(&id, CaseAction::Receive, None);
    assert_eq!(sim.case(&id).status, TaskStatus::Received);
    sim.owner_act(&id, CaseAction::Decline, None);
    assert_eq!(sim.owner(&id), Some(sid("cty1-rad-b")));
    assert_eq!(sim.case(&id).status, TaskStatus::Requested);
    sim.owner_act(&id, CaseAction::Decline, None);
    let case = sim.case(&id);
    assert_eq!(case.owner, Some(sid("prov-rad-a")), "the licensed provincial reader, not prov-rad-x");
    assert_eq!(case.routing.step, 1);
    let passed: Vec<_> = case.routing.passed_over.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(passed, ["cty1-rad-a", "cty1-rad-b"]);
    let outcomes: Vec<_> = case.routing.offers.iter().map(|o| o.outcome).collect();
    assert_eq!(outcomes, [Some(OfferOutcome::Declined), Some(OfferOutcome::Declined), None]);

    // The provincial reader rejects it as unsuitable: closed, with a reason.
    let err = sim.refused(
        Actor::specialist("prov-rad-a"),
        Change::Case { case: id.clone(), action: CaseAction::Reject, reason: None },
    );
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "reason"));
    sim.owner_act(&id, CaseAction::Reject, Some("needs CT, not ultrasound"));
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Rejected);
    assert_eq!(case.routing.offers[2].outcome, Some(OfferOutcome::Declined));
    assert_eq!(case.routing.offer_deadline_ms, None);
    assert!(sim.worklist("prov-rad-a").is_empty());
}

#[test]
fn going_off_shift_withdraws_pending_offers_but_keeps_owned_cases() {
    let mut sim = Sim::standard();
    let owned = sim.submit(routine(TS1, 1, "radiology", Dr));
    sim.owner_act(&owned, CaseAction::Accept, None);
    let pending = sim.submit(routine(TS1, 1, "radiology", Us));
    assert_eq!(sim.owner(&pending), Some(sid("cty1-rad-a")), "same patient, same reader");

    let outcome = sim.ok(
        Actor::specialist("cty1-rad-a"),
        Change::SetShift { specialist: sid("cty1-rad-a"), on_shift: false },
    );
    assert!(matches!(outcome, Outcome::Updated { ref cases_moved, .. } if *cases_moved == [pending.clone()]));
    assert_eq!(sim.owner(&owned), Some(sid("cty1-rad-a")));
    assert_eq!(sim.case(&owned).status, TaskStatus::Accepted);
    let case = sim.case(&pending);
    assert_eq!(case.owner, Some(sid("cty1-rad-b")));
    assert_eq!(case.routing.offers[0].outcome, Some(OfferOutcome::Withdrawn));
    assert!(case.routing.passed_over.is_empty());
    assert_eq!(strs(&sim.rules(&pending)), ["submitted", "routed", "owner-went-off-shift", "routed"]);
    assert_eq!(sim.worklist("cty1-rad-a"), [owned]);
}

#[test]
fn hand_off_goes_to_an_eligible_colleague_who_must_accept() {
    let mut sim = Sim::standard();
    let id = sim.submit(routine(TS1, 1, "radiology", Us));
    sim.owner_act(&id, CaseAction::Accept, None);
    sim.owner_act(&id, CaseAction::Start, None);
    let accepted_at = sim.case(&id).sla.accepted_at_ms;

    // Not to a reader without the modality privilege, and not without a reason.
    let hand_off = |to: &str, reason: Option<&str>| Change::Case {
        case: id.clone(),
        action: CaseAction::HandOff { to: sid(to) },
        reason: reason.map(str::to_owned),
    };
    let err = sim.refused(Actor::specialist("cty1-rad-a"), hand_off("cty2-rad-a", Some("end of shift")));
    assert!(matches!(err, DomainError::NotAllowed { ref rule, .. } if rule == "owner-hands-off"));
    let err = sim.refused(Actor::specialist("cty1-rad-a"), hand_off("cty1-rad-b", None));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "reason"));

    sim.ok(Actor::specialist("cty1-rad-a"), hand_off("cty1-rad-b", Some("end of shift")));
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Requested);
    assert_eq!(case.owner, Some(sid("cty1-rad-b")));
    assert_eq!(case.sla.accepted_at_ms, accepted_at, "the accept clock is not restarted");
    assert_eq!(sim.worklist("cty1-rad-a"), []);
    assert_eq!(sim.worklist("cty1-rad-b"), vec![id.clone()]);
    sim.owner_act(&id, CaseAction::Accept, None);
    let case = sim.case(&id);
    assert_eq!(case.status, TaskStatus::Accepted);
    assert_eq!(case.routing.offers.last().map(|o| o.outcome), Some(Some(OfferOutcome::Accepted)));
}

#[test]
fn a_target_at_the_community_head_still_escalates_to_the_province() {
    let mut sim = Sim::with_readers(&[
        reader("cty1-rad-a", CTY1, "radiology", &[Us], 2, true),
        reader("prov-rad-a", PROV, "radiology", &[Us], 3, true),
    ]);
    let t = sim.now;
    let mut s = routine(TS1, 1, "radiology", Us);
    s.target = Some(fid(CTY1));
    let id = sim.submit(s);
    assert_eq!(sim.owner(&id), Some(sid("cty1-rad-a")));
    // Preferred target first, then (the community head, already tried, and) the tiers above it.
    assert_eq!(sim.region.ladder(sim.case(&id)), [vec![fid(CTY1)], vec![fid(PROV)]]);
    // Unanswered until the accept clock runs out: it must climb to the province.
    assert_eq!(sim.tick_at(t + 4 * HOUR), 1);
    assert_eq!(sim.owner(&id), Some(sid("prov-rad-a")));
    assert_eq!(sim.events(&id, "escalated-to-next-tier").len(), 1);
}

#[test]
fn refused_command_stamped_later_only_moves_the_clock() {
    let mut sim = Sim::standard();
    sim.advance(HOUR);
    let before = sim.region.clone();
    let applied = sim.apply(staff(TS2), Change::SubmitCase(routine(TS1, 1, "radiology", Dr)));
    assert!(applied.result.is_err());
    assert_eq!(applied.touched, [yilian_referral::EntityKey::Counters]);
    assert_eq!(sim.region.clock_ms(), sim.now);
    assert_eq!(sim.region, after_refusal(&before, sim.now));
    // At the same time again: nothing at all.
    let applied = sim.apply(staff(TS2), Change::SubmitCase(routine(TS1, 1, "radiology", Dr)));
    assert!(applied.result.is_err());
    assert!(applied.touched.is_empty());
}

#[test]
fn a_waiting_case_is_routed_as_soon_as_a_decline_frees_a_reader() {
    let mut sim = Sim::with_readers(&[reader("cty1-rad-a", CTY1, "radiology", &[Dr], 1, true)]);
    let first = sim.submit(routine(TS1, 1, "radiology", Dr));
    assert_eq!(sim.owner(&first), Some(sid("cty1-rad-a")));
    let waiting = sim.submit(routine(TS2, 2, "radiology", Dr));
    assert!(sim.case(&waiting).is_unrouted(), "the only reader is at cap");

    // The reader passes on the first case: they now have room, and the waiting case is theirs.
    sim.owner_act(&first, CaseAction::Decline, None);
    assert!(sim.case(&first).is_unrouted(), "nobody else can read the declined case");
    assert_eq!(
        sim.region
            .eligibility(sim.case(&waiting), sim.region.specialist(&sid("cty1-rad-a")).expect("reader")),
        Ok(())
    );
    assert_eq!(
        sim.owner(&waiting),
        Some(sid("cty1-rad-a")),
        "an eligible reader is free but the case still waits"
    );
}

#[test]
fn only_the_facility_holding_the_patient_can_send_them() {
    let mut sim = Sim::with_readers(&[reader("cty1-rad-a", CTY1, "radiology", &[Dr], 4, true)]);
    let id = sim.submit(routine(TS1, 1, "radiology", Dr));
    let request = |from: Option<&str>| {
        Change::RequestTransfer(TransferRequest {
            case: id.clone(),
            direction: Direction::Up,
            to: fid(CTY2),
            from: from.map(fid),
            service: "general-ward".into(),
            slot_ms: None,
            follow_up: vec![],
        })
    };
    // Staff of another township naming themselves as the sender are refused by name.
    let err = sim.refused(staff(TS4), request(Some(TS4)));
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "from"), "{err:?}");
    // The clinic holding the patient may send them.
    assert!(matches!(sim.ok(staff(TS1), request(Some(TS1))), Outcome::Transfer { .. }));
}
