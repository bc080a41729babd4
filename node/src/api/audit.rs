//! Reading the audit trail.

use super::auth::Authenticated;
use super::extract::ReadBarrier;
use super::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde::Serialize;
use yilian_referral::{verify_chain, AuditEvent, CaseId, Role};

/// Most events answered at once.
const MAX_EVENTS: usize = 1000;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    case: Option<CaseId>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/audit?case=&after=<seq>&limit=`: events in sequence order.
pub async fn list(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    auth.require(&[Role::Auditor, Role::Admin], "the audit trail")?;
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(MAX_EVENTS).min(MAX_EVENTS);
    let state = app.node.state().read();
    let events = state
        .region
        .audit_events()
        .filter(|e| q.after.is_none_or(|a| e.seq > a))
        .filter(|e| q.case.as_ref().is_none_or(|c| e.case.as_ref() == Some(c)))
        .take(limit)
        .cloned()
        .collect();
    Ok(Json(events))
}

/// Answer of `GET /v1/audit/verify`.
#[derive(Debug, Serialize)]
pub struct Verified {
    /// Events checked, from the first.
    pub verified: u64,
    /// Hash of the newest event (compare it across nodes).
    pub head: Option<String>,
}

/// `GET /v1/audit/verify`: check this node's whole hash chain; 409 naming the first bad event.
pub async fn verify(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
) -> Result<Json<Verified>, ApiError> {
    auth.require(&[Role::Auditor, Role::Admin, Role::Ops], "verifying the audit trail")?;
    let state = app.node.state().read();
    let verified =
        verify_chain(state.region.audit_events()).map_err(|e| ApiError::conflict(e.to_string()))?;
    let head = state.region.audit_events().last().map(|e| e.hash.clone());
    Ok(Json(Verified { verified, head }))
}
