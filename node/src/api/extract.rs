//! Request extractors that turn malformed input into clear 400s.

use super::{ApiError, AppState};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use yilian_consensus::ClusterNode;

/// A JSON body; a bad body is a 400 saying what is wrong.
pub struct Body<T>(pub T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (default).
    #[default]
    Linearizable,
    /// This node's state as it is; may lag the leader.
    Stale,
}

#[derive(Deserialize)]

struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
}

/// Proof that the read consistency the client asked for has been reached on this node.
pub struct ReadBarrier;

#[axum::async_trait]
impl FromRequestParts<AppState> for ReadBarrier {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<ReadQuery>::from_request_parts(parts, node).await?;
        if q.consistency == Consistency::Linearizable {
            ClusterNode::linearizable_barrier(node).await?;
        }
        Ok(ReadBarrier)
    }
}
