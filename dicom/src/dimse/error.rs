//! Typed errors of the storage SCP.

use std::path::PathBuf;
use std::time::Duration;

/// The storage SCP could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DimseError {
    /// A setting of [`ScpConfig`](super::ScpConfig) is out of range.
    #[error("invalid DICOM SCP settings: {reason}")]
    InvalidConfig {
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The temp directory could not be created.
    #[error(
        "cannot create the DICOM receive directory {path}: {source}; check free space and \
         permissions, or configure another directory"
    )]
    TmpDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why an association ended other than by an orderly release (logged, never shown to peers).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AssociationError {
    /// Reading from or writing to the connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection without releasing the association.
    #[error("the peer closed the connection without releasing the association")]
    Closed,
    /// The peer sent nothing for the idle timeout.
    #[error("the peer sent nothing for {0:?}")]
    IdleTimeout(Duration),
    /// The peer could not take a PDU within the idle timeout.
    #[error("the peer did not accept data for {0:?}")]
    WriteTimeout(Duration),
    /// The bytes received are not a valid PDU.
    #[error("malformed PDU: {0}")]
    MalformedPdu(String),
    /// A valid PDU arrived where the protocol does not allow it.
    #[error("unexpected PDU: {0}")]
    UnexpectedPdu(String),
    /// The DIMSE messages broke the protocol (bad command set, data on the wrong context, ...).
    #[error("DIMSE protocol violation: {0}")]
    Protocol(String),
    /// The peer aborted the association.
    #[error("the peer aborted the association")]
    PeerAborted,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Shutdown,
}
