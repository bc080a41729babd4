//! The uploading side of clinic uploads: announce a file, send only the chunks the node lacks
//! (several at once), then ask the node to check and accept it.

use super::chunking::{chunk_span, hash_file_chunks, read_span, Bitmap};
use super::error::UploadError;
use super::protocol::{
    exchange, BeginUpload, FrameError, UploadMeta, UploadRequest, UploadResponse, DEFAULT_CHUNK_SIZE,
    FRAME_OVERHEAD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
use super::throttle::TokenBucket;
use crate::digest::Digest;
use std::path::{Path, PathBuf};
use tokio::task::JoinSet;

/// How a file is uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// Bytes per chunk ([`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`]; default 1 MiB). Changing it
    /// between runs restarts a partial upload.
    pub chunk_size: u32,
    /// Chunks in flight at once (1..=64; default 4).
    pub streams: usize,
    /// Bytes per second sent at most (a clinic sharing a weak link); `None` for no cap.
    pub bandwidth: Option<u64>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions { chunk_size: DEFAULT_CHUNK_SIZE, streams: 4, bandwidth: None }
    }
}

/// The result of an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// SHA-256 of the file.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Chunks the file is cut into.
    pub chunks_total: u32,
    /// Chunks sent in this run.
    pub chunks_sent: u32,
    /// Chunks the node already held from an earlier run.
    pub chunks_skipped: u32,
    /// The node had already accepted this file for this case; nothing was sent.
    pub already_stored: bool,
    /// The node's per-file result message.
    pub message: String,
}

fn frame_error(e: FrameError) -> UploadError {
    match e {
        FrameError::Stream(reason) => UploadError::Connection { reason },
        other => UploadError::Protocol { reason: other.to_string() },
    }
}

fn unexpected(what: &str, answer: &UploadResponse) -> UploadError {
    let name = match answer {
        UploadResponse::Have { .. } => "Have",
        UploadResponse::AlreadyStored { .. } => "AlreadyStored",
        UploadResponse::ChunkAccepted => "ChunkAccepted",
        UploadResponse::Stored { .. } => "Stored",
        UploadResponse::Refused { .. } => "Refused",
    };
    UploadError::Protocol { reason: format!("{name} in answer to {what}") }
}

/// Upload `path` with default options; `progress` is called with the bytes the node has
/// acknowledged so far.
pub async fn upload_file(
    conn: &quinn::Connection,
    path: &Path,
    meta: UploadMeta,
    progress: impl Fn(u64),
) -> Result<UploadOutcome, UploadError> {
    upload_file_with(conn, path, meta, &UploadOptions::default(), progress).await
}

