//! The pseudonymous patient key ("一人一码") that links one person's cases across facilities.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// HMAC-SHA256 of the national health ID under the region's secret, as 64 lowercase hex digits.
/// The raw ID never enters the domain; the key is computed at the API edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PatientKey(pub String);

impl PatientKey {
    /// Length of a key in hex digits.
    pub const HEX_LEN: usize = 64;

    /// Check that this is a well-formed key (not, say, a raw ID sent by mistake).
    pub fn validate(&self) -> Result<(), DomainError> {
        let ok =
            self.0.len() == Self::HEX_LEN && self.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "patient_key",
                "must be 64 lowercase hex digits (the HMAC computed by the node from the patient's ID)",
            ))
        }
    }

    /// A short, non-reversible tag for logs and displays (first 8 hex digits).
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

impl fmt::Display for PatientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
