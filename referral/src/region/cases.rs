//! Submitting cases and acting on them under the transition table.

use super::registry::is_staff_of;
use super::{validate_id, validate_optional_text, validate_text, AuditRecord, Region};
use crate::actor::{Actor, Role};
use crate::audit::AuditAction;
use crate::case::{Case, CaseEvent, CaseId, OfferOutcome, Report, Routing, SlaState, Vitals};
use crate::command::{CaseSubmission, Outcome};
use crate::error::DomainError;
use crate::facility::FacilityLevel;
use crate::lifecycle::{CaseAction, Party};
use crate::priority::{Priority, RegionPolicy};
use crate::specialist::SpecialistId;
use crate::status::TaskStatus;

impl Region {
    pub(super) fn submit_case(
        &mut self,
        now: u64,
        actor: &Actor,
        s: &CaseSubmission,
    ) -> Result<Outcome, DomainError> {
        if !is_staff_of(actor, &s.origin) {
            return Err(DomainError::not_allowed(
                "staff-of-origin-submits",
                format!("cases from `{}` are submitted by its own staff", s.origin),
            ));
        }
        s.patient.validate()?;
        validate_text("complaint", &s.complaint)?;
        validate_id("specialty", &s.specialty)?;
        validate_vitals(&s.vitals)?;
        if s.green_channel.is_some() && s.priority != Priority::Stat {
            return Err(DomainError::invalid(
                "priority",
                "green-channel cases must be submitted with priority stat",
            ));
        }
        let origin = self.facility(&s.origin)?;
        if let Some(target) = &s.target {
            if self.facility(target)?.level == FacilityLevel::Township {
                return Err(DomainError::invalid(
                    "target",
                    "cases are read at county or provincial hospitals",
                ));
            }
        }
        let exam_facility = match s.modality {
            Some(m) if !origin.device_in_service(m) => {
                self.nearest_with_device(&s.origin, m).unwrap_or_else(|| s.origin.clone())
            }
            _ => s.origin.clone(),
        };
        self.counters.cases += 1;
        let id = CaseId::from_sequence(self.counters.cases);
        let mut case = Case {
            id: id.clone(),
            patient: s.patient.clone(),
            complaint: s.complaint.clone(),
            vitals: s.vitals.clone(),
            priority: s.priority,
            green_channel: s.green_channel,
            specialty: s.specialty.clone(),
            modality: s.modality,
            origin: s.origin.clone(),
            requester: actor.id.clone(),
            exam_facility,
            preferred_target: s.target.clone(),
            created_at_ms: now,
            status: TaskStatus::Draft,
            status_since_ms: now,
            owner: None,
            routing: Routing::default(),
            sla: SlaState::default(),
            reports: Vec::new(),
            transfers: Vec::new(),
            history: Vec::new(),
        };
        if s.draft {
            self.record(now, actor, &mut case, "drafted", TaskStatus::Draft, None);
            self.put_case(case);
        } else {
            self.start_request(now, &mut case);
            self.record(now, actor, &mut case, "submitted", TaskStatus::Requested, None);
            self.route_case(now, case, 0);
        }
        self.case_outcome(&id)
    }

