//! Two-way referral of patients: requesting, listing and acting on transfers.

use super::access::{authorize_case, readable_cases};
use super::auth::Authenticated;
use super::extract::{Body, OptionalBody, ReadBarrier};
use super::{apply_audited, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use yilian_referral::transfer::RejectReason;
use yilian_referral::{
    Case, CaseId, CaseOperation, Change, FacilityId, Outcome, Transfer, TransferAction, TransferId,
    TransferRequest,
};

/// `POST /v1/transfers`: request an up- or down-referral of the patient. A down-referral to a
/// facility without declared capacity is refused with the nearest one that has it.
pub async fn request(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(r): Body<TransferRequest>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let case = r.case.clone();
    let change = Change::RequestTransfer(r);
    Ok((
        StatusCode::CREATED,
        Json(apply_audited(&app, &auth, change, Some(&case), "transfer.write-denied").await?),
    ))
}

/// Filters of `GET /v1/transfers`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    case: Option<CaseId>,
    facility: Option<FacilityId>,
}

/// `GET /v1/transfers?case=&facility=` (facility matches sender or receiver): transfers of the
/// cases the caller may see, each case's read audited.
pub async fn list(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Transfer>>, ApiError> {
    let Query(q) = q?;
    let (transfers, cases): (Vec<Transfer>, Vec<Case>) = {
        let state = app.node.state().read();
        let transfers: Vec<Transfer> = state
            .region
            .transfers()
            .filter(|t| q.case.as_ref().is_none_or(|c| t.case == *c))
            .filter(|t| q.facility.as_ref().is_none_or(|f| t.from == *f || t.to == *f))
            .cloned()
            .collect();
        let mut ids: Vec<&CaseId> = transfers.iter().map(|t| &t.case).collect();
        ids.sort();
        ids.dedup();
        let cases = ids.into_iter().filter_map(|id| state.region.case(id).ok().cloned()).collect();
        (transfers, cases)
    };
    let visible: Vec<CaseId> =
        readable_cases(&app, &auth, cases, "transfer.read").await?.into_iter().map(|c| c.id).collect();
    Ok(Json(transfers.into_iter().filter(|t| visible.contains(&t.case)).collect()))
}

/// `GET /v1/transfers/{id}` (an audited read of its case)
pub async fn show(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, ApiError> {
    let transfer = app.node.state().read().region.transfer(&TransferId(id))?.clone();
    authorize_case(&app, &auth, &transfer.case, CaseOperation::Read).await?;
    Ok(Json(transfer))
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
    auth: Authenticated,
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
    let case = app.node.state().read().region.transfer(&TransferId(id.clone()))?.case.clone();
    let change = Change::Transfer { transfer: TransferId(id), action };
    Ok(Json(apply_audited(&app, &auth, change, Some(&case), "transfer.write-denied").await?))
}
