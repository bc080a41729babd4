//! Deadline consequences, committed by the leader as `Tick` commands so every replica agrees.

use super::Region;
use crate::actor::{Actor, Role};
use crate::case::{Case, OfferOutcome, SlaBreach, SlaClock};
use crate::command::Outcome;
use crate::error::DomainError;

/// Most consequences fired for one case in one tick (a case has at most three clocks).
const MAX_FIRES_PER_CASE: usize = 4;

impl Region {
    pub(super) fn tick(&mut self, now: u64, actor: &Actor) -> Result<Outcome, DomainError> {
        if actor.role != Role::System {
            return Err(DomainError::not_allowed(
                "system-evaluates-deadlines",
                "deadlines are evaluated by the cluster leader only",
            ));
        }
        let mut consequences = self.end_break_glass(now);
        for id in self.index.due(now) {
            for _ in 0..MAX_FIRES_PER_CASE {
                let Some(case) = self.cases.get(&id).cloned() else { break };
                if case.next_deadline().is_none_or(|t| t > now) {
                    break;
                }
                self.fire_deadline(now, case);
                consequences += 1;
            }
        }
        Ok(Outcome::Tick { consequences })
    }

    /// Commit the consequence of the earliest passed deadline of `case`.
    fn fire_deadline(&mut self, now: u64, mut case: Case) {
        let system = Actor::system();
        let accept_running = case.status.is_offer_stage()
            && case.sla.accepted_at_ms.is_none()
            && !case.sla.breached(SlaClock::Accept);
        if accept_running && case.sla.accept_due_ms <= now {
            let due = case.sla.accept_due_ms;
            case.sla.breaches.push(SlaBreach {
                round: case.sla.round,
                clock: SlaClock::Accept,
                due_ms: due,
                at_ms: now,
            });
            let next_step = case.routing.step + 1;
            let can_escalate = case.owner.is_some() && {
                let mut probe = case.clone();
                probe.owner = None;
                self.choose_reader(&probe, next_step).is_some()
            };
            let reason = if can_escalate {
                "not accepted in time; escalating to the next tier"
            } else {
                "not accepted in time; no higher tier can take it, ops alerted"
            };
            let status = case.status;
            self.record(now, &system, &mut case, "sla-accept-breach", status, Some(reason));
            let id = case.id.clone();
            self.put_case(case);
            if can_escalate {
                self.withdraw_offer_and_reroute(
                    now,
                    &system,
                    &id,
                    OfferOutcome::TimedOut,
                    "escalated-to-next-tier",
                    Some(next_step),
                );
            }
            return;
        }
        if case.status.is_offer_stage() && case.routing.offer_deadline_ms.is_some_and(|t| t <= now) {
            let id = case.id.clone();
            self.withdraw_offer_and_reroute(now, &system, &id, OfferOutcome::TimedOut, "offer-timeout", None);
            return;
        }
        if let Some(due) = case.sla.report_due_ms.filter(|t| *t <= now) {
            case.sla.breaches.push(SlaBreach {
                round: case.sla.round,
                clock: SlaClock::Report,
                due_ms: due,
                at_ms: now,
            });
            let status = case.status;
            let reason = "report not filed in time; ops alerted";
            self.record(now, &system, &mut case, "sla-report-breach", status, Some(reason));
            self.put_case(case);
        }
    }
}
