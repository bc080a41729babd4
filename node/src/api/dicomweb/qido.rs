//! QIDO-RS: search studies, series and instances in this node's catalog. Only studies the
//! caller may read are searched, and each study answered is audited as read.

use super::body::dicom_json;
use super::{blocking, check_uid, ApiError, AppState};
use crate::api::access::{audit_study_reads, readable_studies};
use crate::api::auth::Authenticated;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeSet;
use yilian_dicom::web::qido::{QidoQuery, QueryLevel};

/// Which catalog records a search looks at.
enum Scope {
    All,
    Study(String),
    Series(String, String),
}

/// DICOM JSON key of Study Instance UID, present in every QIDO answer.
const STUDY_INSTANCE_UID: &str = "0020000D";

async fn search(
    app: AppState,
    auth: Authenticated,
    level: QueryLevel,
    scope: Scope,
    raw: Option<String>,
) -> Result<Response, ApiError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    match &scope {
        Scope::All => {}
        Scope::Study(s) => check_uid("study", s)?,
        Scope::Series(s, se) => {
            check_uid("study", s)?;
            check_uid("series", se)?;
        }
    }
    let query = QidoQuery::parse(level, &params)?;
    if !query.ignored.is_empty() {
        tracing::debug!(ignored = ?query.ignored, "QIDO keys the catalog does not keep were ignored");
    }
    let catalog_app = app.clone();
    let records = blocking(move || {
        let catalog = catalog_app.imaging.catalog();
        Ok(match scope {
            Scope::All => catalog.all()?,
            Scope::Study(s) => catalog.study(&s)?,
            Scope::Series(s, se) => catalog.series(&s, &se)?,
        })
    })
    .await?;
    let studies: BTreeSet<String> = records.iter().map(|r| r.study_instance_uid.clone()).collect();
    let readable = readable_studies(&app, &auth, studies, "study.search").await?;
    let records: Vec<_> =
        records.into_iter().filter(|r| readable.contains_key(&r.study_instance_uid)).collect();
    let results = query.run(&records);
    let answered: BTreeSet<&str> =
        results.iter().filter_map(|r| r.get(STUDY_INSTANCE_UID)?.get("Value")?.get(0)?.as_str()).collect();
    audit_study_reads(
        &app,
        &auth,
        "study.search",
        readable.iter().filter(|(uid, _)| answered.contains(uid.as_str())),
    )
    .await?;
    Ok(dicom_json(StatusCode::OK, &serde_json::Value::Array(results)))
}

/// `GET /dicomweb/studies`
pub async fn studies(
    State(app): State<AppState>,
    auth: Authenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Study, Scope::All, q).await
}

/// `GET /dicomweb/series`
pub async fn all_series(
    State(app): State<AppState>,
    auth: Authenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Series, Scope::All, q).await
}

/// `GET /dicomweb/instances`
pub async fn all_instances(
    State(app): State<AppState>,
    auth: Authenticated,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Instance, Scope::All, q).await
}

/// `GET /dicomweb/studies/{study}/series`
pub async fn study_series(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Series, Scope::Study(study), q).await
}

/// `GET /dicomweb/studies/{study}/instances`
pub async fn study_instances(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Instance, Scope::Study(study), q).await
}

/// `GET /dicomweb/studies/{study}/series/{series}/instances`
pub async fn series_instances(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, auth, QueryLevel::Instance, Scope::Series(study, series), q).await
}
