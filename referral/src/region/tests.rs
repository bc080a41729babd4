use super::*;
use crate::case::{Priority, Vitals};
use crate::command::CaseSubmission;

fn facility(id: &str, level: FacilityLevel, parent: Option<&str>) -> Command {
    Command::RegisterFacility(Facility {
        id: FacilityId(id.into()),
        name: format!("{id} hospital"),
        level,
        region: "demo".into(),
        parent: parent.map(|p| FacilityId(p.into())),
    })
}

fn seeded() -> Region {
    let mut r = Region::default();
    for cmd in [
        facility("PROV", FacilityLevel::Provincial, None),
        facility("CTY", FacilityLevel::County, Some("PROV")),
        facility("TS", FacilityLevel::Township, Some("CTY")),
        Command::RegisterSpecialist(Specialist {
            id: SpecialistId("DR1".into()),
            name: "Dr One".into(),
            facility: FacilityId("CTY".into()),
            specialty: "cardiology".into(),
        }),
    ] {
        r.apply(1, &cmd).result.expect("seed");
    }
    r
}

fn submit() -> Command {
    Command::SubmitCase(CaseSubmission {
        patient_ref: "P1".into(),
        complaint: "chest pain".into(),
        vitals: Vitals::default(),
        priority: Priority::Stat,
        origin: FacilityId("TS".into()),
        target: None,
    })
}

#[test]
fn full_minimal_lifecycle() {
    let mut r = seeded();
    let applied = r.apply(10, &submit());
    let case = CaseId::from_sequence(1);
    assert_eq!(applied.result, Ok(Outcome::Case { case_id: case.clone(), status: CaseStatus::Submitted }));
    assert_eq!(r.case(&case).expect("case").target, FacilityId("CTY".into()));
    let dr = SpecialistId("DR1".into());
    for (cmd, status) in [
        (Command::Assign { case: case.clone(), specialist: dr.clone() }, CaseStatus::Assigned),
        (Command::Accept { case: case.clone(), specialist: dr.clone() }, CaseStatus::Accepted),
        (
            Command::Report { case: case.clone(), specialist: dr.clone(), findings: "STEMI".into() },
            CaseStatus::Reported,
        ),
        (Command::Complete { case: case.clone(), specialist: dr.clone() }, CaseStatus::Completed),
    ] {
        assert_eq!(r.apply(11, &cmd).result, Ok(Outcome::Case { case_id: case.clone(), status }));
    }
    assert_eq!(r.case(&case).expect("case").history.len(), 5);
}

#[test]
fn refusals_change_nothing() {
    let mut r = seeded();
    r.apply(10, &submit()).result.expect("submit");
    let before = r.clone();
    let case = CaseId::from_sequence(1);
    let accept = r.apply(11, &Command::Accept { case: case.clone(), specialist: SpecialistId("DR1".into()) });
    assert!(matches!(accept.result, Err(DomainError::InvalidTransition { .. })));
    assert!(accept.touched.is_empty());
    let unknown =
        r.apply(11, &Command::Assign { case: CaseId("nope".into()), specialist: SpecialistId("DR1".into()) });
    assert!(matches!(unknown.result, Err(DomainError::NotFound { .. })));
    let dup = r.apply(11, &facility("TS", FacilityLevel::Township, Some("CTY")));
    assert!(matches!(dup.result, Err(DomainError::AlreadyExists { .. })));
    assert_eq!(r, before);
}

#[test]
fn entities_round_trip() {
    let mut r = seeded();
    r.apply(10, &submit()).result.expect("submit");
    let mut copy = Region::default();
    for (_, e) in r.entities() {
        copy.restore(e);
    }
    assert_eq!(copy, r);
}
