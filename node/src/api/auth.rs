//! Who is calling: every request except the health checks and login carries
//! `Authorization: Bearer <token>`, a session token from `POST /v1/login` or an API token.
//!
//! [`require_auth`] checks the token against the replicated user table and puts an
//! [`Authenticated`] into the request; handlers take it as an extractor. The actor of every
//! command comes from here, never from anything else the client sends.

use super::{ApiError, AppState};
use crate::auth::{api_token, TokenError};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use yilian_consensus::cluster::now_ms;
use yilian_referral::{Actor, Change, Command, Provenance, Region, Role};

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A login session.
    Session,
    /// An integration's API token.
    ApiToken,
    /// A token signed with the region secret on a node with no users yet (bootstrap).
    Bootstrap,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Login name.
    pub user: String,
    /// The actor commands are issued as (role and facility from the user table).
    pub actor: Actor,
    /// The caller's network address, for the audit trail.
    pub source: Option<IpAddr>,
    /// How they authenticated.
    pub credential: Credential,
    /// Purpose of use the caller declared (`X-Yilian-Purpose`, an HL7 PurposeOfUse code such
    /// as TREAT or ETREAT); when absent the audit trail records the access basis's default.
    pub purpose: Option<String>,
}

/// Header in which a caller declares the purpose of use.
pub const PURPOSE_HEADER: &str = "x-yilian-purpose";

fn purpose_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(PURPOSE_HEADER) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    let valid =
        !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(ApiError::bad_request(format!(
            "{PURPOSE_HEADER} must be an HL7 PurposeOfUse code such as TREAT, ETREAT or HOPERAT"
        )));
    }
    Ok(Some(text.to_ascii_uppercase()))
}

impl Authenticated {
    /// The caller's role.
    pub fn role(&self) -> Role {
        self.actor.role
    }

    /// `change` as a command of the caller, carrying their address and declared purpose.
    pub fn command(&self, change: Change) -> Command {
        Command::new(self.actor.clone(), change).with_provenance(self.provenance())
    }

    /// Where the caller's requests come from, for the audit trail.
    pub fn provenance(&self) -> Provenance {
        Provenance { source: self.source.map(|s| s.to_string()), purpose: self.purpose.clone() }
    }

    /// Refuse with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.actor.role) {
            return Ok(());
        }
        let names: Vec<String> = roles.iter().map(ToString::to_string).collect();
        Err(ApiError::forbidden(format!(
            "{what} is for {}; you are logged in as {} ({})",
            names.join(" or "),
            self.user,
            self.actor.role
        )))
    }
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Authenticated>().cloned().ok_or_else(|| {
            ApiError::unauthorized(
                "this endpoint needs `Authorization: Bearer <token>`; log in with `yilian login`",
            )
        })
    }
}

/// The caller's address as the server saw it.
pub fn source_of(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip())
}

/// Middleware: authenticate the bearer token or answer 401.
/// Under `/fhir` the refusal is an OperationOutcome.
pub async fn require_auth(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let source = source_of(req.extensions());
    let auth = {
        let state = app.node.state().read();
        authenticate(&app, &state.region, req.headers(), source)
    };
    match auth {
        Ok(auth) => {
            let auth_us = started.elapsed().as_micros() as u64;
            req.extensions_mut().insert(auth);
            let response = next.run(req).await;
            tracing::debug!(auth_us, us = started.elapsed().as_micros() as u64, "request served");
            response
        }
        Err(e) if req.uri().path().starts_with("/fhir") => super::fhir::outcome_response(e),
        Err(e) => e.into_response(),
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "this endpoint needs `Authorization: Bearer <token>`; log in with `yilian login` (or POST /v1/login)",
        )
    })?;
    let text = value.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    text.strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

fn authenticate(
    app: &super::ApiState,
    region: &Region,
    headers: &HeaderMap,
    source: Option<IpAddr>,
) -> Result<Authenticated, ApiError> {
    let token = bearer(headers)?;
    let purpose = purpose_of(headers)?;
    authenticate_token(app, region, token, purpose, source)
}

/// Check a bearer `token` (session or API token) against the user table in `region`, as
/// [`require_auth`] does for HTTP; the QUIC upload path uses it too.
pub fn authenticate_token(
    app: &super::ApiState,
    region: &Region,
    token: &str,
    purpose: Option<String>,
    source: Option<IpAddr>,
) -> Result<Authenticated, ApiError> {
    if api_token::is_api_token(token) {
        let refused =
            || ApiError::unauthorized("the API token is unknown or revoked; ask an admin for a new one");
        let (id, secret) = api_token::parse(token).ok_or_else(refused)?;
        let stored = region.api_token(id).ok_or_else(refused)?;
        if stored.revoked_at_ms.is_some() || stored.secret_hash != api_token::secret_hash(secret) {
            return Err(refused());
        }
        let user = region.user(&stored.user).map_err(|_| refused())?;
        if user.disabled {
            return Err(refused());
        }
        return Ok(Authenticated {
            user: user.id.clone(),
            actor: user.actor(),
            source,
            credential: Credential::ApiToken,
            purpose,
        });
    }
    let claims = app
        .session_key
        .verify(token, now_ms())
        .map_err(|e: TokenError| ApiError::unauthorized(e.to_string()))?;
    match region.user(&claims.user) {
        Ok(user) if user.accepts_session(claims.iat_ms) => Ok(Authenticated {
            user: user.id.clone(),
            actor: user.actor(),
            source,
            credential: Credential::Session,
            purpose,
        }),
        Ok(_) => Err(ApiError::unauthorized("this session was revoked or the user disabled; log in again")),
        Err(_) if region.has_no_users() && claims.role == Role::Admin => Ok(Authenticated {
            user: claims.user.clone(),
            actor: Actor { role: Role::Admin, id: claims.user, facility: None },
            source,
            credential: Credential::Bootstrap,
            purpose,
        }),
        Err(_) => Err(ApiError::unauthorized(format!("user `{}` does not exist; log in again", claims.user))),
    }
}
