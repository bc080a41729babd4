//! Access decisions over the region's state, break-glass grants and the audit of reads.

use super::{validate_id, validate_optional_text, validate_text, AuditRecord, EntityKey, Region};
use crate::access::{
    self, AccessFacts, Basis, BreakGlassGrant, CaseOperation, Denied, MAX_BREAK_GLASS_MINUTES,
};
use crate::actor::{Actor, Role};
use crate::audit::{AccessRecord, AuditAction};
use crate::case::{Case, CaseId};
use crate::command::Outcome;
use crate::error::DomainError;

/// Most access records in one command.
pub const MAX_ACCESS_RECORDS: usize = 10_000;

/// Why a case cannot be used: it does not exist, or the rules refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such case.
    #[error(transparent)]
    NotFound(DomainError),
    /// Refused by the access rules.
    #[error(transparent)]
    Denied(Denied),
}

impl Region {
    /// The facts access to `case` depends on, for `actor`, at `now_ms`.
    pub fn access_facts(&self, actor: &Actor, case: &Case, now_ms: u64) -> AccessFacts {
        let specialist_grace_ms = self.facilities.get(&case.origin).map_or_else(
            || self.policy("").specialist_grace_ms(),
            |f| self.policy(&f.region).specialist_grace_ms(),
        );
        let transfer_facilities = case
            .transfers
            .iter()
            .filter_map(|t| self.transfers.get(t))
            .flat_map(|t| [t.from.clone(), t.to.clone()])
            .collect();
        let break_glass_until_ms = self
            .break_glass
            .values()
            .filter(|g| g.case == case.id && g.opens_for(actor, now_ms))
            .map(|g| g.until_ms)
            .max();
        AccessFacts { specialist_grace_ms, transfer_facilities, break_glass_until_ms }
    }

    /// May `actor` use `operation` on case `id` at `now_ms`? The case and the basis, or why not.
    pub fn authorize_case(
        &self,
        actor: &Actor,
        id: &CaseId,
        operation: CaseOperation,
        now_ms: u64,
    ) -> Result<(&Case, Basis), AccessError> {
        let case = self.case(id).map_err(AccessError::NotFound)?;
        let facts = self.access_facts(actor, case, now_ms);
        access::authorize(actor, case, &facts, operation, now_ms)
            .map(|b| (case, b))
            .map_err(AccessError::Denied)
    }

    /// Every break-glass grant, oldest first.
    pub fn break_glass_grants(&self) -> impl Iterator<Item = &BreakGlassGrant> {
        self.break_glass.values()
    }

    pub(super) fn break_glass(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &CaseId,
        reason: &str,
        minutes: u32,
    ) -> Result<Outcome, DomainError> {
        access::may_break_glass(actor)
            .map_err(|why| DomainError::not_allowed("clinicians-break-glass", why))?;
        validate_text("reason", reason).map_err(|_| {
            DomainError::invalid("reason", "break-glass needs a reason: say why the patient needs you now")
        })?;
        if minutes == 0 || minutes > MAX_BREAK_GLASS_MINUTES {
            return Err(DomainError::invalid(
                "minutes",
                format!("must be 1 to {MAX_BREAK_GLASS_MINUTES}; ask again when it runs out"),
            ));
        }
        let case = self.case(id)?.clone();
        self.counters.break_glass += 1;
        let grant = BreakGlassGrant {
            id: self.counters.break_glass,
            case: id.clone(),
            actor: actor.clone(),
            reason: reason.to_owned(),
            from_ms: now,
            until_ms: now + u64::from(minutes) * 60_000,
            ended_audit_seq: None,
        };
        let (gid, until_ms) = (grant.id, grant.until_ms);
        self.touched.push(EntityKey::BreakGlass(gid));
        self.break_glass.insert(gid, grant);
        let mut record = AuditRecord::new("case.break-glass-start", AuditAction::E)
            .for_case(&case)
            .object(format!("break-glass/{gid}"))
            .detail(Some(format!("{reason} (for {minutes} min)")));
        record.purpose = Some("ETREAT".into());
        self.audit(now, actor, record);
        Ok(Outcome::BreakGlass { grant: gid, until_ms })
    }

    /// Commit the end of every grant whose time is up; returns how many ended.
    pub(super) fn end_break_glass(&mut self, now: u64) -> u32 {
        let due: Vec<u64> = self
            .break_glass
            .values()
            .filter(|g| g.ended_audit_seq.is_none() && g.until_ms <= now)
            .map(|g| g.id)
            .collect();
        for gid in &due {
            let Some(mut grant) = self.break_glass.get(gid).cloned() else { continue };
            let mut record = AuditRecord::new("case.break-glass-end", AuditAction::E)
                .object(format!("break-glass/{gid}"))
                .detail(Some(format!("time is up; opened by {}", grant.actor)));
            if let Ok(case) = self.case(&grant.case) {
                record = record.for_case(&case.clone());
            }
            let seq = self.audit(now, &Actor::system(), record);
            grant.ended_audit_seq = Some(seq);
            self.touched.push(EntityKey::BreakGlass(*gid));
            self.break_glass.insert(*gid, grant);
        }
        u32::try_from(due.len()).unwrap_or(u32::MAX)
    }

    pub(super) fn record_access(
        &mut self,
        now: u64,
        actor: &Actor,
        records: &[AccessRecord],
    ) -> Result<Outcome, DomainError> {
        if actor.role != Role::System {
            return Err(DomainError::not_allowed(
                "nodes-record-access",
                "accesses are recorded by the nodes only",
            ));
        }
        if records.is_empty() || records.len() > MAX_ACCESS_RECORDS {
            return Err(DomainError::invalid("records", format!("give 1 to {MAX_ACCESS_RECORDS} records")));
        }
        for r in records {
            validate_id("event_type", &r.event_type)?;
            validate_id("actor.id", &r.actor.id)?;
            for (field, value) in
                [("study", &r.study), ("object", &r.object), ("source", &r.source), ("purpose", &r.purpose)]
            {
                if let Some(v) = value {
                    validate_id(field, v)?;
                }
            }
            validate_optional_text("detail", r.detail.as_deref())?;
        }
        let mut last_seq = 0;
        for r in records {
            let mut record = AuditRecord::new(r.event_type.clone(), r.action);
            if let Some(case) = r.case.as_ref().and_then(|c| self.cases.get(c)) {
                record = record.for_case(&case.clone());
            } else {
                record.case = r.case.clone();
            }
            record.object = r.object.clone();
            record.detail = r.detail.clone();
            record.outcome = r.outcome;
            record.study = r.study.clone();
            record.source = r.source.clone();
            record.purpose = r.purpose.clone();
            last_seq = self.audit(now, &r.actor, record);
        }
        Ok(Outcome::Recorded { last_seq })
    }
}
