//! Submitting, reading and acting on cases.

use super::extract::{Body, ReadBarrier};
use super::registry::created;
use super::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use yilian_referral::{
    Case, CaseId, CaseStatus, CaseSubmission, Command, FacilityId, Outcome, Priority, SpecialistId,
};

/// `POST /v1/cases`
pub async fn submit(
    State(node): State<AppState>,
    Body(b): Body<CaseSubmission>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    created(&node, Command::SubmitCase(b)).await
}

/// Filters for `GET /v1/cases`.
#[derive(Debug, Deserialize)]
pub struct CaseFilter {
    status: Option<CaseStatus>,
    priority: Option<Priority>,
    facility: Option<FacilityId>,
}

/// `GET /v1/cases`: most urgent first, then oldest first.
pub async fn list(
    State(node): State<AppState>,
    _: ReadBarrier,
    filter: Result<Query<CaseFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Case>>, ApiError> {
    let Query(f) = filter?;
    let state = node.state().read();
    let mut cases: Vec<Case> = state
        .region
        .cases()
        .filter(|c| f.status.is_none_or(|s| c.status == s))
        .filter(|c| f.priority.is_none_or(|p| c.priority == p))
        .filter(|c| f.facility.as_ref().is_none_or(|fac| &c.origin == fac || &c.target == fac))
        .cloned()
        .collect();
    cases.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.submitted_at_ms.cmp(&b.submitted_at_ms)));
    Ok(Json(cases))
}

/// `GET /v1/cases/{id}`
pub async fn show(
    State(node): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    let state = node.state().read();
    Ok(Json(state.region.case(&CaseId(id))?.clone()))
}

/// Body of `POST /v1/cases/{id}/{action}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseAction {
    specialist: SpecialistId,
    #[serde(default)]
    findings: Option<String>,
}

/// `POST /v1/cases/{id}/{assign|accept|report|complete}`
pub async fn act(
    State(node): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Body(b): Body<CaseAction>,
) -> Result<Json<Outcome>, ApiError> {
    let case = CaseId(id);
    let specialist = b.specialist;
    let command = match action.as_str() {
        "assign" => Command::Assign { case, specialist },
        "accept" => Command::Accept { case, specialist },
        "complete" => Command::Complete { case, specialist },
        "report" => match b.findings {
            Some(findings) => Command::Report { case, specialist, findings },
            None => return Err(ApiError::bad_request("a report needs `findings`")),
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown case action `{other}`; use assign, accept, report or complete"
            )))
        }
    };
    Ok(Json(node.write(command).await??))
}
