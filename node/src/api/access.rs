//! Access follows the referral, at the API edge: every read of case data is checked with the
//! domain's rules ([`yilian_referral::access`]) and written to the audit trail through Raft
//! before the data is answered; every refusal is a 403 with the reason, audited too.
//!
//! DICOMweb and image endpoints call [`authorize_case`] (or [`authorize_study`]) the same way.

use super::auth::Authenticated;
use super::{ApiError, ApiState};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use yilian_consensus::cluster::now_ms;
use yilian_consensus::{ClusterError, ClusterNode};
use yilian_referral::region::MAX_ACCESS_RECORDS;
use yilian_referral::{
    AccessError, AccessRecord, Actor, AuditAction, AuditOutcome, Basis, Case, CaseId, CaseOperation, Change,
    Command, Outcome, Role,
};

/// Records to write, and where to say whether they were committed.
type Job = (Vec<AccessRecord>, oneshot::Sender<Result<(), ApiError>>);

/// Requests queued for the audit writer before callers wait.
const QUEUE: usize = 1024;

/// How long access records whose outcome is unknown are sent again.
const RETRY_UNKNOWN_FOR: Duration = Duration::from_secs(10);

/// Pause before sending them again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Writes access records to the replicated audit trail, batching concurrent requests into one
/// Raft command.
#[derive(Clone)]
pub struct AccessAuditor {
    tx: mpsc::Sender<Job>,
}

impl AccessAuditor {
    /// Start the writer for `node`.
    pub fn start(node: std::sync::Arc<ClusterNode>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(node, rx));
        Self { tx }
    }

    /// Append `records` to the audit trail and wait until they are committed.
    pub async fn record(&self, records: Vec<AccessRecord>) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send((records, done))
            .await
            .map_err(|_| ApiError::unavailable("the node is shutting down"))?;
        wait.await.map_err(|_| ApiError::unavailable("the node is shutting down"))?
    }
}

async fn write_batches(node: std::sync::Arc<ClusterNode>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut count = batch[0].0.len();
        while count < MAX_ACCESS_RECORDS {
            match rx.try_recv() {
                Ok(next) if count + next.0.len() <= MAX_ACCESS_RECORDS => {
                    count += next.0.len();
                    batch.push(next);
                }
                Ok(next) => {
                    // Too big to join this batch: write it on its own next.
                    write(&node, vec![next]).await;
                    break;
                }
                Err(_) => break,
            }
        }
        write(&node, batch).await;
    }
}

