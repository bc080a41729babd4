//! STOW-RS: store the DICOM files of a `multipart/related` request, each part streamed to a
//! temp file (with a size limit) and sent through the node's one ingest pipeline. The answer
//! lists every instance stored and every part refused with its reason: 200 when all were
//! stored, 202 when some were, 409 when none was (PS3.18 10.5.3).

use super::body::dicom_json;
use super::{base_url, ApiError, AppState};
use crate::api::access::authorize_case;
use crate::api::auth::Authenticated;
use crate::imaging::{CaseTarget, Imaging, IngestRefusal, Intake, Requester};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures_util::Stream;
use serde::Deserialize;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use yilian_dicom::error::IngestError;
use yilian_dicom::ingest::DEFAULT_MAX_FILE_SIZE;
use yilian_dicom::web::stow::{self, reason, Failed, Stored};
use yilian_dicom::web::{multipart, APPLICATION_DICOM};
use yilian_referral::{CaseId, CaseOperation};

/// Query of a STOW request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StowQuery {
    /// The case every instance belongs to; without it, each file's Accession Number names it.
    case: Option<String>,
}

/// `POST /dicomweb/studies`
pub async fn store(
    State(app): State<AppState>,
    auth: Authenticated,
    query: Result<Query<StowQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    store_parts(app, auth, query, None, request).await
}

/// `POST /dicomweb/studies/{study}`: every instance must belong to `study`.
pub async fn store_in_study(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(study): Path<String>,
    query: Result<Query<StowQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    store_parts(app, auth, query, Some(study), request).await
}

