//! The receiving side of clinic uploads: announced files are received chunk by chunk into
//! partial files that survive restarts; only chunks the node lacks are asked for; a complete
//! file is checked whole and handed to the caller's [`UploadSink`].

use super::chunking::{
    chunk_count, chunk_span, create_partial, remove_if_present, write_chunk_durably, Bitmap,
};
use super::error::StateError;
use super::protocol::{
    serve_requests, BeginUpload, ChunkList, UploadMeta, UploadRequest, UploadResponse, DIGEST_WIRE_BYTES,
    FRAME_OVERHEAD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
use super::state::StateDb;
use crate::digest::Digest;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use yilian_referral::codec;

/// Group under which uploads are recorded in the state database.
const GROUP: &str = "upload";
/// Requests handled at once on one connection; further streams wait (bounded memory).
const MAX_CONCURRENT_REQUESTS: usize = 8;
/// Files one connection may have announced at once.
const MAX_FILES_PER_CONNECTION: usize = 1024;

/// What a node accepts from uploading clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest file accepted, in bytes (default 4 GiB).
    pub max_file_size: u64,
    /// Most chunks one file may be cut into (default 65 536).
    pub max_chunks: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { max_file_size: 4 << 30, max_chunks: 1 << 16 }
    }
}

/// Counters since the receiver was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadCounters {
    /// Files announced.
    pub begins: u64,
    /// Chunks verified and written.
    pub chunks_accepted: u64,
    /// Chunks refused (wrong length or hash).
    pub chunks_refused: u64,
    /// Files the sink accepted.
    pub files_accepted: u64,
    /// Files refused at the end (digest mismatch or sink refusal).
    pub files_refused: u64,
}

