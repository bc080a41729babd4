//! The HTTP JSON API each node serves.
//!
//! Writes sent to any node are forwarded to the leader over QUIC. Reads are linearizable by
//! default (ReadIndex through the leader); `?consistency=stale` reads this node's state as is.

mod cases;
mod cluster;
mod error;
mod extract;
mod registry;

use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;
use yilian_consensus::ClusterNode;

pub use cluster::NodeView;
pub use error::ApiError;

/// State shared by all handlers.
pub type AppState = Arc<ClusterNode>;

/// Build the router for `node`.
pub fn router(node: Arc<ClusterNode>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/v1/node", get(cluster::node))
        .route("/v1/cluster/init", post(cluster::init))
        .route("/v1/cluster/learners", post(cluster::add_learner))
        .route("/v1/cluster/voters", post(cluster::promote))
        .route("/v1/cluster/members/:id", delete(cluster::remove))
        .route("/v1/facilities", post(registry::register_facility).get(registry::list_facilities))
        .route("/v1/specialists", post(registry::register_specialist).get(registry::list_specialists))
        .route("/v1/cases", post(cases::submit).get(cases::list))
        .route("/v1/cases/:id", get(cases::show))
        .route("/v1/cases/:id/:action", post(cases::act))
        .with_state(node)
}
