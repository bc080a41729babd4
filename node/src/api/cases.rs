//! Submitting, reading and acting on cases, and readers' worklists.

use super::access::{authorize_case, readable_cases};
use super::auth::Authenticated;
use super::extract::{Body, OptionalBody, ReadBarrier};
use super::{apply_audited, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::cmp::Reverse;
use yilian_referral::{
    BreakGlassGrant, Case, CaseAction, CaseFilter, CaseId, CaseOperation, CaseSubmission, Change, FacilityId,
    GreenChannel, Modality, Outcome, Priority, Role, SpecialistId, TaskStatus, Vitals,
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
    auth: Authenticated,
    Body(b): Body<SubmitBody>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let submission = b.into_submission(&app, auth.actor.facility.as_ref())?;
    let outcome =
        apply_audited(&app, &auth, Change::SubmitCase(submission), None, "case.create-denied").await?;
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

/// `GET /v1/cases`: the cases the caller may see (their facility's, or offered to or owned by
/// them), most urgent first, then oldest first. Each case answered is an audited read.
pub async fn list(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Case>>, ApiError> {
    let Query(q) = q?;
    let filter = q.filter(&app)?;
    let mut cases: Vec<Case> = app.node.state().read().region.find_cases(&filter).cloned().collect();
    cases.sort_by_key(|c| (Reverse(c.priority), c.created_at_ms, c.id.clone()));
    Ok(Json(readable_cases(&app, &auth, cases, "case.read").await?))
}

/// `GET /v1/cases/{id}` (audited read; 403 with the reason when the rules refuse it)
pub async fn show(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    Ok(Json(authorize_case(&app, &auth, &CaseId(id), CaseOperation::Read).await?))
}

/// `GET /v1/specialists/{id}/worklist`: open cases offered to or owned by the reader, most
/// urgent first. Only the reader themself may see it.
pub async fn worklist(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Vec<Case>>, ApiError> {
    let id = SpecialistId(id);
    let cases: Vec<Case> = {
        let state = app.node.state().read();
        state.region.specialist(&id)?;
        state.region.worklist(&id).into_iter().cloned().collect()
    };
    if auth.role() == Role::Specialist && auth.actor.id != id.0 {
        return Err(ApiError::forbidden(format!(
            "the worklist of `{id}` is theirs only; you are `{}`",
            auth.actor.id
        )));
    }
    Ok(Json(readable_cases(&app, &auth, cases, "case.read").await?))
}

/// `GET /v1/break-glass` (auditor or admin): every break-glass opening, for review.
pub async fn break_glass_list(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
) -> Result<Json<Vec<BreakGlassGrant>>, ApiError> {
    auth.require(&[Role::Auditor, Role::Admin], "reviewing break-glass openings")?;
    Ok(Json(app.node.state().read().region.break_glass_grants().cloned().collect()))
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
    /// For `break-glass`: how long, in minutes (default 60, at most 1440).
    #[serde(default)]
    pub minutes: Option<u32>,
}

/// Default length of a break-glass opening, in minutes.
const BREAK_GLASS_MINUTES: u32 = 60;

/// The action names the API accepts.
pub const ACTIONS: &str =
    "submit, receive, accept, decline, reject, start, hold, resume, report, complete, fail, cancel, \
     enter-in-error, reopen, hand-off, assign, break-glass";

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

/// `POST /v1/cases/{id}/{action}`; refusals by the lifecycle's who-may rules are audited.
/// `POST /v1/cases/{id}/break-glass {"reason","minutes"?}` opens the case outside the access
/// rules for a limited time (read-only; refused without a reason; start and end audited).
pub async fn act(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, action)): Path<(String, String)>,
    OptionalBody(body): OptionalBody<ActBody>,
) -> Result<Json<Outcome>, ApiError> {
    let case = CaseId(id);
    if action == "break-glass" {
        let change = Change::BreakGlass {
            case: case.clone(),
            reason: body.reason.unwrap_or_default(),
            minutes: body.minutes.unwrap_or(BREAK_GLASS_MINUTES),
        };
        tracing::warn!(user = %auth.user, case = %case, "break-glass requested");
        return Ok(Json(apply_audited(&app, &auth, change, Some(&case), super::BREAK_GLASS_DENIED).await?));
    }
    let action = parse_action(&action, &body)?;
    let change = Change::Case { case: case.clone(), action, reason: body.reason };
    Ok(Json(apply_audited(&app, &auth, change, Some(&case), "case.write-denied").await?))
}