/// Takes complete, verified uploaded files (the node validates, stores and files them).
pub trait UploadSink: Send + Sync + 'static {
    /// Decide whether `meta` (uploader, token, case) may upload at all, before any chunk is
    /// taken; returns the meta the upload is recorded under (e.g. with `actor` set to the
    /// authenticated user), or the refusal the client is shown. By default everyone may.
    fn admit(&self, meta: UploadMeta) -> impl Future<Output = Result<UploadMeta, String>> + Send {
        std::future::ready(Ok(meta))
    }

    /// Take the verified file at `file` (it is removed afterwards unless the sink moved it);
    /// returns the per-file success message, or the refusal the client is shown.
    fn accept(
        &self,
        file: PathBuf,
        digest: Digest,
        meta: UploadMeta,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

#[derive(Debug)]
struct Partial {
    list: ChunkList,
    bitmap: Bitmap,
    path: PathBuf,
}

#[derive(Debug, Default)]
struct Counters {
    begins: AtomicU64,
    chunks_accepted: AtomicU64,
    chunks_refused: AtomicU64,
    files_accepted: AtomicU64,
    files_refused: AtomicU64,
}

/// The persisted state of a node's incoming uploads. One per directory.
#[derive(Debug)]
pub struct UploadReceiver {
    db: Arc<StateDb>,
    partial_dir: PathBuf,
    limits: UploadLimits,
    partials: Mutex<HashMap<Digest, Partial>>,
    finishing: Mutex<HashSet<Digest>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn refused(reason: impl Into<String>) -> UploadResponse {
    UploadResponse::Refused { reason: reason.into() }
}

impl UploadReceiver {
    /// Open (creating if needed) the upload state in `dir`, keeping partial uploads whose files
    /// are intact.
    pub fn open(dir: &Path, limits: UploadLimits) -> Result<Self, StateError> {
        let partial_dir = dir.join("partials");
        std::fs::create_dir_all(&partial_dir)
            .map_err(|e| StateError { path: partial_dir.clone(), reason: e.to_string() })?;
        let db = StateDb::open(&dir.join("uploads.redb"))?;
        let mut partials = HashMap::new();
        for (digest, record) in db.partials(GROUP)? {
            let n = record.list.hashes.len() as u32;
            let path = partial_dir.join(format!("{}.part", digest.to_hex()));
            let bitmap = if record.bitmap.is_empty() {
                Some(Bitmap::new(n))
            } else {
                Bitmap::from_bytes(record.bitmap, n)
            };
            let intact = std::fs::metadata(&path).is_ok_and(|m| m.len() == record.list.size);
            match bitmap {
                Some(bitmap) if intact => {
                    partials.insert(digest, Partial { list: record.list, bitmap, path });
                }
                _ => db.forget_partial(GROUP, &digest)?,
            }
        }
        remove_strays(&partial_dir, &partials)?;
        Ok(UploadReceiver {
            db: Arc::new(db),
            partial_dir,
            limits,
            partials: Mutex::new(partials),
            finishing: Mutex::new(HashSet::new()),
            counters: Counters::default(),
        })
    }

    /// Counters since the receiver was opened.
    pub fn counters(&self) -> UploadCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        UploadCounters {
            begins: get(&c.begins),
            chunks_accepted: get(&c.chunks_accepted),
            chunks_refused: get(&c.chunks_refused),
            files_accepted: get(&c.files_accepted),
            files_refused: get(&c.files_refused),
        }
    }

    fn max_request_bytes(&self) -> usize {
        let begin = (self.limits.max_chunks as usize).saturating_mul(DIGEST_WIRE_BYTES);
        begin.max(MAX_CHUNK_SIZE as usize).saturating_add(FRAME_OVERHEAD)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateDb) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| e.to_string())?
    }

    fn check_begin(&self, b: &BeginUpload) -> Result<(), String> {
        let limits = &self.limits;
        if b.size == 0 {
            return Err("the file is empty (0 bytes); check the export and upload the file again".into());
        }
        if b.size > limits.max_file_size {
            return Err(format!(
                "the file is {} bytes, over the {}-byte limit for one upload; export smaller files \
                 (e.g. one image per file) or ask the node administrator to raise the limit",
                b.size, limits.max_file_size
            ));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&b.chunk_size) {
            return Err(format!(
                "chunk size {} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes; use a client that matches this node",
                b.chunk_size
            ));
        }
        let n = chunk_count(b.size, b.chunk_size);
        if n > u64::from(limits.max_chunks) {
            return Err(format!(
                "the file would be sent in {n} chunks, over the limit of {}; use a larger chunk size",
                limits.max_chunks
            ));
        }
        if b.chunk_hashes.len() as u64 != n {
            return Err(format!(
                "{} chunk hashes were announced but a {}-byte file has {n} chunks; the client is broken",
                b.chunk_hashes.len(),
                b.size
            ));
        }
        Ok(())
    }

    async fn begin(&self, b: BeginUpload) -> Result<UploadResponse, String> {
        self.counters.begins.fetch_add(1, Ordering::Relaxed);
        self.check_begin(&b)?;
        if lock(&self.finishing).contains(&b.digest) {
            return Err("another upload of the same file is being finished; retry in a moment".into());
        }
        let key = done_key(&b.digest, &b.meta)?;
        if let Some(message) = self.blocking(move |db| db.done(&key).map_err(|e| e.to_string())).await? {
            return Ok(UploadResponse::AlreadyStored { message });
        }
        let list = ChunkList { size: b.size, chunk_size: b.chunk_size, hashes: b.chunk_hashes };
        if let Some(p) = lock(&self.partials).get(&b.digest) {
            if p.list == list {
                return Ok(UploadResponse::Have { bitmap: p.bitmap.as_bytes().to_vec() });
            }
        }
        let path = self.partial_dir.join(format!("{}.part", b.digest.to_hex()));
        let (digest, record, file) = (b.digest, list.clone(), path.clone());
        self.blocking(move |db| {
            create_partial(&file, record.size)
                .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
            db.put_list(GROUP, &digest, &record).map_err(|e| e.to_string())
        })
        .await?;
        let bitmap = Bitmap::new(list.hashes.len() as u32);
        let reply = UploadResponse::Have { bitmap: bitmap.as_bytes().to_vec() };
        lock(&self.partials).insert(b.digest, Partial { list, bitmap, path });
        Ok(reply)
    }

    async fn chunk(&self, digest: Digest, index: u32, bytes: Vec<u8>) -> Result<UploadResponse, String> {
        let found = lock(&self.partials).get(&digest).map(|p| {
            let hash = p.list.hashes.get(index as usize).copied();
            let (offset, len) = chunk_span(p.list.size, p.list.chunk_size, index);
            (hash, offset, len, p.path.clone(), p.bitmap.get(index))
        });
        let Some((hash, offset, len, path, held)) = found else {
            return Err(format!("no upload of {digest} is in progress; send Begin again"));
        };
        let Some(hash) = hash else {
            return Err(format!("chunk {index} is out of range for {digest}; the client is broken"));
        };
        if held {
            return Ok(UploadResponse::ChunkAccepted);
        }
        if bytes.len() != len || Digest::of_bytes(&bytes) != hash {
            self.counters.chunks_refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "chunk {index} of {digest} does not match the hash announced in Begin; it was damaged on \
                 the way, send it again"
            ));
        }
        self.blocking(move |_| {
            write_chunk_durably(&path, offset, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        })
        .await?;
        let snapshot = {
            let mut partials = lock(&self.partials);
            let Some(p) = partials.get_mut(&digest) else {
                return Err(format!("the upload of {digest} was reset; send Begin again"));
            };
            p.bitmap.set(index);
            p.bitmap.as_bytes().to_vec()
        };
        self.blocking(move |db| db.put_bitmap(GROUP, &digest, &snapshot).map_err(|e| e.to_string())).await?;
        self.counters.chunks_accepted.fetch_add(1, Ordering::Relaxed);
        Ok(UploadResponse::ChunkAccepted)
    }

    async fn finish<U: UploadSink>(
        &self,
        sink: &U,
        digest: Digest,
        meta: UploadMeta,
    ) -> Result<UploadResponse, String> {
        let path = {
            let partials = lock(&self.partials);
            let Some(p) = partials.get(&digest) else {
                return Err(format!("no upload of {digest} is in progress; send Begin again"));
            };
            let missing = p.bitmap.len() - p.bitmap.count();
            if missing > 0 {
                return Err(format!(
                    "{missing} chunks of {digest} are still missing; send them, then Finish again"
                ));
            }
            p.path.clone()
        };
        if !lock(&self.finishing).insert(digest) {
            return Err("another upload of the same file is being finished; retry in a moment".into());
        }
        let result = self.finish_held(sink, digest, meta, path).await;
        lock(&self.finishing).remove(&digest);
        let counter =
            if result.is_ok() { &self.counters.files_accepted } else { &self.counters.files_refused };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn finish_held<U: UploadSink>(
        &self,
        sink: &U,
        digest: Digest,
        meta: UploadMeta,
        path: PathBuf,
    ) -> Result<UploadResponse, String> {
        lock(&self.partials).remove(&digest);
        let file = path.clone();
        let whole = self
            .blocking(move |_| {
                let f =
                    std::fs::File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
                Digest::of_reader(f)
                    .map(|(d, _)| d)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))
            })
            .await?;
        let verdict = if whole == digest {
            sink.accept(path.clone(), digest, meta.clone()).await
        } else {
            Err(format!("the assembled file hashes to {whole}, not {digest}; upload the file again"))
        };
        let key = done_key(&digest, &meta)?;
        let message = verdict.clone().ok();
        // The partial and the completion record change in one transaction, and the file goes
        // only after it: a crash at any point leaves a resumable partial or a completed file.
        self.blocking(move |db| {
            let done = message.as_deref().map(|m| (key.as_str(), m));
            db.finish_partial(GROUP, &digest, done).map_err(|e| e.to_string())?;
            remove_if_present(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
        })
        .await?;
        verdict.map(|message| UploadResponse::Stored { message })
    }
}