async fn store_parts(
    app: AppState,
    auth: Authenticated,
    query: StowQuery,
    study: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let related = multipart::parse_content_type(content_type)?;
    if related.part_type.as_deref().is_some_and(|t| t != APPLICATION_DICOM) {
        return Err(ApiError::unsupported_media_type(format!(
            "this server stores DICOM files only: send type=\"{APPLICATION_DICOM}\" parts, not {:?}",
            related.part_type.unwrap_or_default()
        )));
    }
    let target = match query.case {
        Some(case) => {
            let case = CaseId(case);
            // A refusal is answered (and audited) before any byte is stored; an unknown case is
            // refused per instance below, as PS3.18 asks.
            match authorize_case(&app, &auth, &case, CaseOperation::Write).await {
                Err(e) if e.status() != StatusCode::NOT_FOUND => return Err(e),
                _ => {}
            }
            CaseTarget::Explicit(case)
        }
        None => CaseTarget::FromAccession,
    };
    let by = Requester { actor: auth.actor.clone(), provenance: auth.provenance() };
    let stream = request.into_body().into_data_stream();
    let outcome = receive(&app.imaging, stream, related.boundary, target, study.as_deref(), &by).await?;
    tracing::info!(
        actor = %by.actor.id,
        role = %by.actor.role,
        stored = outcome.stored.len(),
        failed = outcome.failed.len(),
        "STOW-RS request handled"
    );
    let base = base_url(&headers, &app.node.info().api_addr);
    let stored: Vec<Stored> = outcome
        .stored
        .iter()
        .map(|(class, instance, study, series)| Stored {
            sop_class_uid: class.clone(),
            sop_instance_uid: instance.clone(),
            retrieve_url: format!("{base}/studies/{study}/series/{series}/instances/{instance}"),
        })
        .collect();
    let study_url = study
        .or_else(|| outcome.stored.first().map(|(_, _, s, _)| s.clone()))
        .map(|s| format!("{base}/studies/{s}"));
    let status = match (stored.is_empty(), outcome.failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    Ok(dicom_json(status, &stow::response(study_url.as_deref(), &stored, &outcome.failed)))
}

/// What a STOW request did: stored instances (class, instance, study, series) and refusals.
struct Outcome {
    stored: Vec<(String, String, String, String)>,
    failed: Vec<Failed>,
}

/// Removes a temp file when dropped, whatever happened.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Read every part of the body into a temp file and ingest it.
async fn receive<S>(
    imaging: &Imaging,
    stream: S,
    boundary: String,
    target: CaseTarget,
    study: Option<&str>,
    by: &Requester,
) -> Result<Outcome, ApiError>
where
    S: Stream<Item = Result<axum::body::Bytes, axum::Error>> + Send + 'static,
{
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut outcome = Outcome { stored: Vec::new(), failed: Vec::new() };
    let mut count = 0usize;
    loop {
        let part = parts.next_field().await.map_err(|e| {
            ApiError::bad_request(format!(
                "the multipart/related body is malformed: {e}; nothing after this point was read"
            ))
        })?;
        let Some(mut part) = part else { break };
        count += 1;
        let declared = part.content_type().map(|m| m.essence_str().to_ascii_lowercase());
        if declared.as_deref().is_some_and(|t| t != APPLICATION_DICOM) {
            while part.chunk().await.map_err(malformed)?.is_some() {}
            outcome.failed.push(refused(
                reason::CANNOT_UNDERSTAND,
                format!(
                    "part {count} is {}, not {APPLICATION_DICOM}; send each DICOM file as one application/dicom part",
                    declared.unwrap_or_default()
                ),
            ));
            continue;
        }
        let tmp = TempFile(imaging.incoming_path());
        let mut file = tokio::fs::File::create(&tmp.0).await.map_err(|e| {
            ApiError::internal(format!("cannot create a temp file for part {count}: {e}; check free space"))
        })?;
        let mut size = 0u64;
        let mut too_large = false;
        while let Some(chunk) = part.chunk().await.map_err(malformed)? {
            size += chunk.len() as u64;
            if size > DEFAULT_MAX_FILE_SIZE {
                too_large = true;
                continue;
            }
            file.write_all(&chunk).await.map_err(|e| {
                ApiError::internal(format!("cannot write part {count} to disk: {e}; check free space"))
            })?;
        }
        file.flush()
            .await
            .map_err(|e| ApiError::internal(format!("cannot write part {count} to disk: {e}")))?;
        drop(file);
        if too_large {
            let e = IngestError::TooLarge { size, limit: DEFAULT_MAX_FILE_SIZE };
            outcome.failed.push(refused(reason::OUT_OF_RESOURCES, format!("part {count}: {e}")));
            continue;
        }
        match imaging.ingest_file_in_study(&tmp.0, Intake::Move, target.clone(), study, by).await {
            Ok(s) => outcome.stored.push((
                s.info.sop_class_uid,
                s.info.sop_instance_uid,
                s.info.study_instance_uid,
                s.info.series_instance_uid,
            )),
            Err(refusal) => {
                tracing::info!(part = count, code = refusal.code(), "STOW-RS part refused");
                let uids = refusal.uids().cloned();
                let mut failed = refused(failure_reason(&refusal), format!("part {count}: {refusal}"));
                failed.sop_class_uid = uids.as_ref().map(|u| u.sop_class_uid.clone());
                failed.sop_instance_uid = uids.map(|u| u.sop_instance_uid);
                outcome.failed.push(failed);
            }
        }
    }
    if count == 0 {
        return Err(ApiError::bad_request(
            "the request holds no parts; send one application/dicom part per file",
        ));
    }
    Ok(outcome)
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("the multipart/related body is malformed: {e}; send the request again"))
}

fn refused(reason: u16, comment: String) -> Failed {
    Failed { sop_class_uid: None, sop_instance_uid: None, reason, comment }
}

/// The Failure Reason (0008,1197) of a refusal.
fn failure_reason(refusal: &IngestRefusal) -> u16 {
    match refusal {
        IngestRefusal::Invalid(e) => match e {
            IngestError::TooLarge { .. } => reason::OUT_OF_RESOURCES,
            IngestError::UnsupportedSopClass { .. } => reason::SOP_CLASS_NOT_SUPPORTED,
            IngestError::UnsupportedTransferSyntax { .. } => reason::TRANSFER_SYNTAX_NOT_SUPPORTED,
            IngestError::MissingAttribute { .. }
            | IngestError::InvalidAttribute { .. }
            | IngestError::MissingPayload { .. }
            | IngestError::PixelDataTooShort { .. }
            | IngestError::Inconsistent { .. } => reason::DATA_SET_MISMATCH,
            _ => reason::CANNOT_UNDERSTAND,
        },
        IngestRefusal::WrongStudy { .. } => reason::STUDY_MISMATCH,
        _ => reason::PROCESSING_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_failure_reasons() {
        let e = IngestRefusal::Invalid(IngestError::Empty);
        assert_eq!(failure_reason(&e), reason::CANNOT_UNDERSTAND);
        let e = IngestRefusal::Invalid(IngestError::TooLarge { size: 2, limit: 1 });
        assert_eq!(failure_reason(&e), reason::OUT_OF_RESOURCES);
    }
}
