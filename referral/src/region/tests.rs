//! Focused unit tests of region internals (indexes, validation helpers, distance ranking); the
//! behaviour of whole commands is tested in `referral/tests/`.

use super::routing::distance;
use super::*;
use crate::command::{CaseSubmission, FacilityRegistration, SpecialistRegistration};
use crate::facility::{FacilityLevel, GeoPoint};
use crate::lifecycle::CaseAction;
use crate::priority::Priority;
use crate::specialist::SpecialistId;

const T0: u64 = 1_000_000;

fn ops() -> Actor {
    Actor::ops("ops1")
}

fn facility(id: &str, level: FacilityLevel, parent: Option<&str>, lat_e6: i32) -> Command {
    Command::new(
        ops(),
        Change::RegisterFacility(FacilityRegistration {
            id: FacilityId(id.into()),
            name: id.into(),
            level,
            region: "r".into(),
            parent: parent.map(|p| FacilityId(p.into())),
            location: Some(GeoPoint { lat_e6, lon_e6: 0 }),
            devices: Default::default(),
        }),
    )
}

/// A county hospital with one on-shift radiologist (cap 1) and a township under it.
fn region() -> Region {
    let mut r = Region::default();
    let reader = SpecialistRegistration {
        id: SpecialistId("rad".into()),
        name: "Dr Rad".into(),
        facility: FacilityId("CTY".into()),
        specialty: "radiology".into(),
        modalities: Default::default(),
        licensed_regions: Default::default(),
        cap: 1,
        on_shift: true,
    };
    for cmd in [
        facility("CTY", FacilityLevel::County, None, 0),
        facility("TS", FacilityLevel::Township, Some("CTY"), 100),
        Command::new(ops(), Change::RegisterSpecialist(reader)),
    ] {
        r.apply(T0, &cmd).result.expect("fixture");
    }
    r
}

/// A routine radiology case for `patient`, submitted by the township's nurse.
fn submission(patient: char) -> Command {
    let s = CaseSubmission {
        patient: PatientKey(patient.to_string().repeat(64)),
        complaint: "cough".into(),
        vitals: Default::default(),
        priority: Priority::Routine,
        green_channel: None,
        specialty: "radiology".into(),
        modality: None,
        origin: FacilityId("TS".into()),
        target: None,
        draft: false,
    };
    Command::new(Actor::staff("n1", "TS"), Change::SubmitCase(s))
}

fn submit(r: &mut Region, at: u64, patient: char) -> CaseId {
    match r.apply(at, &submission(patient)).result {
        Ok(Outcome::Case { case_id, .. }) => case_id,
        other => panic!("submit: {other:?}"),
    }
}

/// A reader's load summed over their open cases, as routing computed it before the index kept it.
fn rescanned_load(r: &Region, reader: &SpecialistId) -> index::Load {
    let mut load = index::Load::default();
    for id in r.index.open_cases_of(reader) {
        load.add(r.cases.get(id).expect("indexed case exists"));
    }
    load
}