async fn write(node: &ClusterNode, batch: Vec<Job>) {
    let records: Vec<AccessRecord> = batch.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
    let command = Command::new(Actor::system(), Change::RecordAccess(records));
    let answer = match write_until_known(node, command).await {
        Ok(Ok(Outcome::Recorded { .. })) => Ok(()),
        Ok(Ok(other)) => Err(format!("unexpected answer {other:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &answer {
        tracing::warn!(error = %e, "could not write access records to the audit trail; the reads are refused");
    }
    for (_, done) in batch {
        let _ = done.send(answer.clone().map_err(|e| {
            ApiError::unavailable(format!(
                "the access could not be audited, so it is refused ({e}); try again"
            ))
        }));
    }
}

/// Write access records, sending them again while the outcome is unknown (a forward cut off by a
/// lost connection, e.g. when a partition heals): an access recorded twice is harmless, a read
/// refused because its record's fate is unknown is not.
async fn write_until_known(
    node: &ClusterNode,
    command: Command,
) -> Result<Result<Outcome, yilian_referral::DomainError>, ClusterError> {
    let deadline = Instant::now() + RETRY_UNKNOWN_FOR;
    loop {
        match node.write(command.clone()).await {
            Err(ClusterError::OutcomeUnknown(reason)) if Instant::now() < deadline => {
                tracing::info!(%reason, "access records' outcome unknown; sending them again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            answer => return answer,
        }
    }
}

/// An access record by `auth` for `case` (its patient key is added by the domain).
pub fn record(
    auth: &Authenticated,
    event_type: &str,
    action: AuditAction,
    outcome: AuditOutcome,
    case: Option<&CaseId>,
    basis: Option<Basis>,
    detail: Option<String>,
) -> AccessRecord {
    let purpose = auth.purpose.clone().or_else(|| basis.map(|b| b.purpose_of_use().to_owned()));
    AccessRecord {
        actor: auth.actor.clone(),
        event_type: event_type.to_owned(),
        action,
        outcome,
        case: case.cloned(),
        study: None,
        object: None,
        source: auth.source.map(|s| s.to_string()),
        purpose,
        detail: detail.or_else(|| basis.map(|b| b.to_string())),
    }
}

/// Check that `auth` may use `operation` on case `id`; a read is audited before the case is
/// returned, a refusal is audited and answered 403 with the reason.
pub async fn authorize_case(
    app: &ApiState,
    auth: &Authenticated,
    id: &CaseId,
    operation: CaseOperation,
) -> Result<Case, ApiError> {
    authorize(app, auth, id, operation, None).await
}

/// [`authorize_case`] for a study of case `id`: the study UID goes into the audit record.
pub async fn authorize_study(
    app: &ApiState,
    auth: &Authenticated,
    id: &CaseId,
    study_uid: &str,
    operation: CaseOperation,
) -> Result<Case, ApiError> {
    authorize(app, auth, id, operation, Some(study_uid)).await
}

async fn authorize(
    app: &ApiState,
    auth: &Authenticated,
    id: &CaseId,
    operation: CaseOperation,
    study: Option<&str>,
) -> Result<Case, ApiError> {
    let decision = {
        let state = app.node.state().read();
        state.region.authorize_case(&auth.actor, id, operation, now_ms()).map(|(c, b)| (c.clone(), b))
    };
    let (action, kind) = match operation {
        CaseOperation::Read => (AuditAction::R, "read"),
        CaseOperation::Write => (AuditAction::U, "write"),
    };
    match decision {
        Ok((case, basis)) => {
            if operation == CaseOperation::Read {
                let mut r =
                    record(auth, "case.read", action, AuditOutcome::Success, Some(id), Some(basis), None);
                r.study = study.map(str::to_owned);
                app.access_audit.record(vec![r]).await?;
            }
            Ok(case)
        }
        Err(AccessError::NotFound(e)) => Err(e.into()),
        Err(AccessError::Denied(denied)) => {
            let mut r = record(
                auth,
                &format!("case.{kind}-denied"),
                action,
                AuditOutcome::Denied,
                Some(id),
                None,
                Some(denied.reason.clone()),
            );
            r.study = study.map(str::to_owned);
            app.access_audit.record(vec![r]).await?;
            Err(ApiError::forbidden(denied.to_string()))
        }
    }
}

/// The cases among `cases` that `auth` may read, with their reads audited (one event each).
/// Roles that never see case data are refused with 403, audited.
pub async fn readable_cases(
    app: &ApiState,
    auth: &Authenticated,
    cases: Vec<Case>,
    event_type: &str,
) -> Result<Vec<Case>, ApiError> {
    refuse_non_clinical(app, auth, event_type).await?;
    let now = now_ms();
    let allowed: Vec<(Case, Basis)> = {
        let state = app.node.state().read();
        cases
            .into_iter()
            .filter_map(|c| {
                let facts = state.region.access_facts(&auth.actor, &c, now);
                yilian_referral::access::may_read_case(&auth.actor, &c, &facts, now).ok().map(|b| (c, b))
            })
            .collect()
    };
    let records = allowed
        .iter()
        .map(|(c, b)| {
            record(auth, event_type, AuditAction::R, AuditOutcome::Success, Some(&c.id), Some(*b), None)
        })
        .collect();
    app.access_audit.record(records).await?;
    Ok(allowed.into_iter().map(|(c, _)| c).collect())
}

/// Refuse (403, audited) callers whose role never sees case data.
pub async fn refuse_non_clinical(
    app: &ApiState,
    auth: &Authenticated,
    event_type: &str,
) -> Result<(), ApiError> {
    if matches!(auth.role(), Role::ClinicStaff | Role::Specialist) {
        return Ok(());
    }
    let reason = match auth.role() {
        Role::Ops => "ops see cluster and registry data but no patient data",
        Role::Auditor => "auditors see the audit trail, not case data",
        Role::Bureau => "the bureau sees aggregate figures only (GET /v1/figures)",
        _ => "admins manage users and tokens, not case data",
    };
    let r = record(
        auth,
        &format!("{event_type}-denied"),
        AuditAction::R,
        AuditOutcome::Denied,
        None,
        None,
        Some(reason.to_owned()),
    );
    app.access_audit.record(vec![r]).await?;
    Err(ApiError::forbidden(format!("case data denied: {reason}")))
}

/// Audit a write refused by the domain's rules (the refusal itself is answered by the caller).
pub async fn audit_refused_write(
    app: &ApiState,
    auth: &Authenticated,
    case: Option<&CaseId>,
    event_type: &str,
    why: &str,
) {
    let r = record(auth, event_type, AuditAction::U, AuditOutcome::Denied, case, None, Some(why.to_owned()));
    if let Err(e) = app.access_audit.record(vec![r]).await {
        tracing::warn!(error = %e.message(), "could not audit a refused write");
    }
}

/// Check that `auth` may read study `study_uid`: the study's case decides, as for
/// [`authorize_case`]; the read is audited with the study UID, a refusal is a 403, audited.
pub async fn authorize_study_read(
    app: &ApiState,
    auth: &Authenticated,
    study_uid: &str,
) -> Result<(), ApiError> {
    let case = app.node.state().read().region.study(study_uid)?.case.clone();
    authorize_study(app, auth, &case, study_uid, CaseOperation::Read).await.map(|_| ())
}

/// The studies among `uids` that `auth` may read, each with its case and the basis of access;
/// nothing is audited yet (see [`audit_study_reads`]). Roles that never see case data are
/// refused with 403, audited.
pub async fn readable_studies(
    app: &ApiState,
    auth: &Authenticated,
    uids: impl IntoIterator<Item = String>,
    event_type: &str,
) -> Result<BTreeMap<String, (CaseId, Basis)>, ApiError> {
    refuse_non_clinical(app, auth, event_type).await?;
    let now = now_ms();
    let state = app.node.state().read();
    Ok(uids
        .into_iter()
        .filter_map(|uid| {
            let case = state.region.case(&state.region.study(&uid).ok()?.case).ok()?;
            let facts = state.region.access_facts(&auth.actor, case, now);
            let basis = yilian_referral::access::may_read_case(&auth.actor, case, &facts, now).ok()?;
            Some((uid, (case.id.clone(), basis)))
        })
        .collect())
}

/// Audit that `auth` read each of `studies` (study UID, its case, the basis of access).
pub async fn audit_study_reads<'a>(
    app: &ApiState,
    auth: &Authenticated,
    event_type: &str,
    studies: impl IntoIterator<Item = (&'a String, &'a (CaseId, Basis))>,
) -> Result<(), ApiError> {
    let records = studies
        .into_iter()
        .map(|(uid, (case, basis))| {
            let mut r = record(
                auth,
                event_type,
                AuditAction::R,
                AuditOutcome::Success,
                Some(case),
                Some(*basis),
                None,
            );
            r.study = Some(uid.clone());
            r
        })
        .collect();
    app.access_audit.record(records).await
}
