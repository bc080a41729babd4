//! Study manifests: which studies a case carries, their instances and hashes, which nodes hold
//! verified copies, and the explicit commit that marks a study complete.

use super::access::{authorize_case, authorize_study_read};
use super::auth::Authenticated;
use super::extract::ReadBarrier;
use super::{apply, ApiError, AppState};
use axum::extract::{Path, State};
use axum::Json;
use yilian_referral::{CaseId, CaseOperation, Change, Outcome, StudyManifest};

/// `GET /v1/cases/{id}/studies`: the studies attached to a case.
pub async fn of_case(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Vec<StudyManifest>>, ApiError> {
    let case = CaseId(id);
    authorize_case(&app, &auth, &case, CaseOperation::Read).await?;
    Ok(Json(app.node.state().read().region.studies_of(&case).cloned().collect()))
}

/// `GET /v1/studies/{uid}`: one study's manifest.
pub async fn show(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    Path(uid): Path<String>,
) -> Result<Json<StudyManifest>, ApiError> {
    authorize_study_read(&app, &auth, &uid).await?;
    Ok(Json(app.node.state().read().region.study(&uid)?.clone()))
}

/// `POST /v1/studies/{uid}/commit`: the sender declares the study complete; no instance can be
/// added afterwards.
pub async fn commit(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(uid): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    Ok(Json(apply(&app, &auth, Change::CommitStudy { study_uid: uid }).await?))
}
