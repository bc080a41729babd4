//! Facilities, specialists, shifts, capacity, devices and region policies.

use super::auth::Authenticated;
use super::extract::{Body, ReadBarrier};
use super::{apply, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use yilian_referral::{
    Capacity, CapacityOption, Change, Facility, FacilityId, FacilityRegistration, Modality, Outcome,
    RegionPolicy, Specialist, SpecialistId, SpecialistRegistration,
};

/// `POST /v1/facilities` (ops)
pub async fn register_facility(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(f): Body<FacilityRegistration>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    Ok((StatusCode::CREATED, Json(apply(&app, &auth, Change::RegisterFacility(f)).await?)))
}

/// `POST /v1/specialists` (ops)
pub async fn register_specialist(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(s): Body<SpecialistRegistration>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    Ok((StatusCode::CREATED, Json(apply(&app, &auth, Change::RegisterSpecialist(s)).await?)))
}

/// `GET /v1/facilities`
pub async fn list_facilities(State(app): State<AppState>, _: ReadBarrier) -> Json<Vec<Facility>> {
    Json(app.node.state().read().region.facilities().cloned().collect())
}

/// `GET /v1/facilities/{id}`
pub async fn show_facility(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Facility>, ApiError> {
    Ok(Json(app.node.state().read().region.facility(&FacilityId(id))?.clone()))
}

/// `GET /v1/specialists`
pub async fn list_specialists(State(app): State<AppState>, _: ReadBarrier) -> Json<Vec<Specialist>> {
    Json(app.node.state().read().region.specialists().cloned().collect())
}

/// `GET /v1/specialists/{id}`
pub async fn show_specialist(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(id): Path<String>,
) -> Result<Json<Specialist>, ApiError> {
    Ok(Json(app.node.state().read().region.specialist(&SpecialistId(id))?.clone()))
}

/// Body of `PUT /v1/specialists/{id}/shift`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftBody {
    on_shift: bool,
}

/// `PUT /v1/specialists/{id}/shift` (the specialist or ops)
pub async fn set_shift(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    Body(b): Body<ShiftBody>,
) -> Result<Json<Outcome>, ApiError> {
    let change = Change::SetShift { specialist: SpecialistId(id), on_shift: b.on_shift };
    Ok(Json(apply(&app, &auth, change).await?))
}

/// Body of `PUT /v1/facilities/{id}/capacity/{service}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityBody {
    capacity: Capacity,
}

/// `PUT /v1/facilities/{id}/capacity/{service}` (the facility's staff or ops)
pub async fn declare_capacity(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, service)): Path<(String, String)>,
    Body(b): Body<CapacityBody>,
) -> Result<Json<Outcome>, ApiError> {
    let change = Change::DeclareCapacity { facility: FacilityId(id), service, capacity: b.capacity };
    Ok(Json(apply(&app, &auth, change).await?))
}

/// Body of `PUT /v1/facilities/{id}/devices/{modality}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    in_service: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `PUT /v1/facilities/{id}/devices/{modality}` (the facility's staff or ops): marking a device
/// out of service moves open examinations needing it to the nearest neighbour.
pub async fn set_device(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, modality)): Path<(String, String)>,
    Body(b): Body<DeviceBody>,
) -> Result<Json<Outcome>, ApiError> {
    let modality: Modality =
        serde_json::from_value(serde_json::Value::String(modality.clone())).map_err(|_| {
            ApiError::bad_request(format!("unknown modality `{modality}`; use DR, CT, MR, US or ECG"))
        })?;
    let change =
        Change::SetDevice { facility: FacilityId(id), modality, in_service: b.in_service, reason: b.reason };
    Ok(Json(apply(&app, &auth, change).await?))
}

/// Query of `GET /v1/capacity`.
#[derive(Debug, Deserialize)]
pub struct CapacityQuery {
    service: String,
    near: FacilityId,
}

/// Answer of `GET /v1/capacity`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CapacityAnswer {
    /// The service asked about.
    pub service: String,
    /// The reference facility.
    pub near: FacilityId,
    /// Facilities that can take a patient, nearest first.
    pub options: Vec<CapacityOption>,
}

/// `GET /v1/capacity?service=rehab-stroke&near=TS-LJ`: who can take a patient for a service,
/// nearest first. Carries no patient identity.
pub async fn capacity_search(
    State(app): State<AppState>,
    _: ReadBarrier,
    q: Result<Query<CapacityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CapacityAnswer>, ApiError> {
    let Query(q) = q?;
    let state = app.node.state().read();
    state.region.facility(&q.near)?;
    let options = state.region.capacity_options(&q.service, &q.near);
    Ok(Json(CapacityAnswer { service: q.service, near: q.near, options }))
}

/// `GET /v1/policies/{region}`: the policy in force (defaults if none was set).
pub async fn show_policy(
    State(app): State<AppState>,
    _: ReadBarrier,
    Path(region): Path<String>,
) -> Json<RegionPolicy> {
    Json(app.node.state().read().region.policy(&region))
}

/// `PUT /v1/policies/{region}` (ops)
pub async fn set_policy(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(region): Path<String>,
    Body(policy): Body<RegionPolicy>,
) -> Result<Json<Outcome>, ApiError> {
    Ok(Json(apply(&app, &auth, Change::SetPolicy { region, policy }).await?))
}