/// Upload `path` with `opts`; `progress` is called with the bytes the node has acknowledged so
/// far. Run it again after a failure: chunks the node acknowledged are not sent again.
pub async fn upload_file_with(
    conn: &quinn::Connection,
    path: &Path,
    meta: UploadMeta,
    opts: &UploadOptions,
    progress: impl Fn(u64),
) -> Result<UploadOutcome, UploadError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&opts.chunk_size)
        || !(1..=64).contains(&opts.streams)
        || opts.bandwidth == Some(0)
    {
        return Err(UploadError::Options {
            reason: format!(
                "chunk size {} (use {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}), streams {} (use 1 to 64) and \
                 bandwidth {:?} bytes/s (use a positive rate or none)",
                opts.chunk_size, opts.streams, opts.bandwidth
            ),
        });
    }
    let throttle = opts.bandwidth.map(|rate| TokenBucket::new(rate, u64::from(opts.chunk_size).max(rate)));
    let chunk_size = opts.chunk_size;
    let file = path.to_owned();
    let (digest, size, hashes) = tokio::task::spawn_blocking(move || hash_file_chunks(&file, chunk_size))
        .await
        .map_err(|e| UploadError::Read { path: path.to_owned(), source: std::io::Error::other(e) })?
        .map_err(|source| UploadError::Read { path: path.to_owned(), source })?;
    let n = u32::try_from(hashes.len()).map_err(|_| UploadError::Options {
        reason: "the file has too many chunks; use a larger chunk size".into(),
    })?;
    let begin =
        UploadRequest::Begin(BeginUpload { digest, size, chunk_size, chunk_hashes: hashes.clone(), meta });
    let max_reply = (n as usize / 8).saturating_add(FRAME_OVERHEAD);
    let held = match exchange(conn, &begin, max_reply).await.map_err(frame_error)? {
        UploadResponse::Have { bitmap } => Bitmap::from_bytes(bitmap, n).ok_or_else(|| {
            UploadError::Protocol { reason: "the node's chunk bitmap has the wrong size".into() }
        })?,
        UploadResponse::AlreadyStored { message } => {
            progress(size);
            return Ok(UploadOutcome {
                digest,
                size,
                chunks_total: n,
                chunks_sent: 0,
                chunks_skipped: n,
                already_stored: true,
                message,
            });
        }
        UploadResponse::Refused { reason } => return Err(UploadError::Refused { reason }),
        other => return Err(unexpected("Begin", &other)),
    };
    let mut acked: u64 =
        (0..n).filter(|&i| held.get(i)).map(|i| chunk_span(size, chunk_size, i).1 as u64).sum();
    progress(acked);
    let missing: Vec<u32> = held.missing().collect();
    let mut in_flight = JoinSet::new();
    for &index in &missing {
        if in_flight.len() >= opts.streams {
            acked += joined(in_flight.join_next().await)?;
            progress(acked);
        }
        let (offset, len) = chunk_span(size, chunk_size, index);
        if let Some(bucket) = &throttle {
            bucket.acquire(len as u64).await;
        }
        let chunk =
            ChunkToSend { path: path.to_owned(), digest, index, offset, len, hash: hashes[index as usize] };
        in_flight.spawn(send_chunk(conn.clone(), chunk));
    }
    while let Some(done) = in_flight.join_next().await {
        acked += joined(Some(done))?;
        progress(acked);
    }
    let message =
        match exchange(conn, &UploadRequest::Finish { digest }, FRAME_OVERHEAD).await.map_err(frame_error)? {
            UploadResponse::Stored { message } => message,
            UploadResponse::Refused { reason } => return Err(UploadError::Refused { reason }),
            other => return Err(unexpected("Finish", &other)),
        };
    Ok(UploadOutcome {
        digest,
        size,
        chunks_total: n,
        chunks_sent: missing.len() as u32,
        chunks_skipped: n - missing.len() as u32,
        already_stored: false,
        message,
    })
}

fn joined(
    result: Option<Result<Result<u64, UploadError>, tokio::task::JoinError>>,
) -> Result<u64, UploadError> {
    match result {
        Some(Ok(sent)) => sent,
        Some(Err(e)) => Err(UploadError::Connection { reason: format!("chunk sender stopped: {e}") }),
        None => Ok(0),
    }
}

struct ChunkToSend {
    path: PathBuf,
    digest: Digest,
    index: u32,
    offset: u64,
    len: usize,
    hash: Digest,
}

/// Read one chunk, check it still matches the hash announced, send it; returns its length.
async fn send_chunk(conn: quinn::Connection, c: ChunkToSend) -> Result<u64, UploadError> {
    let path = c.path.clone();
    let (offset, len) = (c.offset, c.len);
    let bytes = tokio::task::spawn_blocking(move || read_span(&path, offset, len))
        .await
        .map_err(|e| UploadError::Read { path: c.path.clone(), source: std::io::Error::other(e) })?
        .map_err(|source| UploadError::Read { path: c.path.clone(), source })?;
    if Digest::of_bytes(&bytes) != c.hash {
        return Err(UploadError::FileChanged { path: c.path });
    }
    let request = UploadRequest::Chunk { digest: c.digest, index: c.index, bytes };
    match exchange(&conn, &request, FRAME_OVERHEAD).await.map_err(frame_error)? {
        UploadResponse::ChunkAccepted => Ok(c.len as u64),
        UploadResponse::Refused { reason } => Err(UploadError::Refused { reason }),
        other => Err(unexpected("Chunk", &other)),
    }
}
