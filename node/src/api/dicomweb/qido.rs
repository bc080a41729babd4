//! QIDO-RS: search studies, series and instances in this node's catalog.

use super::body::dicom_json;
use super::{blocking, check_uid, ApiError, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use yilian_dicom::web::qido::{QidoQuery, QueryLevel};

/// Which catalog records a search looks at.
enum Scope {
    All,
    Study(String),
    Series(String, String),
}

async fn search(
    app: AppState,
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
    let results = blocking(move || {
        let catalog = app.imaging.catalog();
        let records = match scope {
            Scope::All => catalog.all()?,
            Scope::Study(s) => catalog.study(&s)?,
            Scope::Series(s, se) => catalog.series(&s, &se)?,
        };
        Ok(query.run(&records))
    })
    .await?;
    Ok(dicom_json(StatusCode::OK, &serde_json::Value::Array(results)))
}

/// `GET /dicomweb/studies`
pub async fn studies(State(app): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    search(app, QueryLevel::Study, Scope::All, q).await
}

/// `GET /dicomweb/series`
pub async fn all_series(State(app): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    search(app, QueryLevel::Series, Scope::All, q).await
}

/// `GET /dicomweb/instances`
pub async fn all_instances(State(app): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    search(app, QueryLevel::Instance, Scope::All, q).await
}

/// `GET /dicomweb/studies/{study}/series`
pub async fn study_series(
    State(app): State<AppState>,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, QueryLevel::Series, Scope::Study(study), q).await
}

/// `GET /dicomweb/studies/{study}/instances`
pub async fn study_instances(
    State(app): State<AppState>,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, QueryLevel::Instance, Scope::Study(study), q).await
}

/// `GET /dicomweb/studies/{study}/series/{series}/instances`
pub async fn series_instances(
    State(app): State<AppState>,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    search(app, QueryLevel::Instance, Scope::Series(study, series), q).await
}
