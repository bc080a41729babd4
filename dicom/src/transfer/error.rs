//! Typed errors of the transfer protocols. Each message says what went wrong and what to do.

use crate::digest::Digest;
use crate::error::StoreError;
use std::path::PathBuf;

/// The persisted transfer state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error(
    "transfer state database {path}: {reason}; check free space and permissions, or remove the \
     directory to drop all unfinished transfers and start them again"
)]
pub struct StateError {
    /// The database file.
    pub path: PathBuf,
    /// What failed.
    pub reason: String,
}

/// A [`Fetcher`](super::Fetcher) could not be opened or a job could not be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The configuration is out of range.
    #[error("invalid fetch configuration: {reason}")]
    Config {
        /// What is wrong and the allowed range.
        reason: String,
    },
    /// The job cannot be run as given.
    #[error("fetch job {job:?} refused: {reason}")]
    InvalidJob {
        /// The job id.
        job: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file or directory of the transfer area could not be used.
    #[error("cannot {op} {path}: {source}; check free space and permissions of the transfer directory")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The persisted state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An internal task failed (a bug).
    #[error("an internal fetch task failed: {0}; this is a bug, please report it with the log")]
    Task(String),
    /// The fetcher has been shut down.
    #[error("the fetcher has been shut down; open it again to continue its jobs")]
    Stopped,
}

/// Why a [`ChunkSource`](super::ChunkSource) cannot serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// This node does not hold the object.
    #[error("object {digest} is not held by this node; fetch it from another node that holds it")]
    NotHeld {
        /// The object asked for.
        digest: Digest,
    },
    /// The request is out of range (bad chunk size or index).
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// Reading the object failed on this node.
    #[error("cannot read object {digest} on this node: {reason}; try another source")]
    Read {
        /// The object.
        digest: Digest,
        /// What failed.
        reason: String,
    },
}

/// Why [`upload_file`](super::upload_file) did not get a file accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The local file could not be read.
    #[error("cannot read {path}: {source}; check that the file exists and is readable")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file changed while it was being uploaded.
    #[error(
        "{path} changed while it was being uploaded; wait until it is fully written, then upload it again"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// The upload options are out of range.
    #[error("invalid upload options: {reason}")]
    Options {
        /// What is wrong and the allowed range.
        reason: String,
    },
    /// The node refused the file or a chunk.
    #[error("the node refused the upload: {reason}")]
    Refused {
        /// The node's reason.
        reason: String,
    },
    /// The connection failed; chunks already acknowledged are kept by the node.
    #[error("connection to the node failed: {reason}; run the upload again, it resumes where it stopped")]
    Connection {
        /// What failed.
        reason: String,
    },
    /// The node answered something the protocol does not allow here.
    #[error("unexpected answer from the node: {reason}; check that client and node versions match")]
    Protocol {
        /// What arrived.
        reason: String,
    },
}
