//! Settings of the storage SCP.

use super::error::DimseError;
use crate::ingest::DEFAULT_MAX_FILE_SIZE;
use std::path::PathBuf;
use std::time::Duration;

/// Smallest maximum PDU length DICOM allows (PS3.8 D.1: 1024 bytes including the PDU header).
pub const MIN_PDU_LENGTH: u32 = dicom_ul::pdu::MINIMUM_PDU_SIZE;
/// Largest maximum PDU length this SCP agrees to receive: 16 MiB (one PDU is held in memory).
pub const MAX_PDU_LENGTH: u32 = 16 << 20;

/// How the storage SCP behaves. `Default` gives AE title `YILIAN`, 64 KiB PDUs, 32 concurrent
/// associations, the ingest size limit per instance, a temp directory under the system's, and a
/// 60 s idle timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpConfig {
    /// This SCP's AE title; an association calling another title is rejected.
    pub ae_title: String,
    /// Largest PDU this SCP accepts, in bytes (without the 6-byte PDU header); sent to peers.
    pub max_pdu_length: u32,
    /// Most associations served at once; more are rejected with "local limit exceeded".
    pub max_associations: usize,
    /// Largest Part-10 file (preamble, file meta group and data set) accepted for one instance.
    pub max_instance_bytes: u64,
    /// Where incoming instances are written while they arrive; created if missing.
    pub tmp_dir: PathBuf,
    /// An association that sends nothing for this long is aborted.
    pub idle_timeout: Duration,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            ae_title: "YILIAN".to_owned(),
            max_pdu_length: 64 << 10,
            max_associations: 32,
            max_instance_bytes: DEFAULT_MAX_FILE_SIZE,
            tmp_dir: std::env::temp_dir().join("yilian-dimse"),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl ScpConfig {
    /// Check every setting is usable.
    pub fn validate(&self) -> Result<(), DimseError> {
        let invalid = |reason: String| Err(DimseError::InvalidConfig { reason });
        let ae = &self.ae_title;
        if ae.trim().is_empty() || ae.len() > 16 || !ae.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            return invalid(format!(
                "AE title {ae:?} is not usable: give 1 to 16 printable ASCII characters without backslashes"
            ));
        }
        if !(MIN_PDU_LENGTH..=MAX_PDU_LENGTH).contains(&self.max_pdu_length) {
            return invalid(format!(
                "max PDU length {} is out of range: use {MIN_PDU_LENGTH} to {MAX_PDU_LENGTH}",
                self.max_pdu_length
            ));
        }
        if self.max_associations == 0 {
            return invalid("max associations is 0: allow at least 1".to_owned());
        }
        if self.max_instance_bytes == 0 {
            return invalid("max instance bytes is 0: allow at least one byte".to_owned());
        }
        if self.idle_timeout.is_zero() {
            return invalid("idle timeout is 0: give a positive duration".to_owned());
        }
        Ok(())
    }
}
