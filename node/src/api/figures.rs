//! Figures for health bureaus: JSON at `/v1/figures`, Prometheus text at `/metrics`.

use super::auth::Authenticated;
use super::extract::ReadBarrier;
use super::{ApiError, AppState};
use crate::metrics::{self, NodeGauges};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use yilian_consensus::cluster::now_ms;
use yilian_referral::{Figures, Role};

/// Who may see the figures: aggregates only, no patient data.
const FIGURE_ROLES: [Role; 3] = [Role::Bureau, Role::Ops, Role::Admin];

/// Compute the figures off the async threads (a large region takes a moment).
async fn compute(app: &AppState) -> Result<Figures, ApiError> {
    let state = app.node.state().clone();
    tokio::task::spawn_blocking(move || Figures::compute(&state.read().region, now_ms()))
        .await
        .map_err(|e| ApiError::internal(format!("computing the figures failed: {e}")))
}

/// `GET /v1/figures`: referral rates, time in status, turnaround and SLA compliance per
/// priority, unrouted cases, per-facility volume and specialist load. Aggregates only.
pub async fn json(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
) -> Result<Json<Figures>, ApiError> {
    auth.require(&FIGURE_ROLES, "the figures")?;
    Ok(Json(compute(&app).await?))
}

/// `GET /metrics`: the same figures plus this node's Raft gauges, in Prometheus text format.
/// Reads this node's state as applied (no leader round trip), as scrapers expect.
pub async fn prometheus(
    State(app): State<AppState>,
    auth: Authenticated,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(&FIGURE_ROLES, "the metrics")?;
    let figures = compute(&app).await?;
    let status = app.node.status();
    let gauges = NodeGauges {
        node_id: status.node_id,
        is_leader: status.leader == Some(status.node_id),
        term: status.term,
        last_applied: status.last_applied.unwrap_or(0),
        last_log_index: status.last_log_index.unwrap_or(0),
    };
    Ok((
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&figures, &gauges, &app.imaging.counters()),
    ))
}
