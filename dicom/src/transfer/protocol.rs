//! Wire messages of the fetch and upload protocols, and their framing on QUIC streams.
//!
//! Every exchange is one bidirectional stream: the client writes one request frame and
//! finishes its side, the server answers with one response frame. A frame is a 4-byte
//! big-endian length followed by a value encoded with [`yilian_referral::codec`].

use crate::digest::Digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;
use yilian_referral::codec;

/// ALPN protocol of imaging connections (node-to-node fetch and clinic upload).
pub const ALPN_DICOM: &[u8] = b"yilian-dicom/1";
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size accepted: 4 KiB.
pub const MIN_CHUNK_SIZE: u32 = 4 << 10;
/// Largest chunk size accepted: 16 MiB.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Priority of a STAT (urgent) job; higher priorities are served first.
pub const PRIORITY_STAT: u8 = 3;
/// Priority of a routine job.
pub const PRIORITY_ROUTINE: u8 = 1;

/// Room for the envelope around a frame's payload (enum tag, lengths, digests, metadata).
pub(crate) const FRAME_OVERHEAD: usize = 64 << 10;
/// Encoded size of one [`Digest`] (length prefix + 64 hex digits).
pub(crate) const DIGEST_WIRE_BYTES: usize = 8 + 64;

/// Names a node that can serve objects; the caller's [`Connector`](super::Connector) maps it to
/// an address (for Yilian nodes, the node id in decimal).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceId(pub String);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The per-chunk SHA-256 hashes of one object cut at `chunk_size` bytes (the last chunk may
/// be shorter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// The object's size in bytes.
    pub size: u64,
    /// The chunk size the list was cut at.
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order.
    pub hashes: Vec<Digest>,
}

/// A request from a fetching node to a node holding objects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FetchRequest {
    /// Ask for the chunk list of an object.
    ChunkList {
        /// The object.
        digest: Digest,
        /// The chunk size to cut it at.
        chunk_size: u32,
    },
    /// Ask for the bytes of one chunk.
    Chunk {
        /// The object.
        digest: Digest,
        /// The chunk size the object is cut at.
        chunk_size: u32,
        /// Which chunk (0-based).
        index: u32,
    },
}

/// The answer to a [`FetchRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FetchResponse {
    /// The object's chunk list.
    ChunkList(ChunkList),
    /// The bytes of the chunk asked for.
    Chunk(Vec<u8>),
    /// The request was refused; the text says why and what to do.
    Refused(String),
}

/// Who uploads a file and which case it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UploadMeta {
    /// The Yilian case the file is attached to.
    pub case_id: String,
    /// Who uploads it (user or clinic account); a node that checks `token` replaces it with the
    /// authenticated user.
    pub actor: String,
    /// The uploader's bearer token (session or API token), checked by the receiving node's
    /// [`UploadSink::admit`](super::UploadSink::admit); never stored.
    pub token: Option<String>,
}

/// Opening message of an upload: what the file is and how it is cut.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeginUpload {
    /// SHA-256 of the whole file.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The chunk size it is cut at.
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order.
    pub chunk_hashes: Vec<Digest>,
    /// Case and uploader.
    pub meta: UploadMeta,
}

/// A request from an uploading client to a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UploadRequest {
    /// Announce a file; answered with [`UploadResponse::Have`] or [`UploadResponse::AlreadyStored`].
    Begin(BeginUpload),
    /// Send one chunk of an announced file.
    Chunk {
        /// The file.
        digest: Digest,
        /// Which chunk (0-based).
        index: u32,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Every chunk has been sent: check the file and hand it over.
    Finish {
        /// The file.
        digest: Digest,
    },
}

/// The answer to an [`UploadRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UploadResponse {
    /// Which chunks the node already holds (bit `i` of byte `i / 8`, least significant first).
    Have {
        /// The bitmap of held chunks.
        bitmap: Vec<u8>,
    },
    /// This exact file was already accepted for this case; nothing needs to be sent.
    AlreadyStored {
        /// The result message given when it was accepted.
        message: String,
    },
    /// The chunk was verified and written durably.
    ChunkAccepted,
    /// The file was verified and accepted.
    Stored {
        /// The node's per-file result message.
        message: String,
    },
    /// The request was refused; the text says why and what to do.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Why a frame could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream or connection failed.
    #[error("connection problem: {0}")]
    Stream(String),
    /// The peer announced a frame larger than allowed.
    #[error("peer sent a {len}-byte message, over the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The frame could not be encoded or decoded.
    #[error("malformed message: {0}")]
    Codec(String),
}

/// Write one length-prefixed frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, value: &T) -> Result<(), FrameError> {
    let body = codec::encode(value).map_err(|e| FrameError::Codec(e.to_string()))?;
    let len = u32::try_from(body.len())
        .map_err(|_| FrameError::TooLarge { len: body.len() as u64, max: u32::MAX as usize })?;
    send.write_all(&len.to_be_bytes()).await.map_err(|e| FrameError::Stream(e.to_string()))?;
    send.write_all(&body).await.map_err(|e| FrameError::Stream(e.to_string()))
}

/// Read one length-prefixed frame of at most `max` bytes.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| FrameError::Stream(e.to_string()))?;
    let len = u32::from_be_bytes(len);
    if len as usize > max {
        return Err(FrameError::TooLarge { len: len.into(), max });
    }
    let mut body = vec![0u8; len as usize];
    recv.read_exact(&mut body).await.map_err(|e| FrameError::Stream(e.to_string()))?;
    codec::decode(&body).map_err(|e| FrameError::Codec(e.to_string()))
}

/// Serve one request per bidirectional stream of `conn` until the connection closes, at most
/// `max_concurrent` at once (further streams wait, so memory stays bounded). `answer` turns each
/// request frame (at most `max_request_bytes`), or the reason it could not be read, into the
/// response written back on the same stream.
pub async fn serve_requests<Req, Resp, F, Fut>(
    conn: quinn::Connection,
    what: &'static str,
    max_concurrent: usize,
    max_request_bytes: usize,
    answer: F,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(Result<Req, FrameError>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_concurrent));
    let remote = conn.remote_address();
    let answer = Arc::new(answer);
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "{what} connection ended");
                return;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let response = answer(read_frame::<Req>(&mut recv, max_request_bytes).await).await;
            if write_frame(&mut send, &response).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}

/// Send `request` on a new stream of `conn` and read the answer (at most `max_reply` bytes).
pub async fn exchange<Req: Serialize, Resp: DeserializeOwned>(
    conn: &quinn::Connection,
    request: &Req,
    max_reply: usize,
) -> Result<Resp, FrameError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| FrameError::Stream(e.to_string()))?;
    write_frame(&mut send, request).await?;
    send.finish().map_err(|e| FrameError::Stream(e.to_string()))?;
    read_frame(&mut recv, max_reply).await
}
