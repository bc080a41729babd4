//! Session tokens: stateless, HMAC-SHA256-signed with the region's `auth.secret`, carrying the
//! user, role, facility and expiry. Any node of the region can check them; revocation is
//! checked against the replicated user table.
//!
//! Form: `yl1.<hex of the JSON claims>.<hex of the HMAC over "yl1." + claims hex>`.

use super::{hex, unhex};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use yilian_referral::{FacilityId, Role};

/// Prefix naming the token format.
const PREFIX: &str = "yl1.";
/// Shortest secret accepted, in bytes.
const MIN_SECRET_BYTES: usize = 32;
/// Longest token accepted, in bytes (a guard against huge headers).
const MAX_TOKEN_BYTES: usize = 4096;

/// What a session token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Login name.
    pub user: String,
    /// Role at login.
    pub role: Role,
    /// Facility at login.
    pub facility: Option<FacilityId>,
    /// Issued at (ms since the Unix epoch).
    pub iat_ms: u64,
    /// Expires at (ms since the Unix epoch).
    pub exp_ms: u64,
}

/// Why a token was refused. Each message tells the user to log in again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("the bearer token is malformed; log in again with `yilian login`")]
    Malformed,
    /// The signature does not match (forged, or from another region).
    #[error("the bearer token's signature is invalid (forged or from another region); log in again with `yilian login`")]
    BadSignature,
    /// The token has expired.
    #[error("the session has expired; log in again with `yilian login`")]
    Expired,
}

/// Why the signing secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read the auth secret {path}: {source}; create it with `yilian ca init` and copy it to every node of the region")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The secret is too short.
    #[error("the auth secret {0} is shorter than 32 bytes; use the file `yilian ca init` wrote")]
    Short(String),
}

/// The region's session-signing key.
#[derive(Clone)]
pub struct SessionKey {
    secret: Vec<u8>,
}

impl SessionKey {
    /// Load the secret from `path` (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read(path)
            .map_err(|source| SecretError::Read { path: path.display().to_string(), source })?;
        let secret = text.trim_ascii().to_vec();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::Short(path.display().to_string()));
        }
        Ok(Self { secret })
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(signed.as_bytes());
        mac
    }

    /// A signed token carrying `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let body = hex(&serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{PREFIX}{body}");
        let sig = hex(&self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// The claims of `token` if its signature is valid and it has not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || !token.starts_with(PREFIX) {
            return Err(TokenError::Malformed);
        }
        let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = unhex(sig).ok_or(TokenError::Malformed)?;
        self.mac(signed).verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
        let body = unhex(&signed[PREFIX.len()..]).ok_or(TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
        if claims.exp_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SessionKey {
        SessionKey { secret: vec![byte; 32] }
    }

    #[test]
    fn tokens_verify_and_forgeries_do_not() {
        let claims =
            Claims { user: "nurse".into(), role: Role::ClinicStaff, facility: None, iat_ms: 10, exp_ms: 100 };
        let token = key(1).mint(&claims);
        assert_eq!(key(1).verify(&token, 50), Ok(claims.clone()));
        assert_eq!(key(1).verify(&token, 100), Err(TokenError::Expired));
        assert_eq!(key(2).verify(&token, 50), Err(TokenError::BadSignature));
        let admin = Claims { role: Role::Admin, ..claims };
        let forged_body = key(3).mint(&admin);
        let (_, good_sig) = token.rsplit_once('.').expect("sig");
        let (forged_signed, _) = forged_body.rsplit_once('.').expect("sig");
        assert_eq!(key(1).verify(&format!("{forged_signed}.{good_sig}"), 50), Err(TokenError::BadSignature));
        assert_eq!(key(1).verify("garbage", 50), Err(TokenError::Malformed));
    }
}
