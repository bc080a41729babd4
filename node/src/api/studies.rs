//! Study manifests: which studies a case carries, their instances and hashes, which nodes hold
//! verified copies, and the explicit commit that marks a study complete.

use super::access::{authorize_case, authorize_study, authorize_study_read};
use super::auth::Authenticated;
use super::extract::ReadBarrier;
use super::{apply, ApiError, AppState};
use crate::imaging::deidentify::deidentified_bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use yilian_consensus::cluster::Member;
use yilian_dicom::Digest;
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

/// `GET /v1/upload-target`: where this node takes `yilian upload` connections (its node id,
/// which its certificate names, and its QUIC address). Any authenticated user.
pub async fn upload_target(State(app): State<AppState>, _auth: Authenticated) -> Json<Member> {
    let info = app.node.info();
    Json(Member {
        node_id: app.node.id(),
        raft_addr: info.raft_addr.clone(),
        api_addr: info.api_addr.clone(),
    })
}

/// Query of the instance export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Apply the PS3.15 Basic Profile (UIDs replaced with the region key) before sending.
    #[serde(default)]
    deidentify: bool,
}

/// `GET /v1/studies/{uid}/instances/{sop}/file[?deidentify=true]`: one instance as a Part-10
/// file (`application/dicom`), de-identified on request (export for teaching). The read is
/// authorized against the study's case and audited.
pub async fn export_instance(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((uid, sop)): Path<(String, String)>,
    Query(q): Query<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (case, sha) = {
        let state = app.node.state().read();
        let study = state.region.study(&uid)?;
        let instance = study
            .instances
            .get(&sop)
            .ok_or_else(|| ApiError::not_found(format!("study {uid} has no instance {sop}")))?;
        (study.case.clone(), instance.record.sha256.clone())
    };
    authorize_study(&app, &auth, &case, &uid, CaseOperation::Read).await?;
    let digest: Digest = sha.parse().map_err(|e| ApiError::internal(format!("manifest digest: {e}")))?;
    if !app.imaging.store().contains(&digest) {
        return Err(ApiError::not_found(format!(
            "instance {sop} is not stored on this node yet; ask a node that holds the study \
             (see `yilian study show {uid}`)"
        )));
    }
    let bytes = if q.deidentify {
        deidentified_bytes(&app.imaging, digest).await.map_err(|e| ApiError::internal(e.to_string()))?
    } else {
        let path = app.imaging.store().path_of(&digest);
        tokio::fs::read(&path)
            .await
            .map_err(|e| ApiError::internal(format!("reading the stored copy: {e}")))?
    };
    Ok(([(header::CONTENT_TYPE, "application/dicom")], bytes))
}
