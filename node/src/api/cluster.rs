//! Node status and membership changes.

use super::auth::Authenticated;
use super::extract::Body;
use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yilian_consensus::cluster::Member;
use yilian_consensus::{NodeInfo, NodeStatus};
use yilian_referral::Role;

/// Who may see and change cluster membership.
const CLUSTER_ROLES: [Role; 2] = [Role::Ops, Role::Admin];

/// Answer of `GET /v1/node`: who this node is and what it sees.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// This node's identity and addresses.
    pub identity: Member,
    /// Its view of the cluster.
    pub status: NodeStatus,
}

/// `GET /v1/node`
pub async fn node(State(app): State<AppState>, auth: Authenticated) -> Result<Json<NodeView>, ApiError> {
    auth.require(&CLUSTER_ROLES, "cluster status")?;
    let node = &app.node;
    let info = node.info();
    let identity =
        Member { node_id: node.id(), raft_addr: info.raft_addr.clone(), api_addr: info.api_addr.clone() };
    Ok(Json(NodeView { identity, status: node.status() }))
}

/// Body of `POST /v1/cluster/init`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    members: Vec<Member>,
}

fn info(m: Member) -> (u64, NodeInfo) {
    (m.node_id, NodeInfo { raft_addr: m.raft_addr, api_addr: m.api_addr })
}

/// `POST /v1/cluster/init`
pub async fn init(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(b): Body<InitRequest>,
) -> Result<Json<NodeStatus>, ApiError> {
    auth.require(&CLUSTER_ROLES, "forming a cluster")?;
    if b.members.is_empty() {
        return Err(ApiError::bad_request("`members` must list at least this node"));
    }
    let members: BTreeMap<u64, NodeInfo> = b.members.into_iter().map(info).collect();
    app.node.initialize(members).await?;
    Ok(Json(app.node.status()))
}

/// `POST /v1/cluster/learners`
pub async fn add_learner(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(m): Body<Member>,
) -> Result<Json<NodeStatus>, ApiError> {
    auth.require(&CLUSTER_ROLES, "adding a node")?;
    let (id, info) = info(m);
    app.node.add_learner(id, info).await?;
    Ok(Json(app.node.status()))
}

/// Body of `POST /v1/cluster/voters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    node_id: u64,
}

/// `POST /v1/cluster/voters`
pub async fn promote(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(b): Body<PromoteRequest>,
) -> Result<Json<NodeStatus>, ApiError> {
    auth.require(&CLUSTER_ROLES, "promoting a node")?;
    app.node.promote(b.node_id).await?;
    Ok(Json(app.node.status()))
}

/// `DELETE /v1/cluster/members/{id}`
pub async fn remove(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<NodeStatus>, ApiError> {
    auth.require(&CLUSTER_ROLES, "removing a node")?;
    let id: u64 = id.parse().map_err(|_| ApiError::bad_request(format!("node id `{id}` is not a number")))?;
    app.node.remove(id).await?;
    Ok(Json(app.node.status()))
}
