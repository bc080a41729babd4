//! Two-way referral: moving the patient up for admission or down for rehab and follow-up.

use super::registry::{is_staff_of, validate_service};
use super::{validate_text, AuditRecord, Region};
use crate::actor::{Actor, Role};
use crate::audit::AuditAction;
use crate::command::{Outcome, TransferAction, TransferRequest};
use crate::error::DomainError;
use crate::facility::{Capacity, CapacityDeclaration, FacilityId};
use crate::status::TaskStatus;
use crate::transfer::{Direction, RejectReason, Transfer, TransferEvent, TransferId, TransferStatus};

/// Most follow-up tasks sent with one patient.
const MAX_FOLLOW_UPS: usize = 32;

impl Region {
    pub(super) fn request_transfer(
        &mut self,
        now: u64,
        actor: &Actor,
        r: &TransferRequest,
    ) -> Result<Outcome, DomainError> {
        validate_service(&r.service)?;
        if r.follow_up.len() > MAX_FOLLOW_UPS {
            return Err(DomainError::invalid("follow_up", format!("at most {MAX_FOLLOW_UPS} tasks")));
        }
        for task in &r.follow_up {
            validate_text("follow_up.what", &task.what)?;
        }
        let case = self.case(&r.case)?.clone();
        if matches!(case.status, TaskStatus::Draft | TaskStatus::Cancelled | TaskStatus::EnteredInError) {
            return Err(DomainError::not_allowed(
                "transfer-needs-live-case",
                format!(
                    "case `{}` is {}; patients are transferred only for submitted cases",
                    case.id, case.status
                ),
            ));
        }
        if let Some(open) = case
            .transfers
            .iter()
            .filter_map(|t| self.transfers.get(t))
            .find(|t| matches!(t.status, TransferStatus::Requested | TransferStatus::Accepted))
        {
            return Err(DomainError::not_allowed(
                "one-transfer-at-a-time",
                format!(
                    "transfer `{}` of this patient is still {}; complete or cancel it first",
                    open.id, open.status
                ),
            ));
        }
        let here = self.patient_location(&case.transfers).unwrap_or_else(|| case.origin.clone());
        let owner_facility =
            case.owner.as_ref().and_then(|o| self.specialists.get(o)).map(|s| s.facility.clone());
        let from = match &r.from {
            Some(f) if *f == here || Some(f) == owner_facility.as_ref() => f.clone(),
            Some(f) => {
                return Err(DomainError::invalid(
                    "from",
                    format!(
                        "the patient of case `{}` is at `{here}`{}; `{f}` cannot send them",
                        case.id,
                        owner_facility
                            .as_ref()
                            .map(|o| format!(" or with its reader at `{o}`"))
                            .unwrap_or_default()
                    ),
                ))
            }
            None => here,
        };
        let from_facility = self.facility(&from)?;
        let to_facility = self.facility(&r.to)?;
        let may_send = actor.role == Role::Ops
            || is_staff_of(actor, &from)
            || is_staff_of(actor, &case.origin)
            || (actor.role == Role::Specialist && case.owner.as_ref().is_some_and(|o| o.0 == actor.id));
        if !may_send {
            return Err(DomainError::not_allowed(
                "sender-requests-transfer",
                format!(
                    "transfers are requested by staff of `{from}` or `{}`, or the case owner",
                    case.origin
                ),
            ));
        }
        let tier_ok = match r.direction {
            Direction::Up => to_facility.level > from_facility.level,
            Direction::Down => to_facility.level < from_facility.level,
        };
        if !tier_ok {
            let dir = if r.direction == Direction::Up { "higher" } else { "lower" };
            return Err(DomainError::invalid("to", format!("`{}` is not a {dir} tier than `{from}`", r.to)));
        }
        let declared = to_facility.capacity_for(&r.service);
        if r.direction == Direction::Down && !declared.is_some_and(Capacity::can_take) {
            return Err(DomainError::NoCapacity {
                facility: r.to.0.clone(),
                service: r.service.clone(),
                declared: declared.map_or_else(|| "undeclared".to_owned(), |c| c.to_string()),
                suggestion: self
                    .nearest_with_capacity(&r.service, &r.to, |l| l < from_facility.level, &[&r.to])
                    .map(|f| f.0),
            });
        }
        self.counters.transfers += 1;
        let id = TransferId::from_sequence(self.counters.transfers);
        let transfer = Transfer {
            id: id.clone(),
            case: case.id.clone(),
            direction: r.direction,
            from,
            to: r.to.clone(),
            service: r.service.clone(),
            requested_slot_ms: r.slot_ms,
            declared_capacity: declared,
            follow_up: r.follow_up.clone(),
            status: TransferStatus::Requested,
            reject_reason: None,
            suggestion: None,
            history: vec![TransferEvent {
                at_ms: now,
                actor: actor.clone(),
                status: TransferStatus::Requested,
                reason: None,
            }],
        };
        let mut case = case;
        case.transfers.push(id.clone());
        let audit = AuditRecord::new("transfer.request", AuditAction::C).for_case(&case).object(&id);
        self.put_case(case);
        self.put_transfer(transfer);
        self.audit(now, actor, audit);
        Ok(Outcome::Transfer { transfer_id: id, status: TransferStatus::Requested, suggestion: None })
    }

