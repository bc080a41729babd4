//! The whole replicated referral state of a region, and how commands change it.

use crate::case::{Case, CaseEvent, CaseId, CaseStatus};
use crate::command::{CaseSubmission, Command, Outcome};
use crate::error::DomainError;
use crate::facility::{Facility, FacilityId, FacilityLevel};
use crate::specialist::{Specialist, SpecialistId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest free-text field accepted (complaint, report), in bytes.
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
    /// The case id counter.
    CaseSequence,
}

/// One stored entity, as persisted by the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entity {
    /// A facility.
    Facility(Facility),
    /// A specialist.
    Specialist(Specialist),
    /// A case.
    Case(Case),
    /// The number of cases submitted so far.
    CaseSequence(u64),
}

/// The result of applying one command: the answer for the client and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The answer for the client.
    pub result: Result<Outcome, DomainError>,
    /// Entities the command changed (empty when it was refused).
    pub touched: Vec<EntityKey>,
}

/// Facilities, specialists and cases of one region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Region {
    facilities: BTreeMap<FacilityId, Facility>,
    specialists: BTreeMap<SpecialistId, Specialist>,
    cases: BTreeMap<CaseId, Case>,
    case_sequence: u64,
}

impl Region {
    /// Apply `command` at time `at_ms` (stamped by the leader, so replicas agree).
    pub fn apply(&mut self, at_ms: u64, command: &Command) -> Applied {
        let mut touched = Vec::new();
        let result = self.apply_inner(at_ms, command, &mut touched);
        if result.is_err() {
            touched.clear();
        }
        Applied { result, touched }
    }

    fn apply_inner(
        &mut self,
        at_ms: u64,
        command: &Command,
        touched: &mut Vec<EntityKey>,
    ) -> Result<Outcome, DomainError> {
        match command {
            Command::RegisterFacility(f) => {
                validate_id("id", &f.id.0)?;
                validate_text("name", &f.name)?;
                if self.facilities.contains_key(&f.id) {
                    return Err(DomainError::already_exists("facility", &f.id));
                }
                if let Some(parent) = &f.parent {
                    let p = self.facility(parent)?;
                    if p.level <= f.level {
                        return Err(DomainError::invalid(
                            "parent",
                            format!("parent `{parent}` must be a higher tier than the facility"),
                        ));
                    }
                }
                self.facilities.insert(f.id.clone(), f.clone());
                touched.push(EntityKey::Facility(f.id.clone()));
                Ok(Outcome::Registered { id: f.id.0.clone() })
            }
            Command::RegisterSpecialist(s) => {
                validate_id("id", &s.id.0)?;
                validate_text("name", &s.name)?;
                if self.specialists.contains_key(&s.id) {
                    return Err(DomainError::already_exists("specialist", &s.id));
                }
                if self.facility(&s.facility)?.level == FacilityLevel::Township {
                    return Err(DomainError::invalid(
                        "facility",
                        "specialists work at county or provincial hospitals",
                    ));
                }
                self.specialists.insert(s.id.clone(), s.clone());
                touched.push(EntityKey::Specialist(s.id.clone()));
                Ok(Outcome::Registered { id: s.id.0.clone() })
            }
            Command::SubmitCase(CaseSubmission {
                patient_ref,
                complaint,
                vitals,
                priority,
                origin,
                target,
            }) => {
                validate_id("patient_ref", patient_ref)?;
                validate_text("complaint", complaint)?;
                let origin_facility = self.facility(origin)?;
                let target = match target.clone().or_else(|| origin_facility.parent.clone()) {
                    Some(t) => t,
                    None => {
                        return Err(DomainError::invalid(
                            "target",
                            format!("facility `{origin}` has no parent; name a target facility"),
                        ))
                    }
                };
                if self.facility(&target)?.level == FacilityLevel::Township {
                    return Err(DomainError::invalid(
                        "target",
                        "cases are sent to county or provincial hospitals",
                    ));
                }
                self.case_sequence += 1;
                let id = CaseId::from_sequence(self.case_sequence);
                let case = Case {
                    id: id.clone(),
                    patient_ref: patient_ref.clone(),
                    complaint: complaint.clone(),
                    vitals: vitals.clone(),
                    priority: *priority,
                    origin: origin.clone(),
                    target,
                    specialist: None,
                    status: CaseStatus::Submitted,
                    report: None,
                    submitted_at_ms: at_ms,
                    history: vec![CaseEvent {
                        at_ms,
                        status: CaseStatus::Submitted,
                        actor: origin.0.clone(),
                    }],
                };
                self.cases.insert(id.clone(), case);
                touched.push(EntityKey::CaseSequence);
                touched.push(EntityKey::Case(id.clone()));
                Ok(Outcome::Case { case_id: id, status: CaseStatus::Submitted })
            }
            Command::Assign { case, specialist } => {
                let spec_facility = self.specialist(specialist)?.facility.clone();
                let c = self.case_in(case, "assign", &[CaseStatus::Submitted, CaseStatus::Assigned])?;
                if spec_facility != c.target {
                    return Err(DomainError::NotAllowed {
                        reason: format!(
                            "specialist `{specialist}` works at `{spec_facility}`, but case `{case}` is sent to `{}`",
                            c.target
                        ),
                    });
                }
                c.specialist = Some(specialist.clone());
                self.transition(at_ms, case, CaseStatus::Assigned, &specialist.0, touched)
            }
            Command::Accept { case, specialist } => {
                self.case_for(case, specialist, "accept", &[CaseStatus::Assigned])?;
                self.transition(at_ms, case, CaseStatus::Accepted, &specialist.0, touched)
            }
            Command::Report { case, specialist, findings } => {
                validate_text("findings", findings)?;
                let c = self.case_for(case, specialist, "report", &[CaseStatus::Accepted])?;
                c.report = Some(findings.clone());
                self.transition(at_ms, case, CaseStatus::Reported, &specialist.0, touched)
            }
            Command::Complete { case, specialist } => {
                self.case_for(case, specialist, "complete", &[CaseStatus::Reported])?;
                self.transition(at_ms, case, CaseStatus::Completed, &specialist.0, touched)
            }
        }
    }

