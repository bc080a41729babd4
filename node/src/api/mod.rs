//! The HTTP JSON API each node serves.
//!
//! Writes sent to any node are forwarded to the leader over QUIC. Reads are linearizable by
//! default (ReadIndex through the leader); `?consistency=stale` reads this node's state as is.
//! Who is acting is named by the `X-Yilian-Actor` header (see [`actor`]). DICOMweb is served
//! under `/dicomweb`.

pub mod actor;
mod audit;
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

use crate::imaging::Imaging;
use crate::patient_key::PatientKeyer;
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::Arc;
use yilian_consensus::ClusterNode;
use yilian_referral::{Actor, Change, Command, Outcome};

pub use cluster::NodeView;
pub use error::ApiError;

/// What every handler can reach: the cluster member and the patient-key secret.
pub struct ApiState {
    /// The cluster member this API fronts.
    pub node: Arc<ClusterNode>,
    /// Turns patient IDs into pseudonymous keys.
    pub patient_keys: PatientKeyer,
    /// The imaging service: ingest, store, catalog.
    pub imaging: Arc<Imaging>,
}

/// State shared by all handlers.
pub type AppState = Arc<ApiState>;

/// Build the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
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
        .route("/v1/transfers", post(transfers::request).get(transfers::list))
        .route("/v1/transfers/:id", get(transfers::show))
        .route("/v1/transfers/:id/:action", post(transfers::act))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/figures", get(figures::json))
        .route("/metrics", get(figures::prometheus))
        .merge(fhir::routes())
        .nest("/dicomweb", dicomweb::routes())
        .with_state(state)
}

/// Apply `change` as `actor` through the leader and return the domain's answer.
async fn apply(app: &ApiState, actor: Actor, change: Change) -> Result<Outcome, ApiError> {
    Ok(app.node.write(Command::new(actor, change)).await??)
}