    pub(super) fn act_on_transfer(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &TransferId,
        action: &TransferAction,
    ) -> Result<Outcome, DomainError> {
        let mut t = self.transfer(id)?.clone();
        let (allowed_from, rule): (&[TransferStatus], &str) = match action {
            TransferAction::Accept | TransferAction::Reject { .. } => {
                (&[TransferStatus::Requested], "receiver-decides")
            }
            TransferAction::Cancel { .. } => {
                (&[TransferStatus::Requested, TransferStatus::Accepted], "sender-cancels")
            }
            TransferAction::Complete => (&[TransferStatus::Accepted], "receiver-confirms-arrival"),
        };
        if !allowed_from.contains(&t.status) {
            return Err(DomainError::not_allowed(rule, format!("transfer `{id}` is {}", t.status)));
        }
        let is_receiver = actor.role == Role::Ops || is_staff_of(actor, &t.to);
        let is_sender = actor.role == Role::Ops || is_staff_of(actor, &t.from) || {
            let case = self.case(&t.case)?;
            is_staff_of(actor, &case.origin) || case.owner.as_ref().is_some_and(|o| o.0 == actor.id)
        };
        let permitted = match action {
            TransferAction::Cancel { .. } => is_sender,
            _ => is_receiver,
        };
        if !permitted {
            let who = if matches!(action, TransferAction::Cancel { .. }) {
                "the sender"
            } else {
                "staff of the receiving facility"
            };
            return Err(DomainError::not_allowed(rule, format!("only {who} may do this to transfer `{id}`")));
        }
        let (status, reason) = match action {
            TransferAction::Accept => (TransferStatus::Accepted, None),
            TransferAction::Complete => (TransferStatus::Completed, None),
            TransferAction::Cancel { reason } => {
                validate_text("reason", reason)?;
                (TransferStatus::Cancelled, Some(reason.clone()))
            }
            TransferAction::Reject { reason } => {
                let text = match reason {
                    RejectReason::AtCapacity => "at capacity".to_owned(),
                    RejectReason::Other(r) => {
                        validate_text("reason", r)?;
                        r.clone()
                    }
                };
                (TransferStatus::Rejected, Some(text))
            }
        };
        if let TransferAction::Reject { reason } = action {
            if *reason == RejectReason::AtCapacity {
                let mut f = self.facility(&t.to)?.clone();
                let declaration =
                    CapacityDeclaration { capacity: Capacity::No, at_ms: now, by: actor.id.clone() };
                f.capacity.insert(t.service.clone(), declaration);
                self.put_facility(f);
            }
            let from_level = self.facility(&t.from)?.level;
            let direction = t.direction;
            let fits = move |l| if direction == Direction::Down { l < from_level } else { l > from_level };
            t.suggestion = self.nearest_with_capacity(&t.service, &t.to, fits, &[&t.to, &t.from]);
            t.reject_reason = Some(reason.clone());
        }
        t.status = status;
        t.history.push(TransferEvent { at_ms: now, actor: actor.clone(), status, reason: reason.clone() });
        let case = self.case(&t.case)?;
        let audit = AuditRecord::new(format!("transfer.{rule}"), AuditAction::U)
            .for_case(case)
            .object(id)
            .detail(reason);
        let outcome = Outcome::Transfer { transfer_id: id.clone(), status, suggestion: t.suggestion.clone() };
        self.put_transfer(t);
        self.audit(now, actor, audit);
        Ok(outcome)
    }

    /// Where the patient is now: the receiver of the last completed transfer.
    fn patient_location(&self, transfers: &[TransferId]) -> Option<FacilityId> {
        transfers
            .iter()
            .rev()
            .filter_map(|t| self.transfers.get(t))
            .find(|t| t.status == TransferStatus::Completed)
            .map(|t| t.to.clone())
    }
}