    fn transition(
        &mut self,
        at_ms: u64,
        case: &CaseId,
        status: CaseStatus,
        actor: &str,
        touched: &mut Vec<EntityKey>,
    ) -> Result<Outcome, DomainError> {
        let c = self.cases.get_mut(case).ok_or_else(|| DomainError::not_found("case", case))?;
        c.status = status;
        c.history.push(CaseEvent { at_ms, status, actor: actor.to_owned() });
        touched.push(EntityKey::Case(case.clone()));
        Ok(Outcome::Case { case_id: case.clone(), status })
    }

    /// The case, if it is in one of `allowed` statuses.
    fn case_in(
        &mut self,
        case: &CaseId,
        action: &str,
        allowed: &[CaseStatus],
    ) -> Result<&mut Case, DomainError> {
        let c = self.cases.get_mut(case).ok_or_else(|| DomainError::not_found("case", case))?;
        if !allowed.contains(&c.status) {
            return Err(DomainError::InvalidTransition {
                case: case.0.clone(),
                status: c.status.to_string(),
                action: action.to_owned(),
                allowed: allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(c)
    }

    /// The case, if `specialist` is the one it is assigned to and it is in an `allowed` status.
    fn case_for(
        &mut self,
        case: &CaseId,
        specialist: &SpecialistId,
        action: &str,
        allowed: &[CaseStatus],
    ) -> Result<&mut Case, DomainError> {
        self.specialist(specialist)?;
        let c = self.case_in(case, action, allowed)?;
        if c.specialist.as_ref() != Some(specialist) {
            return Err(DomainError::NotAllowed {
                reason: format!("case `{case}` is not assigned to specialist `{specialist}`"),
            });
        }
        Ok(c)
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

    /// The current value of a stored entity, or `None` if it does not exist.
    pub fn entity(&self, key: &EntityKey) -> Option<Entity> {
        match key {
            EntityKey::Facility(id) => self.facilities.get(id).cloned().map(Entity::Facility),
            EntityKey::Specialist(id) => self.specialists.get(id).cloned().map(Entity::Specialist),
            EntityKey::Case(id) => self.cases.get(id).cloned().map(Entity::Case),
            EntityKey::CaseSequence => Some(Entity::CaseSequence(self.case_sequence)),
        }
    }

    /// Put a stored entity back (used when loading from disk).
    pub fn restore(&mut self, entity: Entity) {
        match entity {
            Entity::Facility(f) => {
                self.facilities.insert(f.id.clone(), f);
            }
            Entity::Specialist(s) => {
                self.specialists.insert(s.id.clone(), s);
            }
            Entity::Case(c) => {
                self.cases.insert(c.id.clone(), c);
            }
            Entity::CaseSequence(n) => self.case_sequence = n,
        }
    }

    /// Every stored entity, with its key (used to write a full copy to disk).
    pub fn entities(&self) -> Vec<(EntityKey, Entity)> {
        let mut out =
            Vec::with_capacity(self.facilities.len() + self.specialists.len() + self.cases.len() + 1);
        out.push((EntityKey::CaseSequence, Entity::CaseSequence(self.case_sequence)));
        out.extend(
            self.facilities
                .values()
                .map(|f| (EntityKey::Facility(f.id.clone()), Entity::Facility(f.clone()))),
        );
        out.extend(
            self.specialists
                .values()
                .map(|s| (EntityKey::Specialist(s.id.clone()), Entity::Specialist(s.clone()))),
        );
        out.extend(self.cases.values().map(|c| (EntityKey::Case(c.id.clone()), Entity::Case(c.clone()))));
        out
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

#[cfg(test)]
mod tests;