#[test]
fn indexes_follow_owner_deadline_and_unrouted_state() {
    let mut r = region();
    let rad = SpecialistId("rad".into());
    let routed = submit(&mut r, T0, 'a');
    let waiting = submit(&mut r, T0 + 1, 'b');
    assert_eq!(r.index.open_cases_of(&rad).cloned().collect::<Vec<_>>(), vec![routed.clone()]);
    assert_eq!(r.index.load_of(&rad), rescanned_load(&r, &rad));
    assert_eq!(r.index.load_of(&rad).open, 1);
    assert_eq!(r.load(&rad, &routed).open, 0, "the case being routed does not count");
    assert_eq!(r.index.unrouted(), vec![waiting.clone()]);
    let patient_a = PatientKey("a".repeat(64));
    assert_eq!(r.index.owners_of_patient(&patient_a, &waiting), vec![&rad]);
    assert!(r.index.owners_of_patient(&patient_a, &routed).is_empty(), "the case itself is left out");
    assert!(r.index.owners_of_patient(&PatientKey("b".repeat(64)), &routed).is_empty(), "not owned yet");

    // Deadlines are due inclusively, earliest first: the routed offer lapses at +2 h, the
    // waiting case's accept clock at +4 h.
    let offer_due = T0 + 2 * 3_600_000;
    assert_eq!(r.index.next_deadline(), Some(offer_due));
    assert!(r.index.due(offer_due - 1).is_empty());
    assert_eq!(r.index.due(offer_due), vec![routed.clone()]);
    assert_eq!(r.index.due(T0 + 1 + 4 * 3_600_000), [routed.clone(), waiting.clone()]);

    // Closing the routed case frees the reader, who then gets the waiting case.
    let cancel =
        Change::Case { case: routed.clone(), action: CaseAction::Cancel, reason: Some("dup".into()) };
    r.apply(T0 + 2, &Command::new(Actor::staff("n1", "TS"), cancel)).result.expect("cancel");
    assert_eq!(r.index.open_cases_of(&rad).cloned().collect::<Vec<_>>(), vec![waiting.clone()]);
    assert_eq!(r.index.load_of(&rad), rescanned_load(&r, &rad));
    assert_eq!(r.index.load_of(&rad).open, 1);
    assert!(r.index.unrouted().is_empty());
    assert!(r.index.owners_of_patient(&patient_a, &waiting).is_empty(), "a closed case has no owner here");
    assert_eq!(r.index.due(offer_due), Vec::<CaseId>::new(), "the closed case has no deadline");

    // Indexes are derived: a region rebuilt from its entities has the same ones.
    let mut rebuilt = Region::default();
    for key in r.keys() {
        rebuilt.restore(r.entity(&key).expect("entity"));
    }
    assert_eq!(rebuilt.index, r.index);
}

#[test]
fn refused_command_leaves_no_touched_entities_behind() {
    let mut r = region();
    let before = r.clone();
    let bad = Command::new(Actor::staff("n1", "TS"), Change::Tick);
    let applied = r.apply(T0, &bad);
    assert!(applied.result.is_err());
    assert!(applied.touched.is_empty());
    assert!(r.touched.is_empty());
    assert_eq!(r, before);
}

#[test]
fn unknown_positions_rank_after_every_known_one() {
    let here = Some(GeoPoint { lat_e6: 0, lon_e6: 0 });
    let far = Some(GeoPoint { lat_e6: i32::MAX, lon_e6: i32::MAX });
    assert!(distance(here, far) < distance(here, None));
    assert_eq!(distance(None, here), u128::MAX);
    // Longitude counts for 85 % of latitude (mid-latitudes).
    let north = GeoPoint { lat_e6: 100, lon_e6: 0 };
    let east = GeoPoint { lat_e6: 0, lon_e6: 100 };
    assert_eq!(distance(here, Some(north)), 10_000);
    assert_eq!(distance(here, Some(east)), 85 * 85);
}