    pub(super) fn act_on_case(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &CaseId,
        action: &CaseAction,
        reason: Option<&str>,
    ) -> Result<Outcome, DomainError> {
        validate_optional_text("reason", reason)?;
        let mut case = self.case(id)?.clone();
        let rule = action.rule();
        if !rule.from.contains(&case.status) {
            return Err(DomainError::InvalidTransition {
                case: id.0.clone(),
                status: case.status.to_string(),
                action: action.name().to_owned(),
                allowed: rule.from.iter().map(|s| s.code()).collect::<Vec<_>>().join(", "),
                rule: rule.name.to_owned(),
            });
        }
        let parties = parties_of(actor, &case);
        if !rule.by.iter().any(|p| parties.contains(p)) {
            let who = rule.by.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
            return Err(DomainError::not_allowed(
                rule.name,
                format!("only {who} may {} case `{id}`; {actor} is not", action.name()),
            ));
        }
        if rule.needs_reason && reason.is_none() {
            return Err(DomainError::invalid("reason", format!("rule `{}` requires a reason", rule.name)));
        }
        let to = action.target(case.status);
        match action {
            CaseAction::Submit => {
                self.start_request(now, &mut case);
                self.record(now, actor, &mut case, rule.name, to, reason);
                self.route_case(now, case, 0);
            }
            CaseAction::Receive | CaseAction::Start | CaseAction::Hold | CaseAction::Resume => {
                self.record(now, actor, &mut case, rule.name, to, reason);
                self.put_case(case);
            }
            CaseAction::Accept => {
                self.take_offer(now, &mut case);
                self.record(now, actor, &mut case, rule.name, to, reason);
                self.put_case(case);
            }
            CaseAction::Decline => {
                self.end_offer(&mut case, OfferOutcome::Declined);
                self.record(now, actor, &mut case, rule.name, to, reason);
                let step = case.routing.step;
                self.route_case(now, case, step);
            }
            CaseAction::Report { text } => {
                validate_text("text", text)?;
                let by = SpecialistId(actor.id.clone());
                case.reports.push(Report { text: text.clone(), by, at_ms: now });
                case.sla.reported_at_ms = Some(now);
                self.record(now, actor, &mut case, rule.name, to, reason);
                self.put_case(case);
            }
            CaseAction::Complete if case.sla.reported_at_ms.is_none() => {
                return Err(DomainError::not_allowed(
                    rule.name,
                    format!("file a report on `{id}` before completing it"),
                ));
            }
            CaseAction::Complete | CaseAction::Fail => self.close(now, actor, case, rule.name, to, reason),
            CaseAction::Reject => {
                self.end_offer_keep_owner(&mut case, OfferOutcome::Declined);
                self.close(now, actor, case, rule.name, to, reason);
            }
            CaseAction::Cancel | CaseAction::EnterInError => {
                if case.status.is_offer_stage() {
                    self.end_offer(&mut case, OfferOutcome::Withdrawn);
                }
                self.close(now, actor, case, rule.name, to, reason);
            }
            CaseAction::Reopen => {
                case.sla.round += 1;
                self.start_request(now, &mut case);
                case.sla.accepted_at_ms = None;
                case.sla.report_due_ms = None;
                case.sla.reported_at_ms = None;
                case.owner = None;
                case.routing.passed_over.clear();
                case.routing.unrouted_since_ms = None;
                self.record(now, actor, &mut case, rule.name, to, reason);
                self.route_case(now, case, 0);
            }
            CaseAction::HandOff { to: colleague } | CaseAction::Assign { to: colleague } => {
                let is_assign = matches!(action, CaseAction::Assign { .. });
                if case.owner.as_ref() == Some(colleague) {
                    return Err(DomainError::invalid(
                        "to",
                        format!("`{colleague}` already holds case `{id}`"),
                    ));
                }
                let reader = self.specialist(colleague)?;
                if let Err(why) = self.eligibility(&case, reader) {
                    let ops_may_override = is_assign && why == super::Ineligible::AtCap;
                    if !ops_may_override {
                        return Err(DomainError::not_allowed(
                            rule.name,
                            format!("`{colleague}` cannot take case `{id}`: {why}"),
                        ));
                    }
                }
                let ladder = self.ladder(&case);
                let step = ladder
                    .iter()
                    .position(|s| s.contains(&reader.facility))
                    .map_or(case.routing.step, |p| p as u32);
                if is_assign {
                    self.end_offer(&mut case, OfferOutcome::Withdrawn);
                } else {
                    case.owner = None;
                }
                self.offer(now, actor, &mut case, (colleague, step), rule.name, reason);
                self.put_case(case);
            }
        }
        self.case_outcome(id)
    }

