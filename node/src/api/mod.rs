//! The HTTP JSON API each node serves.
//!
//! Writes sent to any node are forwarded to the leader over QUIC. Reads are linearizable by
//! default (ReadIndex through the leader); `?consistency=stale` reads this node's state as is.
//! Every endpoint but `/livez`, `/readyz` and `/v1/login` needs a bearer token (see [`auth`]);
//! the actor of a command is the authenticated user. DICOMweb is served under `/dicomweb`.

pub mod access;
mod audit;
pub mod auth;
mod cases;
mod cluster;
mod dicomweb;
mod error;
mod extract;
mod fhir;
mod figures;
mod registry;
mod studies;
mod transfers;
mod users;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::SessionKey;
use crate::imaging::Imaging;
use crate::patient_key::PatientKeyer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::Arc;
use yilian_consensus::ClusterNode;
use yilian_referral::{Change, Outcome};

pub use auth::Authenticated;
pub use cluster::NodeView;
pub use error::ApiError;
pub use users::{CreatedToken, Session};

/// Largest request body accepted by the JSON API (routes that take uploads set their own).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach: the cluster member, the region secrets and the login limiter.
pub struct ApiState {
    /// The cluster member this API fronts.
    pub node: Arc<ClusterNode>,
    /// Turns patient IDs into pseudonymous keys.
    pub patient_keys: PatientKeyer,
    /// The imaging service: ingest, store, catalog.
    pub imaging: Arc<Imaging>,
    /// Signs and checks session tokens.
    pub session_key: SessionKey,
    /// How long a session lasts, in ms.
    pub session_ttl_ms: u64,
    /// Failed logins per user and address.
    pub login_limiter: LoginLimiter,
    /// Writes reads and refusals to the audit trail.
    pub access_audit: access::AccessAuditor,
}

/// State shared by all handlers.
pub type AppState = Arc<ApiState>;

/// Build the router.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/node", get(cluster::node))
        .route("/v1/cluster/init", post(cluster::init))
        .route("/v1/cluster/learners", post(cluster::add_learner))
        .route("/v1/cluster/voters", post(cluster::promote))
        .route("/v1/cluster/members/:id", delete(cluster::remove))
        .route("/v1/facilities", post(registry::register_facility).get(registry::list_facilities))
        .route("/v1/facilities/:id", get(registry::show_facility))
        .route("/v1/facilities/:id/capacity/:service", put(registry::declare_capacity))
        .route("/v1/facilities/:id/devices/:modality", put(registry::set_device))
        .route("/v1/capacity", get(registry::capacity_search))
        .route("/v1/specialists", post(registry::register_specialist).get(registry::list_specialists))
        .route("/v1/specialists/:id", get(registry::show_specialist))
        .route("/v1/specialists/:id/shift", put(registry::set_shift))
        .route("/v1/specialists/:id/worklist", get(cases::worklist))
        .route("/v1/policies/:region", get(registry::show_policy).put(registry::set_policy))
        .route("/v1/cases", post(cases::submit).get(cases::list))
        .route("/v1/cases/:id", get(cases::show))
        .route("/v1/cases/:id/:action", post(cases::act))
        .route("/v1/cases/:id/studies", get(studies::of_case))
        .route("/v1/studies/:uid", get(studies::show))
        .route("/v1/studies/:uid/commit", post(studies::commit))
        .route("/v1/studies/:uid/instances/:sop/file", get(studies::export_instance))
        .route("/v1/upload-target", get(studies::upload_target))
        .route("/v1/transfers", post(transfers::request).get(transfers::list))
        .route("/v1/transfers/:id", get(transfers::show))
        .route("/v1/transfers/:id/:action", post(transfers::act))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/figures", get(figures::json))
        .route("/metrics", get(figures::prometheus))
        .route("/v1/logout", post(users::logout))
        .route("/v1/users", post(users::add).get(users::list))
        .route("/v1/users/:id/disable", post(users::disable))
        .route("/v1/users/:id/revoke-sessions", post(users::revoke_sessions))
        .route("/v1/tokens", post(users::create_token))
        .route("/v1/tokens/:id", delete(users::revoke_token))
        .route("/v1/break-glass", get(cases::break_glass_list))
        .merge(fhir::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_auth));
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/login", post(users::login))
        .merge(protected)
        .nest("/dicomweb", dicomweb::routes(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `GET /readyz`: 200 when this node knows a leader (it can serve requests), else 503.
async fn ready(State(app): State<AppState>) -> (StatusCode, &'static str) {
    match app.node.status().leader {
        Some(_) => (StatusCode::OK, "ready"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader known yet"),
    }
}

/// Apply `change` as the caller through the leader and return the domain's answer.
async fn apply(app: &ApiState, auth: &Authenticated, change: Change) -> Result<Outcome, ApiError> {
    Ok(app.node.write(auth.command(change)).await??)
}

/// Apply `change` as the caller; a refusal by an access rule (403) is written to the audit
/// trail as a denied access to `case`.
async fn apply_audited(
    app: &ApiState,
    auth: &Authenticated,
    change: Change,
    case: Option<&yilian_referral::CaseId>,
    event_type: &str,
) -> Result<Outcome, ApiError> {
    match app.node.write(auth.command(change)).await? {
        Ok(outcome) => Ok(outcome),
        Err(e @ yilian_referral::DomainError::NotAllowed { .. }) => {
            access::audit_refused_write(app, auth, case, event_type, &e.to_string()).await;
            Err(e.into())
        }
        Err(e) if event_type == BREAK_GLASS_DENIED => {
            access::audit_refused_write(app, auth, case, event_type, &e.to_string()).await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Event type of a refused break-glass request; every refusal of one is audited, including
/// one without a reason.
pub(crate) const BREAK_GLASS_DENIED: &str = "case.break-glass-denied";
