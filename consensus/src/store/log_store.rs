//! The Raft log and vote, persisted in redb.

use super::db::{blocking, read_meta, storage_error, DbError, LOG, LOG_META};
use crate::codec;
use crate::types::{LogId, NodeId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use redb::{Database, ReadableTable};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

/// Most entries kept in memory for replication and apply.
const CACHED_ENTRIES: usize = 1024;
/// Most encoded bytes of the entries kept in memory.
const CACHED_BYTES: usize = 32 * 1024 * 1024;

/// The newest durable log entries, kept in memory: openraft reads every entry back right after
/// appending it (once per replication stream, and once more to apply it once committed), and a
/// read from memory saves a database transaction on a blocking thread each time. The cache is
/// always a contiguous run ending at the last log entry (appends extend it, truncation cuts it,
/// purging trims it), so a range inside it is exactly what the database holds.
#[derive(Default)]
struct EntryCache {
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl EntryCache {
    /// Add durable entries that follow the cached run (or start a new run after a gap, as after
    /// a snapshot). Entries that rewrite cached indexes without a truncation first (openraft
    /// does not do that) empty the cache rather than risk it disagreeing with the database.
    fn extend(&mut self, appended: Vec<(Entry<TypeConfig>, usize)>) {
        let (Some((&last, _)), Some((first, _))) = (self.entries.last_key_value(), appended.first()) else {
            return self.insert(appended);
        };
        let first = first.log_id.index;
        if first <= last {
            return self.clear();
        }
        if first > last + 1 {
            self.clear();
        }
        self.insert(appended);
    }

    fn insert(&mut self, appended: Vec<(Entry<TypeConfig>, usize)>) {
        for (entry, size) in appended {
            self.bytes += size;
            self.entries.insert(entry.log_id.index, (entry, size));
        }
        while self.entries.len() > CACHED_ENTRIES || self.bytes > CACHED_BYTES {
            match self.entries.pop_first() {
                Some((_, (_, size))) => self.bytes -= size,
                None => break,
            }
        }
    }

    /// Forget entries in `range` (at the start or the end of the run).
    fn remove(&mut self, range: (Bound<u64>, Bound<u64>)) {
        let doomed: Vec<u64> = self.entries.range(range).map(|(i, _)| *i).collect();
        for index in doomed {
            if let Some((_, size)) = self.entries.remove(&index) {
                self.bytes -= size;
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries in `range` if the cache holds all of them.
    fn get(&self, range: (Bound<u64>, Bound<u64>)) -> Option<Vec<Entry<TypeConfig>>> {
        let (&first, _) = self.entries.first_key_value()?;
        let covered = match range.0 {
            Bound::Included(start) => start >= first,
            Bound::Excluded(start) => start >= first.saturating_sub(1),
            Bound::Unbounded => false,
        };
        covered.then(|| self.entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

/// Raft log storage. Cloning shares the same database and entry cache (used for log readers).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    cache: Arc<Mutex<EntryCache>>,
    /// The last committed log id openraft reported, written with the next log append.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

impl LogStore {
    pub(super) fn new(db: Arc<Database>) -> Self {
        Self { db, cache: Default::default(), committed: Default::default() }
    }

    fn cache(&self) -> MutexGuard<'_, EntryCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `value` under `key`, durably (the commit fsyncs).
    async fn put_meta<T: serde::Serialize>(&self, key: &'static str, value: &T) -> Result<(), DbError> {
        let bytes = codec::encode(value)?;
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            txn.open_table(LOG_META)?.insert(key, bytes.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_meta<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, DbError> {
        let db = self.db.clone();
        blocking(move || read_meta(&db.begin_read()?.open_table(LOG_META)?, key)).await
    }

    /// Delete log entries with index in `range`, and optionally record a purge point, in one commit.
    async fn delete_range(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<LogId>,
    ) -> Result<(), DbError> {
        let purged = purged.map(|p| codec::encode(&p)).transpose()?;
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            {
                let mut log = txn.open_table(LOG)?;
                log.retain_in(range, |_, _| false)?;
                if let Some(p) = &purged {
                    txn.open_table(LOG_META)?.insert(LAST_PURGED, p.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

fn bound_of(b: Bound<&u64>) -> Bound<u64> {
    match b {
        Bound::Included(x) => Bound::Included(*x),
        Bound::Excluded(x) => Bound::Excluded(*x),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let bounds = (bound_of(range.start_bound()), bound_of(range.end_bound()));
        if let Some(cached) = self.cache().get(bounds) {
            return Ok(cached);
        }
        let db = self.db.clone();
        let started = std::time::Instant::now();
        let read = blocking(move || {
            let txn = db.begin_read()?;
            let log = txn.open_table(LOG)?;
            let mut out = Vec::new();
            for item in log.range::<u64>(bounds)? {
                let (_, v) = item?;
                out.push(codec::decode(v.value())?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        tracing::debug!(?bounds, us = started.elapsed().as_micros() as u64, "log entries read");
        Ok(read)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read()?;
            let last_purged_log_id: Option<LogId> = read_meta(&txn.open_table(LOG_META)?, LAST_PURGED)?;
            let last = match txn.open_table(LOG)?.last()? {
                Some((_, v)) => Some(codec::decode::<Entry<TypeConfig>>(v.value())?.log_id),
                None => last_purged_log_id,
            };
            Ok(LogState { last_purged_log_id, last_log_id: last })
        })
        .await
        .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote).await.map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE).await.map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    /// Kept in memory and written with the next log append: openraft calls this on every
    /// commit inside its core loop, and a committed index lost in a crash is only a hint (the
    /// node re-learns it from the leader; the entries themselves are in the durable log).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .get_meta(COMMITTED)
            .await
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Read, e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (mut to_cache, mut encoded) = (Vec::new(), Vec::new());
        for entry in entries {
            let bytes =
                codec::encode(&entry).map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            let size = bytes.len();
            encoded.push((entry.log_id.index, bytes));
            to_cache.push((entry, size));
        }
        let committed = self
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|c| codec::encode(&c))
            .transpose()
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let db = self.db.clone();
        let last = encoded.last().map(|(i, _)| *i);
        let queued = std::time::Instant::now();
        // The commit fsyncs; only then is openraft told the entries are durable.
        let result = blocking(move || {
            let started = std::time::Instant::now();
            let txn = db.begin_write()?;
            {
                let mut log = txn.open_table(LOG)?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice())?;
                }
                if let Some(c) = &committed {
                    txn.open_table(LOG_META)?.insert(COMMITTED, c.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(started)
        })
        .await;
        match result {
            Ok(started) => {
                tracing::debug!(
                    last,
                    wait_us = (started - queued).as_micros() as u64,
                    commit_us = started.elapsed().as_micros() as u64,
                    "log append durable"
                );
                self.cache().extend(to_cache);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "truncating log");
        self.cache().remove((Bound::Included(log_id.index), Bound::Unbounded));
        self.delete_range((Bound::Included(log_id.index), Bound::Unbounded), None)
            .await
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "purging log");
        self.cache().remove((Bound::Unbounded, Bound::Included(log_id.index)));
        self.delete_range((Bound::Unbounded, Bound::Included(log_id.index)), Some(log_id))
            .await
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }
}
