//! WADO-RS: instances as stored (multipart/related application/dicom), metadata as DICOM
//! JSON with bulk data URIs, frames (multipart/related application/octet-stream), bulk data,
//! and rendered frames (image/png).

use super::body::{dicom_json, multipart, Part};
use super::{accept, base_url, blocking, check_uid, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use yilian_dicom::pixel_location::PixelLocation;
use yilian_dicom::sop::EXPLICIT_VR_LITTLE_ENDIAN;
use yilian_dicom::web::metadata::PIXEL_DATA_PATH;
use yilian_dicom::web::negotiate::{self, FrameForm};
use yilian_dicom::web::render::{native_frame, render_png, Window};
use yilian_dicom::web::{frames, metadata, APPLICATION_DICOM, OCTET_STREAM};
use yilian_dicom::{CatalogRecord, WebError};

use crate::imaging::Imaging;

/// The instances a retrieval names, or a 404 saying none is stored here.
fn records(
    imaging: &Imaging,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
) -> Result<Vec<CatalogRecord>, ApiError> {
    check_uid("study", study)?;
    series.map(|s| check_uid("series", s)).transpose()?;
    instance.map(|i| check_uid("instance", i)).transpose()?;
    let catalog = imaging.catalog();
    let found = match (series, instance) {
        (Some(se), Some(i)) => catalog
            .instance(i)?
            .filter(|r| r.study_instance_uid == study && r.series_instance_uid == se)
            .into_iter()
            .collect(),
        (Some(se), None) => catalog.series(study, se)?,
        _ => catalog.study(study)?,
    };
    if found.is_empty() {
        let what = match (series, instance) {
            (Some(se), Some(i)) => format!("instance {i} of series {se} of study {study}"),
            (Some(se), None) => format!("series {se} of study {study}"),
            _ => format!("study {study}"),
        };
        return Err(ApiError::not_found(format!(
            "{what} is not stored on this node; search with QIDO-RS (GET /dicomweb/studies) for what is"
        )));
    }
    Ok(found)
}

fn instance_url(base: &str, r: &CatalogRecord) -> String {
    format!(
        "{base}/studies/{}/series/{}/instances/{}",
        r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid
    )
}

async fn retrieve(
    app: AppState,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let imaging = app.imaging.clone();
    let accept = accept(&headers);
    let parts = blocking(move || {
        let found = records(&imaging, &study, series.as_deref(), instance.as_deref())?;
        found
            .iter()
            .map(|r| {
                negotiate::instances(accept.as_deref(), &r.transfer_syntax_uid)?;
                let media = format!("{APPLICATION_DICOM}; transfer-syntax={}", r.transfer_syntax_uid);
                Ok((media, Part::File(imaging.path_of(r)?)))
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(multipart(APPLICATION_DICOM, parts))
}

/// `GET /dicomweb/studies/{study}`
pub async fn study(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, ApiError> {
    retrieve(app, headers, study, None, None).await
}

/// `GET /dicomweb/studies/{study}/series/{series}`
pub async fn series(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    retrieve(app, headers, study, Some(series), None).await
}

/// `GET /dicomweb/studies/{study}/series/{series}/instances/{instance}`
pub async fn instance(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    retrieve(app, headers, study, Some(series), Some(instance)).await
}

async fn metadata_of(
    app: AppState,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let imaging = app.imaging.clone();
    let base = base_url(&headers, &app.node.info().api_addr);
    let items = blocking(move || {
        let found = records(&imaging, &study, series.as_deref(), instance.as_deref())?;
        found
            .iter()
            .map(|r| Ok(metadata::instance_metadata(&imaging.path_of(r)?, r, &instance_url(&base, r))?))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(dicom_json(StatusCode::OK, &serde_json::Value::Array(items)))
}

/// `GET /dicomweb/studies/{study}/metadata`
pub async fn study_metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, ApiError> {
    metadata_of(app, headers, study, None, None).await
}

/// `GET /dicomweb/studies/{study}/series/{series}/metadata`
pub async fn series_metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    metadata_of(app, headers, study, Some(series), None).await
}

/// `GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata`
pub async fn instance_metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    metadata_of(app, headers, study, Some(series), Some(instance)).await
}

/// The one instance a frame, bulk data or rendering request names, and its stored file.
fn one(
    imaging: &Imaging,
    study: &str,
    series: &str,
    instance: &str,
) -> Result<(CatalogRecord, std::path::PathBuf), ApiError> {
    let record = records(imaging, study, Some(series), Some(instance))?.remove(0);
    let path = imaging.path_of(&record)?;
    Ok((record, path))
}

/// A frame list (`1,3,5`), each ≥ 1.
fn frame_list(text: &str) -> Result<Vec<u32>, ApiError> {
    text.split(',')
        .map(|f| f.trim().parse::<u32>().ok().filter(|n| *n >= 1))
        .collect::<Option<Vec<u32>>>()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "frame list {text:?} is not usable; give frame numbers from 1, comma-separated (e.g. 1,2)"
            ))
        })
}

/// The media type of a frame of `record`: raw octets tagged with the stored transfer syntax.
fn frame_media(record: &CatalogRecord) -> String {
    format!("{OCTET_STREAM}; transfer-syntax={}", record.transfer_syntax_uid)
}

/// `GET .../instances/{instance}/frames/{frames}`: as stored, or decompressed when the client
/// asks for uncompressed octet-stream frames of a compressed instance.
pub async fn frames(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let numbers = frame_list(&list)?;
    let imaging = app.imaging.clone();
    let accept = accept(&headers);
    let parts = blocking(move || {
        let (record, path) = one(&imaging, &study, &series, &instance)?;
        let encapsulated = matches!(record.pixel_data, Some(PixelLocation::Encapsulated { .. }));
        let form = negotiate::frames(accept.as_deref(), &record.transfer_syntax_uid, encapsulated)?;
        let root = match &form {
            FrameForm::AsStored { media } => media.split(';').next().unwrap_or(OCTET_STREAM).to_owned(),
            FrameForm::Native => OCTET_STREAM.to_owned(),
        };
        let parts = numbers
            .iter()
            .map(|n| match &form {
                FrameForm::AsStored { media } => {
                    Ok((media.clone(), Part::Bytes(frames::read_frame(&path, &record, *n)?)))
                }
                FrameForm::Native => Ok((
                    format!("{OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"),
                    Part::Bytes(native_frame(&path, &record, *n)?),
                )),
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok((root, parts))
    })
    .await?;
    Ok(multipart(&parts.0, parts.1))
}

/// `GET .../instances/{instance}/bulkdata/{path}`: Pixel Data as its frames, other values whole.
pub async fn bulkdata(
    State(app): State<AppState>,
    Path((study, series, instance, bulk_path)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let imaging = app.imaging.clone();
    let parts = blocking(move || {
        let (record, path) = one(&imaging, &study, &series, &instance)?;
        if bulk_path.trim_matches('/').eq_ignore_ascii_case(PIXEL_DATA_PATH) {
            return (1..=record.frames.max(1))
                .map(|n| Ok((frame_media(&record), Part::Bytes(frames::read_frame(&path, &record, n)?))))
                .collect::<Result<Vec<_>, ApiError>>();
        }
        let bytes = metadata::bulk_value(&path, bulk_path.trim_matches('/'))?;
        Ok(vec![(OCTET_STREAM.to_owned(), Part::Bytes(bytes))])
    })
    .await?;
    Ok(multipart(OCTET_STREAM, parts))
}

/// Query of the rendered resources.
#[derive(Debug, Default, Deserialize)]
pub struct RenderQuery {
    /// `center,width[,function]` or a CT preset (brain, soft-tissue, lung, bone).
    window: Option<String>,
    /// Accepted and ignored (PNG is lossless).
    #[serde(rename = "quality")]
    _quality: Option<String>,
    /// Accepted and ignored (frames are rendered at full size).
    #[serde(rename = "viewport")]
    _viewport: Option<String>,
}

async fn render(
    imaging: Arc<Imaging>,
    accept: Option<String>,
    study: String,
    series: String,
    instance: String,
    frame: u32,
    query: RenderQuery,
) -> Result<Response, ApiError> {
    negotiate::rendered(accept.as_deref())?;
    let window: Option<Window> = query.window.as_deref().map(str::parse).transpose()?;
    let png = blocking(move || {
        let (record, path) = one(&imaging, &study, &series, &instance)?;
        if record.pixel_data.is_none() {
            return Err(WebError::NoPixelData.into());
        }
        Ok(render_png(&path, &record, frame, window)?)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// `GET .../instances/{instance}/rendered`: the first frame.
pub async fn rendered_instance(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
    query: Result<Query<RenderQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    render(app.imaging.clone(), accept(&headers), study, series, instance, 1, query).await
}

/// `GET .../instances/{instance}/frames/{frame}/rendered`
pub async fn rendered_frame(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
    query: Result<Query<RenderQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let numbers = frame_list(&list)?;
    let [frame] = numbers[..] else {
        return Err(ApiError::bad_request("render one frame at a time: .../frames/{n}/rendered"));
    };
    render(app.imaging.clone(), accept(&headers), study, series, instance, frame, query).await
}
