//! API tokens for integrations: `ylt_<id>_<secret>`. The id is public and names the token in
//! the replicated table; only the SHA-256 of the secret is stored.

use super::{hex, random_bytes};
use sha2::{Digest, Sha256};

/// Prefix of every API token.
const PREFIX: &str = "ylt_";

/// A freshly generated token: show `token` once; store `id` and `secret_hash`.
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// The whole token, given to the integration once.
    pub token: String,
    /// SHA-256 (hex) of the secret part.
    pub secret_hash: String,
}

/// Generate a new token.
pub fn generate() -> Result<NewToken, getrandom::Error> {
    let id = hex(&random_bytes::<8>()?);
    let secret = hex(&random_bytes::<32>()?);
    Ok(NewToken { token: format!("{PREFIX}{id}_{secret}"), secret_hash: secret_hash(&secret), id })
}

/// Whether `bearer` looks like an API token rather than a session token.
pub fn is_api_token(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// The (id, secret) parts of an API token.
pub fn parse(bearer: &str) -> Option<(&str, &str)> {
    let (id, secret) = bearer.strip_prefix(PREFIX)?.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// SHA-256 (hex) of a token secret.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let t = generate().expect("random");
        assert!(is_api_token(&t.token));
        let (id, secret) = parse(&t.token).expect("parse");
        assert_eq!(id, t.id);
        assert_eq!(secret_hash(secret), t.secret_hash);
        assert!(parse("ylt_nounderscore").is_none());
    }
}
