//! Shared builders for the referral integration tests: a small fixed region (one provincial
//! hospital, two county hospitals, four township clinics) set up through ordinary commands by an
//! ops actor, and a `Sim` that applies commands at an explicit, test-controlled time.

#![allow(dead_code)]

use std::collections::BTreeSet;
use yilian_referral::case::CaseEvent;
use yilian_referral::{
    Actor, Applied, AuditEvent, Case, CaseAction, CaseId, CaseSubmission, Change, Command, DomainError,
    FacilityId, FacilityLevel, FacilityRegistration, GeoPoint, Modality, Outcome, PatientKey, Priority,
    Region, SpecialistId, SpecialistRegistration,
};
use yilian_referral::{Entity, EntityKey};

/// The region every facility belongs to.
pub const REGION: &str = "lanshan";
/// When the fixture is registered (ms since the Unix epoch).
pub const T0: u64 = 1_700_000_000_000;
pub const MINUTE: u64 = 60_000;
pub const HOUR: u64 = 60 * MINUTE;

pub const PROV: &str = "PROV";
pub const CTY1: &str = "CTY1";
pub const CTY2: &str = "CTY2";
/// Township under CTY1 (the usual origin in scenarios).
pub const TS1: &str = "TS1";
/// Township under CTY1, nearest neighbour of TS1.
pub const TS2: &str = "TS2";
/// Township under CTY2, next nearest to TS1/TS2.
pub const TS3: &str = "TS3";
/// Township under CTY2, furthest away.
pub const TS4: &str = "TS4";

pub const FACILITIES: [&str; 7] = [PROV, CTY1, CTY2, TS1, TS2, TS3, TS4];
pub const TOWNSHIPS: [&str; 4] = [TS1, TS2, TS3, TS4];

pub fn fid(id: &str) -> FacilityId {
    FacilityId(id.into())
}

pub fn sid(id: &str) -> SpecialistId {
    SpecialistId(id.into())
}

/// The ops user who sets the region up.
pub fn ops() -> Actor {
    Actor::ops("ops1")
}

/// A staff member of `facility`.
pub fn staff(facility: &str) -> Actor {
    Actor::staff(&format!("staff-{}", facility.to_lowercase()), facility)
}

/// A well-formed pseudonymous patient key (64 lowercase hex digits), one per `n`.
pub fn patient(n: u8) -> PatientKey {
    PatientKey(format!("{n:02x}").repeat(32))
}

fn point(lat_e6: i32, lon_e6: i32) -> Option<GeoPoint> {
    Some(GeoPoint { lat_e6, lon_e6 })
}

/// The fixed facility tree, parents first. Townships are laid out on a line so the order of
/// neighbours is obvious: TS1 – TS2 – TS3 – TS4, with the county hospitals further off.
pub fn facility_registrations() -> Vec<FacilityRegistration> {
    use Modality::{Ct, Dr, Ecg, Mr, Us};
    let fac = |id: &str, level, parent: Option<&str>, location, devices: &[Modality]| FacilityRegistration {
        id: fid(id),
        name: format!("{id} facility"),
        level,
        region: REGION.into(),
        parent: parent.map(fid),
        location,
        devices: devices.iter().copied().collect(),
    };
    vec![
        fac(PROV, FacilityLevel::Provincial, None, point(30_000_000, 104_000_000), &[Ct, Mr, Us, Dr, Ecg]),
        fac(CTY1, FacilityLevel::County, Some(PROV), point(30_500_000, 104_000_000), &[Ct, Us, Dr, Ecg]),
        fac(CTY2, FacilityLevel::County, Some(PROV), point(29_500_000, 104_000_000), &[Ct, Dr, Ecg]),
        fac(TS1, FacilityLevel::Township, Some(CTY1), point(30_200_000, 104_000_000), &[Us, Dr, Ecg]),
        fac(TS2, FacilityLevel::Township, Some(CTY1), point(30_150_000, 104_000_000), &[Us, Dr]),
        fac(TS3, FacilityLevel::Township, Some(CTY2), point(30_050_000, 104_000_000), &[Us, Dr]),
        fac(TS4, FacilityLevel::Township, Some(CTY2), point(29_800_000, 104_000_000), &[Dr]),
    ]
}