/// Remove files in `dir` that are no partial's (left by a crash after their upload finished).
fn remove_strays(dir: &Path, partials: &HashMap<Digest, Partial>) -> Result<(), StateError> {
    let err = |e: std::io::Error| StateError { path: dir.to_owned(), reason: e.to_string() };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if !partials.values().any(|p| p.path == path) {
            remove_if_present(&path).map_err(err)?;
        }
    }
    Ok(())
}

/// Key under which an accepted (file, case, uploader) is remembered (the token is not part of
/// it: a new session of the same uploader finds the file already stored).
fn done_key(digest: &Digest, meta: &UploadMeta) -> Result<String, String> {
    let bytes = codec::encode(&(digest, &meta.case_id, &meta.actor)).map_err(|e| e.to_string())?;
    Ok(Digest::of_bytes(&bytes).to_hex())
}

/// Answer upload requests on `conn` until the connection closes, handing complete verified
/// files to `sink`.
pub async fn serve_upload_connection<U: UploadSink>(
    conn: quinn::Connection,
    uploads: Arc<UploadReceiver>,
    sink: Arc<U>,
) {
    let session: Arc<Mutex<HashMap<Digest, UploadMeta>>> = Arc::default();
    let remote = conn.remote_address();
    let max_request_bytes = uploads.max_request_bytes();
    serve_requests(conn, "upload", MAX_CONCURRENT_REQUESTS, max_request_bytes, move |request| {
        let (uploads, sink, session) = (uploads.clone(), sink.clone(), session.clone());
        async move {
            let response = match request {
                Ok(request) => handle(&uploads, sink.as_ref(), &session, request).await,
                Err(e) => refused(format!("unreadable upload request: {e}")),
            };
            if let UploadResponse::Refused { reason } = &response {
                tracing::info!(%remote, %reason, "upload request refused");
            }
            response
        }
    })
    .await
}

async fn handle<U: UploadSink>(
    uploads: &UploadReceiver,
    sink: &U,
    session: &Mutex<HashMap<Digest, UploadMeta>>,
    request: UploadRequest,
) -> UploadResponse {
    let result = match request {
        UploadRequest::Begin(mut b) => {
            b.meta = match sink.admit(b.meta).await {
                Ok(meta) => meta,
                Err(reason) => return refused(reason),
            };
            let (digest, meta) = (b.digest, b.meta.clone());
            let answer = uploads.begin(b).await;
            if answer.is_ok() {
                let mut s = lock(session);
                if s.len() >= MAX_FILES_PER_CONNECTION && !s.contains_key(&digest) {
                    return refused("too many files announced on one connection; reconnect and continue");
                }
                s.insert(digest, meta);
            }
            answer
        }
        UploadRequest::Chunk { digest, index, bytes } => {
            if lock(session).contains_key(&digest) {
                uploads.chunk(digest, index, bytes).await
            } else {
                Err(format!("send Begin for {digest} on this connection before its chunks"))
            }
        }
        UploadRequest::Finish { digest } => {
            let meta = lock(session).get(&digest).cloned();
            match meta {
                Some(meta) => uploads.finish(sink, digest, meta).await,
                None => Err(format!("send Begin for {digest} on this connection before Finish")),
            }
        }
    };
    result.unwrap_or_else(refused)
}
