//! The whole replicated referral state of a region, and how commands change it.
//!
//! Handlers follow one discipline so a refused command changes nothing: look up and validate
//! everything first, then work on copies and store them with the `put_*` methods, which keep the
//! derived indexes and the list of touched entities up to date.

mod access;
mod cases;
mod index;
mod queries;
mod registry;
mod routing;
mod studies;
mod timers;
mod transfers;
mod users;

pub use access::{AccessError, MAX_ACCESS_RECORDS};
pub use queries::{CapacityOption, CaseFilter};
pub use routing::Ineligible;
pub use studies::{DeidentifyWant, PrefetchWant, MAX_INSTANCES_PER_BATCH, MAX_INSTANCES_PER_STUDY};

use crate::access::BreakGlassGrant;
use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, GENESIS_HASH};
use crate::case::{Case, CaseId};
use crate::command::{Change, Command, Outcome, Provenance};
use crate::error::DomainError;
use crate::facility::{Facility, FacilityId};
use crate::patient::PatientKey;
use crate::priority::RegionPolicy;
use crate::specialist::{Specialist, SpecialistId};
use crate::study::StudyManifest;
use crate::transfer::{Transfer, TransferId};
use crate::user::{ApiToken, User};
use index::Indexes;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

/// Longest free-text field accepted (complaint, report, reasons), in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Names one stored entity, so storage can persist exactly what a command touched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityKey {
    /// A facility.
    Facility(FacilityId),
    /// A specialist.
    Specialist(SpecialistId),
    /// A case.
    Case(CaseId),
    /// A transfer.
    Transfer(TransferId),
    /// A region's policy.
    Policy(String),
    /// A study manifest, by Study Instance UID.
    Study(String),
    /// An audit event.
    Audit(u64),
    /// Sequence counters and the region clock.
    Counters,
    /// A user account.
    User(String),
    /// An API token.
    ApiToken(String),
    /// A break-glass grant.
    BreakGlass(u64),
}

/// Sequence counters and the region clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Cases created so far.
    pub cases: u64,
    /// Transfers created so far.
    pub transfers: u64,
    /// Audit events written so far.
    pub audit: u64,
    /// Latest command time seen; the region's clock never runs backwards.
    pub clock_ms: u64,
    /// Break-glass grants opened so far.
    pub break_glass: u64,
}

/// One stored entity, as persisted by the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entity {
    /// A facility.
    Facility(Facility),
    /// A specialist.
    Specialist(Specialist),
    /// A case (boxed: cases are much larger than the other entities).
    Case(Box<Case>),
    /// A transfer.
    Transfer(Transfer),
    /// A region's policy.
    Policy(String, RegionPolicy),
    /// A study manifest.
    Study(Box<StudyManifest>),
    /// An audit event.
    Audit(AuditEvent),
    /// Counters.
    Counters(Counters),
    /// A user account.
    User(User),
    /// An API token.
    ApiToken(ApiToken),
    /// A break-glass grant.
    BreakGlass(BreakGlassGrant),
}

impl Entity {
    /// The key it is stored under (where [`Region::restore`] puts it).
    pub fn key(&self) -> EntityKey {
        match self {
            Entity::Facility(f) => EntityKey::Facility(f.id.clone()),
            Entity::Specialist(s) => EntityKey::Specialist(s.id.clone()),
            Entity::Case(c) => EntityKey::Case(c.id.clone()),
            Entity::Transfer(t) => EntityKey::Transfer(t.id.clone()),
            Entity::Policy(r, _) => EntityKey::Policy(r.clone()),
            Entity::Study(s) => EntityKey::Study(s.study_uid.clone()),
            Entity::Audit(e) => EntityKey::Audit(e.seq),
            Entity::Counters(_) => EntityKey::Counters,
            Entity::User(u) => EntityKey::User(u.id.clone()),
            Entity::ApiToken(t) => EntityKey::ApiToken(t.id.clone()),
            Entity::BreakGlass(g) => EntityKey::BreakGlass(g.id),
        }
    }
}