/// A specialist registration.
pub fn reader(
    id: &str,
    facility: &str,
    specialty: &str,
    modalities: &[Modality],
    cap: u32,
    on_shift: bool,
) -> SpecialistRegistration {
    SpecialistRegistration {
        id: sid(id),
        name: format!("Dr {id}"),
        facility: fid(facility),
        specialty: specialty.into(),
        modalities: modalities.iter().copied().collect(),
        licensed_regions: BTreeSet::new(),
        cap,
        on_shift,
    }
}

/// The standard mix of readers used by the property tests: two radiologists and a cardiologist
/// at CTY1, an off-shift radiologist and a cardiologist at CTY2, and at the province an
/// on-shift radiologist, an off-shift cardiologist, a neurologist, and a radiologist licensed
/// only for another region.
pub fn standard_readers() -> Vec<SpecialistRegistration> {
    use Modality::{Ct, Dr, Ecg, Mr, Us};
    let mut elsewhere = reader("prov-rad-x", PROV, "radiology", &[Ct, Mr, Us, Dr], 4, true);
    elsewhere.licensed_regions = ["elsewhere".to_owned()].into();
    vec![
        reader("cty1-rad-a", CTY1, "radiology", &[Us, Dr, Ct], 2, true),
        reader("cty1-rad-b", CTY1, "radiology", &[Us, Dr], 2, true),
        reader("cty1-card-a", CTY1, "cardiology", &[Ecg, Us], 2, true),
        reader("cty2-rad-a", CTY2, "radiology", &[Dr, Ct], 2, false),
        reader("cty2-card-a", CTY2, "cardiology", &[Ecg], 1, true),
        reader("prov-rad-a", PROV, "radiology", &[Ct, Mr, Us, Dr], 3, true),
        reader("prov-card-a", PROV, "cardiology", &[Ecg, Us], 2, false),
        reader("prov-neuro-a", PROV, "neurology", &[Ct, Mr], 2, true),
        elsewhere,
    ]
}

/// A case submission from `origin` with no vitals, target or green channel.
pub fn submission(
    origin: &str,
    patient_key: PatientKey,
    priority: Priority,
    specialty: &str,
    modality: Option<Modality>,
) -> CaseSubmission {
    CaseSubmission {
        patient: patient_key,
        complaint: format!("{specialty} consult"),
        vitals: Default::default(),
        priority,
        green_channel: None,
        specialty: specialty.into(),
        modality,
        origin: fid(origin),
        target: None,
        draft: false,
    }
}

/// A region plus the time the next command is stamped with.
#[derive(Debug, Clone)]
pub struct Sim {
    pub region: Region,
    pub now: u64,
}

impl Sim {
    /// The fixed facilities and the given readers, registered by ops at [`T0`].
    pub fn with_readers(readers: &[SpecialistRegistration]) -> Self {
        let mut sim = Sim { region: Region::default(), now: T0 };
        for f in facility_registrations() {
            sim.ok(ops(), Change::RegisterFacility(f));
        }
        for r in readers {
            sim.ok(ops(), Change::RegisterSpecialist(r.clone()));
        }
        sim
    }

    /// The fixed facilities and [`standard_readers`].
    pub fn standard() -> Self {
        Self::with_readers(&standard_readers())
    }

    /// Apply `change` by `actor` at the current time.
    pub fn apply(&mut self, actor: Actor, change: Change) -> Applied {
        self.region.apply(self.now, &Command::new(actor, change))
    }

    /// Apply a change that must be accepted.
    #[track_caller]
    pub fn ok(&mut self, actor: Actor, change: Change) -> Outcome {
        let what = format!("{change:?} by {actor}");
        match self.apply(actor, change).result {
            Ok(outcome) => outcome,
            Err(e) => panic!("{what} was refused: {e}"),
        }
    }

    /// Apply a change that must be refused, and check it changed nothing but the region clock.
    #[track_caller]
    pub fn refused(&mut self, actor: Actor, change: Change) -> DomainError {
        let before = self.region.clone();
        let what = format!("{change:?} by {actor}");
        let applied = self.apply(actor, change);
        assert_unchanged_by_refusal(&before, &self.region, self.now, &applied.touched);
        match applied.result {
            Ok(outcome) => panic!("{what} was accepted: {outcome:?}"),
            Err(e) => e,
        }
    }