#[test]
fn ids_texts_and_services_are_validated() {
    assert!(validate_id("id", "TS-LIJIA").is_ok());
    assert!(validate_id("id", &"x".repeat(128)).is_ok());
    assert!(validate_id("id", &"x".repeat(129)).is_err());
    assert!(validate_id("id", "  ").is_err());
    assert!(validate_id("id", "a\nb").is_err());
    assert!(validate_text("text", &"x".repeat(MAX_TEXT_BYTES)).is_ok());
    assert!(validate_text("text", &"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
    assert!(validate_optional_text("reason", None).is_ok());
    assert!(validate_optional_text("reason", Some("")).is_err());
    assert!(registry::validate_service("rehab-stroke").is_ok());
    assert!(registry::validate_service("Rehab Stroke").is_err());
    assert!(registry::validate_service("").is_err());
}

#[test]
fn break_glass_needs_a_reason_opens_read_only_and_its_end_is_committed_by_tick() {
    let mut r = region();
    let case = submit(&mut r, T0, 'a');
    let stranger = Actor::staff("n9", "CTY");
    let glass = |reason: &str, minutes| {
        Command::new(
            stranger.clone(),
            Change::BreakGlass { case: case.clone(), reason: reason.into(), minutes },
        )
    };
    assert!(matches!(r.apply(T0 + 1, &glass(" ", 5)).result, Err(DomainError::Invalid { .. })));
    assert!(matches!(r.apply(T0 + 1, &glass("x", 0)).result, Err(DomainError::Invalid { .. })));
    let ops_glass =
        Command::new(ops(), Change::BreakGlass { case: case.clone(), reason: "r".into(), minutes: 5 });
    assert!(matches!(r.apply(T0 + 1, &ops_glass).result, Err(DomainError::NotAllowed { .. })));
    assert!(r.authorize_case(&stranger, &case, crate::access::CaseOperation::Read, T0 + 2).is_err());

    let until = match r.apply(T0 + 2, &glass("patient collapsed in our ward", 1)).result {
        Ok(Outcome::BreakGlass { until_ms, .. }) => until_ms,
        other => panic!("break-glass: {other:?}"),
    };
    assert_eq!(until, T0 + 2 + 60_000);
    let read = r.authorize_case(&stranger, &case, crate::access::CaseOperation::Read, T0 + 3);
    assert!(matches!(read, Ok((_, crate::access::Basis::BreakGlass { .. }))));
    assert!(r.authorize_case(&stranger, &case, crate::access::CaseOperation::Write, T0 + 3).is_err());
    assert!(r.next_deadline().is_some_and(|d| d <= until), "the grant's end is a deadline");

    r.apply(until, &Command::tick()).result.expect("tick");
    let events: Vec<&str> = r.audit_events().map(|e| e.event_type.as_str()).collect();
    assert!(
        events.contains(&"case.break-glass-start") && events.contains(&"case.break-glass-end"),
        "{events:?}"
    );
    let grant = r.break_glass_grants().next().expect("grant");
    assert!(grant.ended_audit_seq.is_some());
    assert!(r.authorize_case(&stranger, &case, crate::access::CaseOperation::Read, until).is_err());
    r.apply(until + 1, &Command::tick()).result.expect("tick");
    let ends = r.audit_events().filter(|e| e.event_type == "case.break-glass-end").count();
    assert_eq!(ends, 1, "the end is committed once");
    assert!(crate::audit::verify_chain(r.audit_events()).is_ok());
}

#[test]
fn access_records_are_written_by_the_cluster_only() {
    let mut r = region();
    let case = submit(&mut r, T0, 'b');
    let record = crate::audit::AccessRecord {
        actor: Actor::staff("n1", "TS"),
        event_type: "case.read".into(),
        action: crate::audit::AuditAction::R,
        outcome: crate::audit::AuditOutcome::Success,
        case: Some(case.clone()),
        study: None,
        object: None,
        source: Some("10.0.0.7".into()),
        purpose: Some("TREAT".into()),
        detail: None,
    };
    let forged = Command::new(Actor::staff("n1", "TS"), Change::RecordAccess(vec![record.clone()]));
    assert!(matches!(r.apply(T0 + 1, &forged).result, Err(DomainError::NotAllowed { .. })));
    let real = Command::new(Actor::system(), Change::RecordAccess(vec![record]));
    assert!(matches!(r.apply(T0 + 1, &real).result, Ok(Outcome::Recorded { .. })));
    let last = r.audit_events().last().expect("event");
    assert_eq!(last.actor, Actor::staff("n1", "TS"));
    assert_eq!(last.source.as_deref(), Some("10.0.0.7"));
    assert!(last.patient.is_some(), "the patient key is added from the case");
}

#[test]
fn writes_are_audited_with_the_callers_address_and_purpose() {
    let mut r = region();
    let provenance = Provenance { source: Some("10.0.0.9".into()), purpose: Some("TREAT".into()) };
    let cmd = submission('c').with_provenance(provenance);
    r.apply(T0 + 1, &cmd).result.expect("submitted");
    let last = r.audit_events().last().expect("event");
    assert_eq!((last.source.as_deref(), last.purpose.as_deref()), (Some("10.0.0.9"), Some("TREAT")));
    r.apply(T0 + 2, &Command::tick()).result.expect("tick");
    let unrelated = facility("TS2", FacilityLevel::Township, Some("CTY"), 200);
    r.apply(T0 + 3, &unrelated).result.expect("registered");
    let last = r.audit_events().last().expect("event");
    assert_eq!(last.source, None, "one command's provenance does not leak into the next");
}

/// Storage encodes the entities a command touched from the region without copying them
/// ([`EntityRef`]) and loads them back as [`Entity`]: every kind must encode to the same bytes
/// both ways, or a node would misread its own database; and a received snapshot's entities are
/// stored under the key each one names.
#[test]
fn every_kind_of_entity_encodes_the_same_borrowed_and_owned_and_names_its_key() {
    use crate::actor::Role;
    use crate::codec;
    use crate::study::{InstanceBatch, InstanceRecord};
    use crate::user::UserRegistration;
    let mut r = region();
    let case = submit(&mut r, T0, 'a');
    let admin = Actor { role: Role::Admin, id: "root".into(), facility: None };
    let study = "1.2.826.0.1.3680043.8.498.1";
    let record = InstanceRecord {
        sop_instance_uid: format!("{study}.1.1"),
        series_uid: format!("{study}.1"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        size: 1000,
        sha256: "a".repeat(64),
    };
    let commands = [
        Command::new(ops(), Change::SetPolicy { region: "r".into(), policy: RegionPolicy::default() }),
        Command::new(
            admin.clone(),
            Change::AddUser(UserRegistration {
                id: "root".into(),
                role: Role::Admin,
                facility: None,
                specialist: None,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            }),
        ),
        Command::new(
            admin,
            Change::CreateApiToken {
                id: "tok1".into(),
                user: "root".into(),
                secret_hash: "b".repeat(64),
                label: "pacs".into(),
            },
        ),
        Command::new(
            Actor::staff("n9", "CTY"),
            Change::BreakGlass { case: case.clone(), reason: "collapsed in our ward".into(), minutes: 5 },
        ),
        Command::new(
            Actor::staff("n1", "TS"),
            Change::RecordInstances(InstanceBatch {
                case: case.clone(),
                study_uid: study.into(),
                node: 1,
                instances: vec![record],
                derived_from: None,
            }),
        ),
        Command::new(
            Actor::staff("n1", "TS"),
            Change::RequestTransfer(crate::command::TransferRequest {
                case,
                direction: crate::transfer::Direction::Up,
                to: FacilityId("CTY".into()),
                from: None,
                service: "ct".into(),
                slot_ms: None,
                follow_up: Vec::new(),
            }),
        ),
    ];
    for (i, command) in commands.iter().enumerate() {
        r.apply(T0 + 1 + i as u64, command).result.unwrap_or_else(|e| panic!("command {i}: {e:?}"));
    }
    let mut kinds = std::collections::HashSet::new();
    for key in r.keys() {
        let borrowed = r.entity_ref(&key).expect("listed entity exists");
        let owned = borrowed.to_entity();
        let bytes = codec::encode(&borrowed).expect("encode borrowed");
        assert_eq!(bytes, codec::encode(&owned).expect("encode owned"), "{key:?}");
        assert_eq!(codec::decode::<Entity>(&bytes).expect("decode"), owned, "{key:?}");
        assert_eq!(owned.key(), key, "an entity names the key it is stored under");
        kinds.insert(std::mem::discriminant(&owned));
    }
    assert_eq!(kinds.len(), 11, "every kind of entity is covered");
}
