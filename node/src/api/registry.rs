//! Registering and listing facilities and specialists.

use super::extract::{Body, ReadBarrier};
use super::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use yilian_referral::{Command, Facility, Outcome, Specialist};

/// Apply `command` and answer 201 with the outcome.
pub(super) async fn created(
    node: &AppState,
    command: Command,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let outcome = node.write(command).await??;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// `POST /v1/facilities`
pub async fn register_facility(
    State(node): State<AppState>,
    Body(f): Body<Facility>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    created(&node, Command::RegisterFacility(f)).await
}

/// `POST /v1/specialists`
pub async fn register_specialist(
    State(node): State<AppState>,
    Body(s): Body<Specialist>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    created(&node, Command::RegisterSpecialist(s)).await
}

/// `GET /v1/facilities`
pub async fn list_facilities(State(node): State<AppState>, _: ReadBarrier) -> Json<Vec<Facility>> {
    Json(node.state().read().region.facilities().cloned().collect())
}

/// `GET /v1/specialists`
pub async fn list_specialists(State(node): State<AppState>, _: ReadBarrier) -> Json<Vec<Specialist>> {
    Json(node.state().read().region.specialists().cloned().collect())
}
