//! Submitting, reading and acting on cases, and readers' worklists.

use super::auth::Authenticated;
use super::extract::{Body, OptionalBody, ReadBarrier};
use super::{apply, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::cmp::Reverse;
use yilian_referral::{
    Case, CaseAction, CaseFilter, CaseId, CaseSubmission, Change, FacilityId, GreenChannel, Modality,
    Outcome, Priority, SpecialistId, TaskStatus, Vitals,
};

/// Body of `POST /v1/cases`. The patient's resident ID is turned into the region's patient key
/// here and never stored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The patient's 18-character resident identity number.
    pub patient_id: String,
    /// Chief complaint.
    pub complaint: String,
    /// Vitals.
    #[serde(default)]
    pub vitals: Vitals,
    /// Urgency.
    pub priority: Priority,
    /// Green-channel pathway.
    #[serde(default)]
    pub green_channel: Option<GreenChannel>,
    /// Specialty needed.
    pub specialty: String,
    /// Modality to read.
    #[serde(default)]
    pub modality: Option<Modality>,
    /// Submitting facility (defaults to the actor's).
    #[serde(default)]
    pub origin: Option<FacilityId>,
    /// Preferred receiving facility.
    #[serde(default)]
    pub target: Option<FacilityId>,
    /// Keep as a draft.
    #[serde(default)]
    pub draft: bool,
}

impl SubmitBody {
    /// The domain submission, with the patient key computed by `app`.
    pub fn into_submission(
        self,
        app: &super::ApiState,
        actor_facility: Option<&FacilityId>,
    ) -> Result<CaseSubmission, ApiError> {
        let patient =
            app.patient_keys.key_for(&self.patient_id).map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let origin = self
            .origin
            .or_else(|| actor_facility.cloned())
            .ok_or_else(|| ApiError::bad_request("name the submitting facility in `origin`"))?;
        Ok(CaseSubmission {
            patient,
            complaint: self.complaint,
            vitals: self.vitals,
            priority: self.priority,
            green_channel: self.green_channel,
            specialty: self.specialty,
            modality: self.modality,
            origin,
            target: self.target,
            draft: self.draft,
        })
    }
}

/// `POST /v1/cases`
pub async fn submit(
    State(app): State<AppState>,
    Authenticated { actor, .. }: Authenticated,
    Body(b): Body<SubmitBody>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let submission = b.into_submission(&app, actor.facility.as_ref())?;
    let outcome = apply(&app, actor, Change::SubmitCase(submission)).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// Filters of `GET /v1/cases`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    owner: Option<SpecialistId>,
    priority: Option<Priority>,
    origin: Option<FacilityId>,
    unrouted: Option<bool>,
    patient_id: Option<String>,
    /// Read by [`ReadBarrier`]; listed so it is not refused as unknown.
    #[serde(rename = "consistency")]
    _consistency: Option<String>,
}

impl ListQuery {
    fn filter(self, app: &super::ApiState) -> Result<CaseFilter, ApiError> {
        let status = match self.status.as_deref() {
            Some(code) => Some(TaskStatus::from_code(code).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status `{code}`; use a FHIR Task status such as requested"
                ))
            })?),
            None => None,
        };
        let patient = match self.patient_id.as_deref() {
            Some(id) => {
                Some(app.patient_keys.key_for(id).map_err(|e| ApiError::unprocessable(e.to_string()))?)
            }
            None => None,
        };
        Ok(CaseFilter {
            status,
            owner: self.owner,
            priority: self.priority,
            origin: self.origin,
            unrouted: self.unrouted,
            patient,
        })
    }
}

/// `GET /v1/cases`: most urgent first, then oldest first.
pub async fn list(
    State(app): State<AppState>,
    _: ReadBarrier,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Case>>, ApiError> {
    let Query(q) = q?;
    let filter = q.filter(&app)?;
    let state = app.node.state().read();
    let mut cases: Vec<Case> = state.region.find_cases(&filter).cloned().collect();
    cases.sort_by_key(|c| (Reverse(c.priority), c.created_at_ms, c.id.clone()));
    Ok(Json(cases))
}

/// `GET /v1/cases/{id}`
pub async fn show(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    let state = app.node.state().read();
    Ok(Json(state.region.case(&CaseId(id))?.clone()))
}

/// `GET /v1/specialists/{id}/worklist`: open cases offered to or owned by the reader, most
/// urgent first.
pub async fn worklist(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Vec<Case>>, ApiError> {
    let state = app.node.state().read();
    let id = SpecialistId(id);
    state.region.specialist(&id)?;
    Ok(Json(state.region.worklist(&id).into_iter().cloned().collect()))
}

/// Body of `POST /v1/cases/{id}/{action}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// Why (required by reject, hold, fail, cancel, enter-in-error, reopen, hand-off).
    #[serde(default)]
    pub reason: Option<String>,
    /// Report text (for `report`).
    #[serde(default)]
    pub text: Option<String>,
    /// Colleague or reader (for `hand-off` and `assign`).
    #[serde(default)]
    pub to: Option<SpecialistId>,
}

/// The action names the API accepts.
pub const ACTIONS: &str =
    "submit, receive, accept, decline, reject, start, hold, resume, report, complete, fail, cancel, \
     enter-in-error, reopen, hand-off, assign";

/// Turn an action name and body into a domain action.
pub fn parse_action(name: &str, body: &ActBody) -> Result<CaseAction, ApiError> {
    let need_to = || {
        body.to
            .clone()
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` needs `to`: the specialist id")))
    };
    Ok(match name {
        "submit" => CaseAction::Submit,
        "receive" => CaseAction::Receive,
        "accept" => CaseAction::Accept,
        "decline" => CaseAction::Decline,
        "reject" => CaseAction::Reject,
        "start" => CaseAction::Start,
        "hold" => CaseAction::Hold,
        "resume" => CaseAction::Resume,
        "report" => CaseAction::Report {
            text: body
                .text
                .clone()
                .ok_or_else(|| ApiError::bad_request("`report` needs `text`: the findings"))?,
        },
        "complete" => CaseAction::Complete,
        "fail" => CaseAction::Fail,
        "cancel" => CaseAction::Cancel,
        "enter-in-error" => CaseAction::EnterInError,
        "reopen" => CaseAction::Reopen,
        "hand-off" => CaseAction::HandOff { to: need_to()? },
        "assign" => CaseAction::Assign { to: need_to()? },
        other => {
            return Err(ApiError::not_found(format!("unknown case action `{other}`; use one of: {ACTIONS}")))
        }
    })
}

/// `POST /v1/cases/{id}/{action}`
pub async fn act(
    State(app): State<AppState>,
    Authenticated { actor, .. }: Authenticated,
    Path((id, action)): Path<(String, String)>,
    OptionalBody(body): OptionalBody<ActBody>,
) -> Result<Json<Outcome>, ApiError> {
    let action = parse_action(&action, &body)?;
    let change = Change::Case { case: CaseId(id), action, reason: body.reason };
    Ok(Json(apply(&app, actor, change).await?))
}