    /// Submit a case (by staff of its origin); returns its id.
    #[track_caller]
    pub fn submit(&mut self, s: CaseSubmission) -> CaseId {
        let origin = s.origin.0.clone();
        match self.ok(staff(&origin), Change::SubmitCase(s)) {
            Outcome::Case { case_id, .. } => case_id,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    /// `actor` does `action` to `case`.
    pub fn act(
        &mut self,
        actor: Actor,
        case: &CaseId,
        action: CaseAction,
        reason: Option<&str>,
    ) -> Result<Outcome, DomainError> {
        let change = Change::Case { case: case.clone(), action, reason: reason.map(str::to_owned) };
        self.apply(actor, change).result
    }

    /// `actor` does `action` to `case`, which must be accepted.
    #[track_caller]
    pub fn act_ok(
        &mut self,
        actor: Actor,
        case: &CaseId,
        action: CaseAction,
        reason: Option<&str>,
    ) -> Outcome {
        let what = format!("{} on {case} by {actor}", action.name());
        match self.act(actor, case, action, reason) {
            Ok(o) => o,
            Err(e) => panic!("{what} was refused: {e}"),
        }
    }

    /// The current owner of `case` acts as themself.
    #[track_caller]
    pub fn owner_act(&mut self, case: &CaseId, action: CaseAction, reason: Option<&str>) -> Outcome {
        let owner = self.owner(case).expect("case has an owner");
        self.act_ok(Actor::specialist(&owner.0), case, action, reason)
    }

    /// Move the clock forward by `ms` (without a tick).
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Move the clock to `at` and let the leader evaluate deadlines; returns the consequences.
    #[track_caller]
    pub fn tick_at(&mut self, at: u64) -> u32 {
        self.now = at;
        match self.region.apply(self.now, &Command::tick()).result {
            Ok(Outcome::Tick { consequences }) => consequences,
            other => panic!("tick failed: {other:?}"),
        }
    }

    pub fn case(&self, id: &CaseId) -> &Case {
        self.region.case(id).expect("case exists")
    }

    pub fn owner(&self, id: &CaseId) -> Option<SpecialistId> {
        self.case(id).owner.clone()
    }

    /// The rules of the case's history, oldest first.
    pub fn rules(&self, id: &CaseId) -> Vec<String> {
        self.case(id).history.iter().map(|e| e.rule.clone()).collect()
    }

    /// History events of the case with this rule.
    pub fn events(&self, id: &CaseId, rule: &str) -> Vec<&CaseEvent> {
        self.case(id).history.iter().filter(|e| e.rule == rule).collect()
    }

    /// Audit events about `case` of type `event_type`.
    pub fn audit_of(&self, id: &CaseId, event_type: &str) -> Vec<&AuditEvent> {
        self.region
            .audit_events()
            .filter(|e| e.case.as_ref() == Some(id) && e.event_type == event_type)
            .collect()
    }

    /// Ids on a reader's worklist, in worklist order.
    pub fn worklist(&self, reader: &str) -> Vec<CaseId> {
        self.region.worklist(&sid(reader)).into_iter().map(|c| c.id.clone()).collect()
    }
}

/// What `before` looks like once a command stamped `at_ms` was refused: the same, except that the
/// region clock has moved on to `at_ms` if that is later (the clock never runs backwards).
pub fn after_refusal(before: &Region, at_ms: u64) -> Region {
    let mut expected = before.clone();
    if let Some(Entity::Counters(mut c)) = before.entity(&EntityKey::Counters) {
        c.clock_ms = c.clock_ms.max(at_ms);
        expected.restore(Entity::Counters(c));
    }
    expected
}

/// A refused command changed nothing but (possibly) the clock, and reported exactly that.
#[track_caller]
pub fn assert_unchanged_by_refusal(before: &Region, after: &Region, at_ms: u64, touched: &[EntityKey]) {
    assert_eq!(*after, after_refusal(before, at_ms), "refused command changed the region");
    let expected: &[EntityKey] = if at_ms > before.clock_ms() { &[EntityKey::Counters] } else { &[] };
    assert_eq!(touched, expected, "refused command touched more than the clock");
}
