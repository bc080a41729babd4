//! How errors become HTTP responses: a status code and `{"error": "..."}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use yilian_consensus::ClusterError;
use yilian_referral::DomainError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// A 422 with `message`: well-formed but unusable input.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into() }
    }

    /// A 500 with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }

    /// A 409 with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, message: message.into() }
    }

    /// A 415 with `message`: a body of a media type this endpoint does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, message: message.into() }
    }

    /// A 406 with `message`: no acceptable form of the resource can be answered.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_ACCEPTABLE, message: message.into() }
    }

    /// A 401 with `message`: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, message: message.into() }
    }

    /// A 403 with `message`: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, message: message.into() }
    }

    /// A 503 with `message`: try again later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into() }
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// The HTTP status answered.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The message answered.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match &e {
            DomainError::NotFound { .. } => StatusCode::NOT_FOUND,
            DomainError::AlreadyExists { .. } | DomainError::InvalidTransition { .. } => StatusCode::CONFLICT,
            DomainError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            DomainError::NotAllowed { .. } => StatusCode::FORBIDDEN,
            DomainError::NoCapacity { .. } => StatusCode::CONFLICT,
        };
        Self { status, message: e.to_string() }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        let status = match &e {
            ClusterError::NoLeader
            | ClusterError::LeaderUnreachable { .. }
            | ClusterError::Unreachable(_)
            | ClusterError::Behind(_)
            | ClusterError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ClusterError::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            ClusterError::Conflict(_) => StatusCode::CONFLICT,
            ClusterError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ClusterError::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self { status, message: e.to_string() }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self { status: e.status(), message: format!("invalid JSON body: {}", e.body_text()) }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", e.body_text()))
    }
}