/// A stored entity borrowed from the region: it encodes exactly as the [`Entity`] it mirrors
/// (same variants in the same order; a reference and a `Box` encode as what they point to), so
/// storage can encode what a command touched without copying it first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename = "Entity")]
pub enum EntityRef<'a> {
    /// A facility.
    Facility(&'a Facility),
    /// A specialist.
    Specialist(&'a Specialist),
    /// A case.
    Case(&'a Case),
    /// A transfer.
    Transfer(&'a Transfer),
    /// A region's policy.
    Policy(&'a str, &'a RegionPolicy),
    /// A study manifest.
    Study(&'a StudyManifest),
    /// An audit event.
    Audit(&'a AuditEvent),
    /// Counters.
    Counters(&'a Counters),
    /// A user account.
    User(&'a User),
    /// An API token.
    ApiToken(&'a ApiToken),
    /// A break-glass grant.
    BreakGlass(&'a BreakGlassGrant),
}

impl EntityRef<'_> {
    /// An owned copy.
    pub fn to_entity(self) -> Entity {
        match self {
            EntityRef::Facility(f) => Entity::Facility(f.clone()),
            EntityRef::Specialist(s) => Entity::Specialist(s.clone()),
            EntityRef::Case(c) => Entity::Case(Box::new(c.clone())),
            EntityRef::Transfer(t) => Entity::Transfer(t.clone()),
            EntityRef::Policy(r, p) => Entity::Policy(r.to_owned(), p.clone()),
            EntityRef::Study(s) => Entity::Study(Box::new(s.clone())),
            EntityRef::Audit(a) => Entity::Audit(a.clone()),
            EntityRef::Counters(c) => Entity::Counters(*c),
            EntityRef::User(u) => Entity::User(u.clone()),
            EntityRef::ApiToken(t) => Entity::ApiToken(t.clone()),
            EntityRef::BreakGlass(g) => Entity::BreakGlass(g.clone()),
        }
    }
}

/// The result of applying one command: the answer for the client and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The answer for the client.
    pub result: Result<Outcome, DomainError>,
    /// Entities the command changed. A refused command changes nothing but may still advance
    /// the region clock, in which case this holds only [`EntityKey::Counters`].
    pub touched: Vec<EntityKey>,
}

/// Facilities, specialists, cases, transfers, policies and the audit trail of one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Region {
    facilities: BTreeMap<FacilityId, Facility>,
    specialists: BTreeMap<SpecialistId, Specialist>,
    cases: BTreeMap<CaseId, Case>,
    transfers: BTreeMap<TransferId, Transfer>,
    policies: BTreeMap<String, RegionPolicy>,
    studies: BTreeMap<String, StudyManifest>,
    case_studies: BTreeMap<CaseId, BTreeSet<String>>,
    audit: BTreeMap<u64, AuditEvent>,
    users: BTreeMap<String, User>,
    api_tokens: BTreeMap<String, ApiToken>,
    break_glass: BTreeMap<u64, BreakGlassGrant>,
    counters: Counters,
    index: Indexes,
    touched: Vec<EntityKey>,
    capacity_freed: bool,
    /// Where the command being applied came from (cleared after each command).
    provenance: Provenance,
}

impl Region {
    /// Apply `command` at time `at_ms` (stamped by the leader, so replicas agree).
    pub fn apply(&mut self, at_ms: u64, command: &Command) -> Applied {
        self.touched.clear();
        self.provenance = command.provenance.clone();
        let now = at_ms.max(self.counters.clock_ms);
        let mut result = self.validate_actor(&command.actor).and_then(|()| self.dispatch(now, command));
        if result.is_ok() && std::mem::take(&mut self.capacity_freed) {
            self.retry_unrouted(now);
            if let Ok(Outcome::Case { case_id, .. }) = &result {
                result = self.case_outcome(&case_id.clone());
            }
        }
        self.capacity_freed = false;
        self.provenance = Provenance::default();
        let mut touched = std::mem::take(&mut self.touched);
        if result.is_err() {
            touched.clear();
        }
        if now != self.counters.clock_ms {
            self.counters.clock_ms = now;
            touched.push(EntityKey::Counters);
        }
        Applied { result, touched }
    }

    fn dispatch(&mut self, now: u64, command: &Command) -> Result<Outcome, DomainError> {
        let actor = &command.actor;
        match &command.change {
            Change::RegisterFacility(r) => self.register_facility(now, actor, r),
            Change::RegisterSpecialist(r) => self.register_specialist(now, actor, r),
            Change::SetPolicy { region, policy } => self.set_policy(now, actor, region, policy),
            Change::SetShift { specialist, on_shift } => self.set_shift(now, actor, specialist, *on_shift),
            Change::DeclareCapacity { facility, service, capacity } => {
                self.declare_capacity(now, actor, facility, service, *capacity)
            }
            Change::SetDevice { facility, modality, in_service, reason } => {
                self.set_device(now, actor, facility, *modality, *in_service, reason.as_deref())
            }
            Change::SubmitCase(s) => self.submit_case(now, actor, s),
            Change::Case { case, action, reason } => {
                self.act_on_case(now, actor, case, action, reason.as_deref())
            }
            Change::RequestTransfer(r) => self.request_transfer(now, actor, r),
            Change::Transfer { transfer, action } => self.act_on_transfer(now, actor, transfer, action),
            Change::RecordInstances(batch) => self.record_instances(now, actor, batch),
            Change::CommitStudy { study_uid } => self.commit_study(now, actor, study_uid),
            Change::HoldStudyCopy { study_uid, node, instances } => {
                self.hold_study_copy(now, actor, study_uid, *node, instances)
            }
            Change::Tick => self.tick(now, actor),
            Change::AddUser(r) => self.add_user(now, actor, r),
            Change::DisableUser { user } => self.disable_user(now, actor, user),
            Change::RevokeSessions { user } => self.revoke_sessions(now, actor, user),
            Change::CreateApiToken { id, user, secret_hash, label } => {
                self.create_api_token(now, actor, id, user, secret_hash, label)
            }
            Change::RevokeApiToken { id } => self.revoke_api_token(now, actor, id),
            Change::BreakGlass { case, reason, minutes } => {
                self.break_glass(now, actor, case, reason, *minutes)
            }
            Change::RecordAccess(records) => self.record_access(now, actor, records),
        }
    }

    fn validate_actor(&self, actor: &Actor) -> Result<(), DomainError> {
        validate_id("actor.id", &actor.id)?;
        if let Some(f) = &actor.facility {
            self.facility(f)?;
        }
        Ok(())
    }

    /// The region's clock: the latest command time applied.
    pub fn clock_ms(&self) -> u64 {
        self.counters.clock_ms
    }

    /// The earliest deadline of any open case or break-glass grant, for the leader's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        let grants =
            self.break_glass.values().filter(|g| g.ended_audit_seq.is_none()).map(|g| g.until_ms).min();
        match (self.index.next_deadline(), grants) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Look up a facility.
    pub fn facility(&self, id: &FacilityId) -> Result<&Facility, DomainError> {
        self.facilities.get(id).ok_or_else(|| DomainError::not_found("facility", id))
    }

    /// Look up a specialist.
    pub fn specialist(&self, id: &SpecialistId) -> Result<&Specialist, DomainError> {
        self.specialists.get(id).ok_or_else(|| DomainError::not_found("specialist", id))
    }

    /// Look up a case.
    pub fn case(&self, id: &CaseId) -> Result<&Case, DomainError> {
        self.cases.get(id).ok_or_else(|| DomainError::not_found("case", id))
    }

    /// Look up a transfer.
    pub fn transfer(&self, id: &TransferId) -> Result<&Transfer, DomainError> {
        self.transfers.get(id).ok_or_else(|| DomainError::not_found("transfer", id))
    }

    /// The policy in force for `region` (the default if none was set).
    pub fn policy(&self, region: &str) -> RegionPolicy {
        self.policies.get(region).cloned().unwrap_or_default()
    }

    /// All facilities, by id.
    pub fn facilities(&self) -> impl Iterator<Item = &Facility> {
        self.facilities.values()
    }

    /// All specialists, by id.
    pub fn specialists(&self) -> impl Iterator<Item = &Specialist> {
        self.specialists.values()
    }

    /// All cases, by id.
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.cases.values()
    }

    /// All transfers, by id.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// The audit trail, oldest first.
    pub fn audit_events(&self) -> impl Iterator<Item = &AuditEvent> {
        self.audit.values()
    }

    /// Store a case and keep the indexes in step; note when a reader's slot was released so
    /// waiting unrouted cases are tried again at the end of the command.
    fn put_case(&mut self, case: Case) {
        if let Some(old) = self.cases.get(&case.id) {
            let released =
                old.is_open() && old.owner.is_some() && (!case.is_open() || case.owner != old.owner);
            self.capacity_freed |= released;
            self.index.remove_case(old);
        }
        self.index.insert_case(&case);
        self.touched.push(EntityKey::Case(case.id.clone()));
        self.cases.insert(case.id.clone(), case);
    }

    fn put_specialist(&mut self, s: Specialist) {
        self.touched.push(EntityKey::Specialist(s.id.clone()));
        self.specialists.insert(s.id.clone(), s);
    }

    fn put_facility(&mut self, f: Facility) {
        self.touched.push(EntityKey::Facility(f.id.clone()));
        self.facilities.insert(f.id.clone(), f);
    }

    fn put_transfer(&mut self, t: Transfer) {
        self.touched.push(EntityKey::Transfer(t.id.clone()));
        self.transfers.insert(t.id.clone(), t);
    }

    /// Append an audit event and return its sequence number.
    fn audit(&mut self, now: u64, actor: &Actor, event: AuditRecord) -> u64 {
        self.counters.audit += 1;
        let seq = self.counters.audit;
        let prev_hash =
            self.audit.get(&(seq - 1)).map_or_else(|| GENESIS_HASH.to_owned(), |e| e.hash.clone());
        let mut event = AuditEvent {
            seq,
            at_ms: now,
            event_type: event.event_type,
            action: event.action,
            actor: actor.clone(),
            case: event.case,
            patient: event.patient,
            object: event.object,
            detail: event.detail,
            outcome: event.outcome,
            study: event.study,
            source: event.source.or_else(|| self.provenance.source.clone()),
            purpose: event.purpose.or_else(|| self.provenance.purpose.clone()),
            prev_hash,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        self.audit.insert(seq, event);
        self.touched.push(EntityKey::Audit(seq));
        self.touched.push(EntityKey::Counters);
        seq
    }

    /// The current value of a stored entity, or `None` if it does not exist.
    pub fn entity(&self, key: &EntityKey) -> Option<Entity> {
        self.entity_ref(key).map(EntityRef::to_entity)
    }

    /// The stored entity `key` names, borrowed, or `None` if it does not exist.
    pub fn entity_ref(&self, key: &EntityKey) -> Option<EntityRef<'_>> {
        match key {
            EntityKey::Facility(id) => self.facilities.get(id).map(EntityRef::Facility),
            EntityKey::Specialist(id) => self.specialists.get(id).map(EntityRef::Specialist),
            EntityKey::Case(id) => self.cases.get(id).map(EntityRef::Case),
            EntityKey::Transfer(id) => self.transfers.get(id).map(EntityRef::Transfer),
            EntityKey::Policy(r) => self.policies.get_key_value(r).map(|(r, p)| EntityRef::Policy(r, p)),
            EntityKey::Study(uid) => self.studies.get(uid).map(EntityRef::Study),
            EntityKey::Audit(seq) => self.audit.get(seq).map(EntityRef::Audit),
            EntityKey::Counters => Some(EntityRef::Counters(&self.counters)),
            EntityKey::User(id) => self.users.get(id).map(EntityRef::User),
            EntityKey::ApiToken(id) => self.api_tokens.get(id).map(EntityRef::ApiToken),
            EntityKey::BreakGlass(id) => self.break_glass.get(id).map(EntityRef::BreakGlass),
        }
    }

    /// Put a stored entity back (used when loading from disk or a snapshot).
    pub fn restore(&mut self, entity: Entity) {
        match entity {
            Entity::Facility(f) => {
                self.facilities.insert(f.id.clone(), f);
            }
            Entity::Specialist(s) => {
                self.specialists.insert(s.id.clone(), s);
            }
            Entity::Case(c) => {
                if let Some(old) = self.cases.get(&c.id) {
                    self.index.remove_case(old);
                }
                self.index.insert_case(&c);
                self.cases.insert(c.id.clone(), *c);
            }
            Entity::Transfer(t) => {
                self.transfers.insert(t.id.clone(), t);
            }
            Entity::Policy(r, p) => {
                self.policies.insert(r, p);
            }
            Entity::Study(s) => {
                self.index_study(&s);
                self.studies.insert(s.study_uid.clone(), *s);
            }
            Entity::Audit(e) => {
                self.audit.insert(e.seq, e);
            }
            Entity::Counters(c) => self.counters = c,
            Entity::User(u) => {
                self.users.insert(u.id.clone(), u);
            }
            Entity::ApiToken(t) => {
                self.api_tokens.insert(t.id.clone(), t);
            }
            Entity::BreakGlass(g) => {
                self.break_glass.insert(g.id, g);
            }
        }
    }

    /// Keys of every stored entity.
    pub fn keys(&self) -> Vec<EntityKey> {
        let mut out = Vec::with_capacity(
            1 + self.facilities.len()
                + self.specialists.len()
                + self.cases.len()
                + self.transfers.len()
                + self.policies.len()
                + self.studies.len()
                + self.audit.len()
                + self.users.len()
                + self.api_tokens.len()
                + self.break_glass.len(),
        );
        out.push(EntityKey::Counters);
        out.extend(self.facilities.keys().cloned().map(EntityKey::Facility));
        out.extend(self.specialists.keys().cloned().map(EntityKey::Specialist));
        out.extend(self.policies.keys().cloned().map(EntityKey::Policy));
        out.extend(self.cases.keys().cloned().map(EntityKey::Case));
        out.extend(self.transfers.keys().cloned().map(EntityKey::Transfer));
        out.extend(self.studies.keys().cloned().map(EntityKey::Study));
        out.extend(self.audit.keys().copied().map(EntityKey::Audit));
        out.extend(self.users.keys().cloned().map(EntityKey::User));
        out.extend(self.api_tokens.keys().cloned().map(EntityKey::ApiToken));
        out.extend(self.break_glass.keys().copied().map(EntityKey::BreakGlass));
        out
    }
}

/// What a handler wants written to the audit trail.
struct AuditRecord {
    event_type: String,
    action: AuditAction,
    case: Option<CaseId>,
    patient: Option<PatientKey>,
    object: Option<String>,
    detail: Option<String>,
    outcome: AuditOutcome,
    study: Option<String>,
    source: Option<String>,
    purpose: Option<String>,
}

impl AuditRecord {
    fn new(event_type: impl Into<String>, action: AuditAction) -> Self {
        Self {
            event_type: event_type.into(),
            action,
            case: None,
            patient: None,
            object: None,
            detail: None,
            outcome: AuditOutcome::Success,
            study: None,
            source: None,
            purpose: None,
        }
    }

    fn for_case(mut self, case: &Case) -> Self {
        self.case = Some(case.id.clone());
        self.patient = Some(case.patient.clone());
        self
    }

    fn object(mut self, object: impl ToString) -> Self {
        self.object = Some(object.to_string());
        self
    }

    fn detail(mut self, detail: Option<impl Into<String>>) -> Self {
        self.detail = detail.map(Into::into);
        self
    }
}

/// A region is written out (snapshots) as the sequence of its entities, one cloned at a time.
impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let keys = self.keys();
        let mut seq = serializer.serialize_seq(Some(keys.len()))?;
        for key in &keys {
            if let Some(e) = self.entity(key) {
                seq.serialize_element(&e)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entities = Vec::<Entity>::deserialize(deserializer)?;
        let mut region = Region::default();
        for e in entities {
            region.restore(e);
        }
        Ok(region)
    }
}

fn validate_id(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > 128 || value.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "must be at most 128 bytes without control characters"));
    }
    Ok(())
}

fn validate_text(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(DomainError::invalid(field, format!("must be at most {MAX_TEXT_BYTES} bytes")));
    }
    Ok(())
}

fn validate_optional_text(field: &str, value: Option<&str>) -> Result<(), DomainError> {
    value.map_or(Ok(()), |v| validate_text(field, v))
}

#[cfg(test)]
mod tests;
