//! Login, logout, user accounts and API tokens.
//!
//! Passwords are hashed here with argon2id (off the async threads) and never logged or stored
//! in clear; the replicated user table holds only the hash.

use super::auth::{source_of, Authenticated};
use super::extract::{Body, ReadBarrier};
use super::{apply, ApiError, AppState};
use crate::auth::{api_token, password, Claims};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use yilian_consensus::cluster::now_ms;
use yilian_referral::{Change, FacilityId, Outcome, Role, SpecialistId, UserRegistration, UserSummary};

/// Body of `POST /v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Login name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Answer of `POST /v1/login`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// Login name.
    pub user: String,
    /// Role.
    pub role: Role,
    /// Facility.
    pub facility: Option<FacilityId>,
}

/// `POST /v1/login`: a session token for a correct user and password. Failed attempts per user
/// and source address back off after five in a row (429 with `Retry-After`).
pub async fn login(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let source = source_of(req.extensions());
    let Body(b): Body<LoginBody> = axum::extract::FromRequest::from_request(req, &app).await?;
    if let Some(wait) = app.login_limiter.wait_needed(&b.user, source, Instant::now()) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(source = ?source, "login refused: too many failed attempts");
        let body = Json(serde_json::json!({
            "error": format!("too many failed logins for this user from your address; wait {secs} s and try again")
        }));
        return Ok(
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], body).into_response()
        );
    }
    // A user created a moment ago through another node can log in here at once; without a
    // leader this node's own state is used.
    if let Err(e) = app.node.linearizable_barrier().await {
        tracing::debug!(error = %e, "login without a read barrier");
    }
    let user = app.node.state().read().region.user(&b.user).ok().cloned();
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let password = b.password;
    let ok = tokio::task::spawn_blocking(move || phc.is_some_and(|phc| password::verify(&password, &phc)))
        .await
        .map_err(|e| ApiError::internal(format!("password check failed: {e}")))?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            app.login_limiter.failed(&b.user, source, Instant::now());
            tracing::info!(source = ?source, "login failed");
            return Err(ApiError::unauthorized("wrong user name or password, or the account is disabled"));
        }
    };
    app.login_limiter.succeeded(&b.user, source);
    let now = now_ms();
    let claims = Claims {
        user: user.id.clone(),
        role: user.role,
        facility: user.facility.clone(),
        iat_ms: now,
        exp_ms: now + app.session_ttl_ms,
    };
    let token = app.session_key.mint(&claims);
    tracing::info!(user = %user.id, role = %user.role, "login");
    let session = Session {
        token,
        expires_at_ms: claims.exp_ms,
        user: user.id,
        role: user.role,
        facility: user.facility,
    };
    Ok(Json(session).into_response())
}

/// `POST /v1/logout`: end every session of the caller, on every node.
pub async fn logout(State(app): State<AppState>, auth: Authenticated) -> Result<Json<Outcome>, ApiError> {
    Ok(Json(apply(&app, &auth, Change::RevokeSessions { user: auth.user.clone() }).await?))
}

/// Body of `POST /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub id: String,
    /// clinic_staff, specialist, ops, auditor, bureau or admin.
    pub role: Role,
    /// Facility (required for clinic staff).
    #[serde(default)]
    pub facility: Option<FacilityId>,
    /// Specialist id (specialists; defaults to the login name).
    #[serde(default)]
    pub specialist_id: Option<SpecialistId>,
    /// Initial password (hashed here, never stored).
    pub password: String,
}

/// `POST /v1/users` (admin; on an empty user table the region's bootstrap token may create the
/// first admin).
pub async fn add(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(b): Body<NewUser>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    auth.require(&[Role::Admin], "creating users")?;
    if b.id == crate::bootstrap::BOOTSTRAP_USER {
        return Err(ApiError::unprocessable(format!(
            "`{}` is reserved for the bootstrap token; choose another name",
            crate::bootstrap::BOOTSTRAP_USER
        )));
    }
    let password = b.password;
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::internal(format!("password hashing failed: {e}")))?
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let r = UserRegistration {
        id: b.id,
        role: b.role,
        facility: b.facility,
        specialist: b.specialist_id,
        password_hash,
    };
    Ok((StatusCode::CREATED, Json(apply(&app, &auth, Change::AddUser(r)).await?)))
}

/// `GET /v1/users` (admin): accounts without their password hashes.
pub async fn list(
    State(app): State<AppState>,
    auth: Authenticated,
    _: ReadBarrier,
) -> Result<Json<Vec<UserSummary>>, ApiError> {
    auth.require(&[Role::Admin], "listing users")?;
    Ok(Json(app.node.state().read().region.users().map(UserSummary::from).collect()))
}

/// `POST /v1/users/{id}/disable` (admin)
pub async fn disable(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    auth.require(&[Role::Admin], "disabling users")?;
    Ok(Json(apply(&app, &auth, Change::DisableUser { user: id }).await?))
}

/// `POST /v1/users/{id}/revoke-sessions` (admin)
pub async fn revoke_sessions(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    auth.require(&[Role::Admin], "revoking sessions")?;
    Ok(Json(apply(&app, &auth, Change::RevokeSessions { user: id }).await?))
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The user the integration acts as.
    pub user: String,
    /// What it is for.
    pub label: String,
}

/// Answer of `POST /v1/tokens`: the token is shown once.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedToken {
    /// Token id (for revocation).
    pub id: String,
    /// Send as `Authorization: Bearer <token>`; it is not shown again.
    pub token: String,
}

/// `POST /v1/tokens` (admin): an API token for an integration.
pub async fn create_token(
    State(app): State<AppState>,
    auth: Authenticated,
    Body(b): Body<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    auth.require(&[Role::Admin], "creating API tokens")?;
    let t = api_token::generate().map_err(|e| ApiError::internal(format!("no randomness available: {e}")))?;
    let change =
        Change::CreateApiToken { id: t.id.clone(), user: b.user, secret_hash: t.secret_hash, label: b.label };
    apply(&app, &auth, change).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { id: t.id, token: t.token })))
}

/// `DELETE /v1/tokens/{id}` (admin)
pub async fn revoke_token(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    auth.require(&[Role::Admin], "revoking API tokens")?;
    Ok(Json(apply(&app, &auth, Change::RevokeApiToken { id }).await?))
}
