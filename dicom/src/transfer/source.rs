//! What a node serves objects from: the [`ChunkSource`] trait and its implementation over a
//! [`Store`], with a bounded cache of chunk lists.

use super::chunking::{chunk_count, chunk_span, hash_file_chunks, read_span};
use super::error::SourceError;
use super::protocol::{ChunkList, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::digest::Digest;
use crate::store::Store;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Serves chunk lists and chunks of the objects a node holds.
pub trait ChunkSource: Send + Sync + 'static {
    /// The chunk list of `digest` cut at `chunk_size`.
    fn chunk_list(
        &self,
        digest: Digest,
        chunk_size: u32,
    ) -> impl Future<Output = Result<ChunkList, SourceError>> + Send;

    /// The bytes of chunk `index` of `digest` cut at `chunk_size`.
    fn chunk(
        &self,
        digest: Digest,
        chunk_size: u32,
        index: u32,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;
}

/// Number of chunk lists a [`StoreChunkSource`] keeps by default.
pub const DEFAULT_CACHED_LISTS: usize = 256;

/// Serves the objects of a [`Store`], hashing each object's chunks once and caching the lists
/// (least recently computed dropped first).
#[derive(Debug)]
pub struct StoreChunkSource {
    store: Arc<Store>,
    cache: Mutex<ListCache>,
}

#[derive(Debug)]
struct ListCache {
    capacity: usize,
    lists: HashMap<(Digest, u32), ChunkList>,
    order: VecDeque<(Digest, u32)>,
}

impl ListCache {
    fn insert(&mut self, key: (Digest, u32), list: ChunkList) {
        if self.capacity == 0 || self.lists.contains_key(&key) {
            return;
        }
        while self.lists.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => self.lists.remove(&old),
                None => break,
            };
        }
        self.order.push_back(key);
        self.lists.insert(key, list);
    }
}

impl StoreChunkSource {
    /// Serve `store`, caching up to `cached_lists` chunk lists.
    pub fn new(store: Arc<Store>, cached_lists: usize) -> Self {
        let cache = ListCache { capacity: cached_lists, lists: HashMap::new(), order: VecDeque::new() };
        StoreChunkSource { store, cache: Mutex::new(cache) }
    }

    fn cached(&self, key: &(Digest, u32)) -> Option<ChunkList> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).lists.get(key).cloned()
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<(), SourceError> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(SourceError::BadRequest {
            reason: format!("chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes"),
        })
    }
}

async fn blocking<T: Send + 'static>(
    digest: Digest,
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SourceError::Read { digest, reason: e.to_string() })?
}

impl ChunkSource for StoreChunkSource {
    async fn chunk_list(&self, digest: Digest, chunk_size: u32) -> Result<ChunkList, SourceError> {
        check_chunk_size(chunk_size)?;
        if let Some(list) = self.cached(&(digest, chunk_size)) {
            return Ok(list);
        }
        let path = self.store.locate(&digest).map_err(|_| SourceError::NotHeld { digest })?;
        let list = blocking(digest, move || {
            let (whole, size, hashes) = hash_file_chunks(&path, chunk_size)
                .map_err(|e| SourceError::Read { digest, reason: e.to_string() })?;
            if whole != digest {
                tracing::error!(%digest, %whole, "stored object is corrupt; refusing to serve it");
                return Err(SourceError::Read { digest, reason: "the stored copy is corrupt".into() });
            }
            Ok(ChunkList { size, chunk_size, hashes })
        })
        .await?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert((digest, chunk_size), list.clone());
        Ok(list)
    }

    async fn chunk(&self, digest: Digest, chunk_size: u32, index: u32) -> Result<Vec<u8>, SourceError> {
        check_chunk_size(chunk_size)?;
        let path = self.store.locate(&digest).map_err(|_| SourceError::NotHeld { digest })?;
        blocking(digest, move || {
            let size = std::fs::metadata(&path)
                .map_err(|e| SourceError::Read { digest, reason: e.to_string() })?
                .len();
            if u64::from(index) >= chunk_count(size, chunk_size) {
                return Err(SourceError::BadRequest {
                    reason: format!("object {digest} has no chunk {index} at chunk size {chunk_size}"),
                });
            }
            let (offset, len) = chunk_span(size, chunk_size, index);
            read_span(&path, offset, len).map_err(|e| SourceError::Read { digest, reason: e.to_string() })
        })
        .await
    }
}
