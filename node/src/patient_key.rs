//! "One person, one code": turning a patient's national ID into the region's pseudonymous key.
//!
//! The raw ID is validated and hashed here, at the API edge, and dropped; only the key enters
//! Raft, storage and logs.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use yilian_referral::PatientKey;

/// Shortest secret accepted, in bytes.
const MIN_SECRET_BYTES: usize = 32;
/// Weights of the ISO 7064 MOD 11-2 check of a resident identity number.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters by remainder.
const ID_CHECK: [u8; 11] = *b"10X98765432";

/// Why a patient ID or the secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatientKeyError {
    /// The secret file could not be read.
    #[error("cannot read the patient-key secret {path}: {source}; create it with `yilian ca init` and copy it to every node of the region")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The secret is too short.
    #[error("the patient-key secret {0} is shorter than {MIN_SECRET_BYTES} bytes; use the file `yilian ca init` wrote")]
    ShortSecret(String),
    /// The ID is not a valid resident identity number.
    #[error("patient_id is not a valid 18-character resident identity number: {0}")]
    BadId(&'static str),
}

/// Computes patient keys with the region's secret.
#[derive(Clone)]
pub struct PatientKeyer {
    secret: Vec<u8>,
}

impl PatientKeyer {
    /// Load the secret from `path` (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, PatientKeyError> {
        let text = std::fs::read(path)
            .map_err(|source| PatientKeyError::Read { path: path.display().to_string(), source })?;
        let secret = text.trim_ascii().to_vec();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(PatientKeyError::ShortSecret(path.display().to_string()));
        }
        Ok(Self { secret })
    }

    /// A 32-byte secret for another purpose named by `label` (e.g. de-identification), derived
    /// from the region secret so every node of the region derives the same one.
    pub fn derived_secret(&self, label: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"yilian-derived-secret-v1:");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The key of the patient with resident identity number `raw_id`.
    pub fn key_for(&self, raw_id: &str) -> Result<PatientKey, PatientKeyError> {
        let id = normalise_resident_id(raw_id)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|_| PatientKeyError::BadId("internal"))?;
        mac.update(b"yilian-patient-key-v1:");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(PatientKey(digest.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

/// Trim and upper-case an 18-character resident identity number and check its check digit.
fn normalise_resident_id(raw: &str) -> Result<String, PatientKeyError> {
    let id = raw.trim().to_ascii_uppercase();
    let bytes = id.as_bytes();
    if bytes.len() != 18 {
        return Err(PatientKeyError::BadId("it must have 18 characters"));
    }
    if !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err(PatientKeyError::BadId("the first 17 characters must be digits"));
    }
    let sum: u32 = bytes[..17].iter().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    if bytes[17] != ID_CHECK[(sum % 11) as usize] {
        return Err(PatientKeyError::BadId("the check character does not match; check for a typo"));
    }
    Ok(id)
}

/// Complete a 17-digit prefix into a valid resident identity number (used by the demo and tests).
pub fn with_check_character(first17: &str) -> Option<String> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = bytes.iter().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(format!("{first17}{}", ID_CHECK[(sum % 11) as usize] as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyer(secret: &str) -> PatientKeyer {
        PatientKeyer { secret: secret.as_bytes().to_vec() }
    }

    #[test]
    fn same_id_same_key_and_different_secret_different_key() {
        let id = with_check_character("11010519491231002").expect("id");
        assert_eq!(id, "11010519491231002X");
        let a = keyer(&"a".repeat(32));
        let k1 = a.key_for(&id).expect("key");
        let k2 = a.key_for(&format!("  {}  ", id.to_lowercase())).expect("key");
        assert_eq!(k1, k2);
        k1.validate().expect("well-formed");
        assert!(!k1.0.contains(&id));
        assert_ne!(keyer(&"b".repeat(32)).key_for(&id).expect("key"), k1);
    }

    #[test]
    fn malformed_ids_are_refused() {
        let a = keyer(&"a".repeat(32));
        assert!(a.key_for("123").is_err());
        assert!(a.key_for("11010519491231002A").is_err());
        assert!(a.key_for("110105194912310021").is_err());
    }
}
