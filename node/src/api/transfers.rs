//! Two-way referral of patients: requesting, listing and acting on transfers.

use super::auth::Authenticated;
use super::extract::{Body, OptionalBody, ReadBarrier};
use super::{apply, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use yilian_referral::transfer::RejectReason;
use yilian_referral::{
    CaseId, Change, FacilityId, Outcome, Transfer, TransferAction, TransferId, TransferRequest,
};

/// `POST /v1/transfers`: request an up- or down-referral of the patient. A down-referral to a
/// facility without declared capacity is refused with the nearest one that has it.
pub async fn request(
    State(app): State<AppState>,
    Authenticated { actor, .. }: Authenticated,
    Body(r): Body<TransferRequest>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    Ok((StatusCode::CREATED, Json(apply(&app, actor, Change::RequestTransfer(r)).await?)))
}

/// Filters of `GET /v1/transfers`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    case: Option<CaseId>,
    facility: Option<FacilityId>,
}

/// `GET /v1/transfers?case=&facility=` (facility matches sender or receiver)
pub async fn list(
    State(app): State<AppState>,
    _: ReadBarrier,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Transfer>>, ApiError> {
    let Query(q) = q?;
    let state = app.node.state().read();
    let transfers = state
        .region
        .transfers()
        .filter(|t| q.case.as_ref().is_none_or(|c| t.case == *c))
        .filter(|t| q.facility.as_ref().is_none_or(|f| t.from == *f || t.to == *f))
        .cloned()
        .collect();
    Ok(Json(transfers))
}

/// `GET /v1/transfers/{id}`
pub async fn show(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, ApiError> {
    Ok(Json(app.node.state().read().region.transfer(&TransferId(id))?.clone()))
}

/// Body of `POST /v1/transfers/{id}/{action}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// For `reject`: the receiver is at capacity.
    #[serde(default)]
    pub at_capacity: bool,
    /// Why (for `cancel`, and `reject` when not at capacity).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/transfers/{id}/{accept|reject|cancel|complete}`
pub async fn act(
    State(app): State<AppState>,
    Authenticated { actor, .. }: Authenticated,
    Path((id, action)): Path<(String, String)>,
    OptionalBody(b): OptionalBody<ActBody>,
) -> Result<Json<Outcome>, ApiError> {
    let needs_reason = |what: &str| ApiError::bad_request(format!("`{what}` needs `reason`"));
    let action =
        match action.as_str() {
            "accept" => TransferAction::Accept,
            "complete" => TransferAction::Complete,
            "cancel" => TransferAction::Cancel { reason: b.reason.ok_or_else(|| needs_reason("cancel"))? },
            "reject" if b.at_capacity => TransferAction::Reject { reason: RejectReason::AtCapacity },
            "reject" => TransferAction::Reject {
                reason: RejectReason::Other(b.reason.ok_or_else(|| {
                    ApiError::bad_request("`reject` needs `at_capacity: true` or a `reason`")
                })?),
            },
            other => {
                return Err(ApiError::not_found(format!(
                    "unknown transfer action `{other}`; use accept, reject, cancel or complete"
                )))
            }
        };
    let change = Change::Transfer { transfer: TransferId(id), action };
    Ok(Json(apply(&app, actor, change).await?))
}