    /// Move `case` to a closed status (its reader's slot goes to waiting cases, see `apply`).
    fn close(
        &mut self,
        now: u64,
        actor: &Actor,
        mut case: Case,
        rule: &str,
        to: TaskStatus,
        reason: Option<&str>,
    ) {
        case.routing.offer_deadline_ms = None;
        case.routing.unrouted_since_ms = None;
        self.record(now, actor, &mut case, rule, to, reason);
        self.put_case(case);
    }

    fn end_offer_keep_owner(&mut self, case: &mut Case, outcome: OfferOutcome) {
        if let Some(last) = case.routing.offers.last_mut().filter(|o| o.outcome.is_none()) {
            last.outcome = Some(outcome);
        }
        case.routing.offer_deadline_ms = None;
    }

    /// Start the request clocks (submission, submitting a draft, reopen).
    fn start_request(&self, now: u64, case: &mut Case) {
        let targets = self.policy_for_case(case).targets(case.priority);
        case.sla.requested_at_ms = now;
        case.sla.accept_due_ms = now + targets.offer_to_accept_ms;
    }

    /// The policy of the region the case comes from.
    pub(super) fn policy_for_case(&self, case: &Case) -> RegionPolicy {
        self.facilities.get(&case.origin).map(|f| self.policy(&f.region)).unwrap_or_default()
    }

    /// Move `case` to status `to` (or keep it) and write the history entry and audit event.
    pub(super) fn record(
        &mut self,
        now: u64,
        actor: &Actor,
        case: &mut Case,
        rule: &str,
        to: TaskStatus,
        reason: Option<&str>,
    ) {
        let from = case.status;
        if from != to {
            case.status = to;
            case.status_since_ms = now;
        }
        let action = match (actor.role, from) {
            (Role::System, _) => AuditAction::E,
            (_, TaskStatus::Draft) if case.history.is_empty() => AuditAction::C,
            _ => AuditAction::U,
        };
        let detail = reason.map(str::to_owned);
        let seq = self.audit(
            now,
            actor,
            AuditRecord::new(format!("case.{rule}"), action).for_case(case).detail(detail.clone()),
        );
        case.history.push(CaseEvent {
            at_ms: now,
            actor: actor.clone(),
            rule: rule.to_owned(),
            from,
            to,
            owner: case.owner.clone(),
            reason: detail,
            audit_seq: seq,
        });
    }

    /// The client's view of where a case stands.
    pub(super) fn case_outcome(&self, id: &CaseId) -> Result<Outcome, DomainError> {
        let c = self.case(id)?;
        Ok(Outcome::Case {
            case_id: id.clone(),
            status: c.status,
            owner: c.owner.clone(),
            unrouted: c.is_unrouted(),
        })
    }
}

/// The parties `actor` is to `case`.
fn parties_of(actor: &Actor, case: &Case) -> Vec<Party> {
    let mut parties = Vec::new();
    if actor.role == Role::Specialist && case.owner.as_ref().is_some_and(|o| o.0 == actor.id) {
        parties.push(Party::Owner);
    }
    if is_staff_of(actor, &case.origin) {
        parties.push(Party::Requester);
    }
    if actor.role == Role::Ops {
        parties.push(Party::Ops);
    }
    parties
}

fn validate_vitals(v: &Vitals) -> Result<(), DomainError> {
    let check = |field: &str, value: Option<u16>, lo: u16, hi: u16| match value {
        Some(x) if !(lo..=hi).contains(&x) => {
            Err(DomainError::invalid(field, format!("{x} is outside the plausible range {lo}..={hi}")))
        }
        _ => Ok(()),
    };
    check("vitals.heart_rate_bpm", v.heart_rate_bpm, 20, 300)?;
    check("vitals.systolic_mmhg", v.systolic_mmhg, 40, 300)?;
    check("vitals.diastolic_mmhg", v.diastolic_mmhg, 20, 200)?;
    check("vitals.spo2_percent", v.spo2_percent.map(u16::from), 40, 100)?;
    check("vitals.temperature_decicelsius", v.temperature_decicelsius, 300, 450)
}
