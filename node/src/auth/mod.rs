//! Authentication at the node edge: the region's signing secret, session tokens, password
//! hashing, API tokens and login rate limiting. The pure domain never sees a password or a
//! token secret; it stores only hashes.

pub mod api_token;
pub mod password;
pub mod rate_limit;
pub mod session;

pub use session::{Claims, SessionKey, TokenError};

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of `text` written by [`hex`]; `None` if it is not even-length hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() & 1 == 1 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes)
}
