//! Study manifests: instances recorded per node, commit closes the study, copies are recorded
//! only by nodes, and a study belongs to one case.

mod common;

use common::*;
use yilian_referral::{
    Actor, AuditAction, Change, DomainError, InstanceBatch, InstanceRecord, Modality, Outcome, Priority,
};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";

fn record(n: u32, hash_byte: char) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: format!("{STUDY}.1.{n}"),
        series_uid: format!("{STUDY}.1"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        size: 1000 + u64::from(n),
        sha256: hash_byte.to_string().repeat(64),
    }
}

fn batch(case: &yilian_referral::CaseId, node: u64, instances: Vec<InstanceRecord>) -> Change {
    Change::RecordInstances(InstanceBatch {
        case: case.clone(),
        study_uid: STUDY.into(),
        node,
        instances,
        derived_from: None,
    })
}

fn rule(e: DomainError) -> String {
    match e {
        DomainError::NotAllowed { rule, .. } => rule,
        other => panic!("expected a refusal by rule, got {other:?}"),
    }
}

#[test]
fn instances_accumulate_until_commit_and_copies_are_recorded_by_nodes() {
    let mut sim = Sim::standard();
    let case = sim.submit(submission(TS1, patient(1), Priority::Urgent, "radiology", Some(Modality::Ct)));

    let out = sim.ok(staff(TS1), batch(&case, 1, vec![record(1, 'a'), record(2, 'b')]));
    assert!(matches!(out, Outcome::Study { instances: 2, committed: false, .. }));
    // The same instance sent again through another node adds that node as a holder.
    sim.ok(Actor::system(), batch(&case, 2, vec![record(2, 'b'), record(3, 'c')]));
    let study = sim.region.study(STUDY).expect("study");
    assert_eq!(study.instances.len(), 3);
    assert!(!study.held_by(1) && !study.held_by(2));
    assert_eq!(study.region, REGION);

    // A changed object under a known UID is refused, and nothing changes.
    let e = sim.refused(staff(TS1), batch(&case, 1, vec![record(1, 'f')]));
    assert_eq!(rule(e), "instance-content-fixed");

    // Staff of another facility cannot attach images to this case.
    let e = sim.refused(staff(TS2), batch(&case, 1, vec![record(4, 'd')]));
    assert_eq!(rule(e), "images-from-case-parties");

    let out = sim.ok(staff(TS1), Change::CommitStudy { study_uid: STUDY.into() });
    assert!(matches!(out, Outcome::Study { instances: 3, committed: true, .. }));
    let e = sim.refused(staff(TS1), batch(&case, 1, vec![record(9, 'e')]));
    assert_eq!(rule(e), "committed-study-is-closed");

    // Only nodes record verified copies.
    let copy = |node| Change::HoldStudyCopy {
        study_uid: STUDY.into(),
        node,
        instances: (1..=3).map(|n| format!("{STUDY}.1.{n}")).collect(),
    };
    assert_eq!(rule(sim.refused(ops(), copy(3))), "nodes-record-copies");
    let out = sim.ok(Actor::system(), copy(3));
    match out {
        Outcome::Study { holders, .. } => assert_eq!(holders.into_iter().collect::<Vec<_>>(), vec![3]),
        other => panic!("unexpected {other:?}"),
    }
    assert!(sim.region.study(STUDY).expect("study").held_by(3));
    assert_eq!(sim.region.studies_of(&case).count(), 1);

    let types: Vec<_> = sim.audit_of(&case, "study.record").iter().map(|e| e.action).collect();
    assert_eq!(types, vec![AuditAction::C, AuditAction::C]);
    assert_eq!(sim.audit_of(&case, "study.commit").len(), 1);
    assert_eq!(sim.audit_of(&case, "study.copy").len(), 1);
}

#[test]
fn a_study_belongs_to_one_case_and_bad_records_are_refused() {
    let mut sim = Sim::standard();
    let first = sim.submit(submission(TS1, patient(1), Priority::Routine, "radiology", Some(Modality::Dr)));
    let second = sim.submit(submission(TS1, patient(2), Priority::Routine, "radiology", Some(Modality::Dr)));
    sim.ok(staff(TS1), batch(&first, 1, vec![record(1, 'a')]));
    let e = sim.refused(staff(TS1), batch(&second, 1, vec![record(2, 'b')]));
    assert_eq!(rule(e), "study-belongs-to-one-case");

    let mut bad = record(5, 'a');
    bad.sha256 = "XYZ".into();
    assert!(matches!(sim.refused(staff(TS1), batch(&first, 1, vec![bad])), DomainError::Invalid { .. }));
    let mut bad = record(6, 'a');
    bad.sop_instance_uid = "not-a-uid".into();
    assert!(matches!(sim.refused(staff(TS1), batch(&first, 1, vec![bad])), DomainError::Invalid { .. }));
    assert!(matches!(sim.refused(staff(TS1), batch(&first, 1, vec![])), DomainError::Invalid { .. }));
}

#[test]
fn the_readers_node_wants_the_study_until_it_holds_a_verified_copy() {
    let mut sim = Sim::standard();
    let case = sim.submit(submission(TS1, patient(1), Priority::Stat, "radiology", Some(Modality::Ct)));
    let reader = sim.owner(&case).expect("offered");
    let facility = sim.region.specialist(&reader).expect("reader").facility.clone();
    let other = if facility == fid(PROV) { fid(CTY2) } else { fid(PROV) };

    assert!(sim.region.prefetch_wanted(2, std::slice::from_ref(&facility)).is_empty(), "no study yet");
    sim.ok(staff(TS1), batch(&case, 1, vec![record(1, 'a'), record(2, 'b')]));

    let wants = sim.region.prefetch_wanted(2, std::slice::from_ref(&facility));
    assert_eq!(wants.len(), 1);
    assert_eq!(wants[0].priority, Priority::Stat);
    assert_eq!(wants[0].missing.len(), 2);
    assert!(wants[0].missing.iter().all(|(_, _, _, holders)| holders.contains(&1)));
    // The node that stored it, and a node serving no reader of the case, want nothing.
    assert!(sim.region.prefetch_wanted(1, std::slice::from_ref(&facility)).is_empty());
    assert!(sim.region.prefetch_wanted(3, &[other]).is_empty());
    // Same region: nothing to de-identify.
    assert!(sim.region.deidentify_wanted(1).is_empty());

    let copy = Change::HoldStudyCopy {
        study_uid: STUDY.into(),
        node: 2,
        instances: vec![format!("{STUDY}.1.1"), format!("{STUDY}.1.2")],
    };
    sim.ok(Actor::system(), copy);
    assert!(sim.region.prefetch_wanted(2, &[facility]).is_empty());
}
