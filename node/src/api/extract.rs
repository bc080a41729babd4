//! Request extractors that turn malformed input into clear 400s.

use super::{ApiError, AppState};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// A JSON body that may be left out (an empty body means `T::default()`).
pub struct OptionalBody<T>(pub T);

#[axum::async_trait]
impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {}", e.body_text())))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
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

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<ReadQuery>::from_request_parts(parts, app).await?;
        if q.consistency == Consistency::Linearizable {
            app.node.linearizable_barrier().await?;
        }
        Ok(ReadBarrier)
    }
}
