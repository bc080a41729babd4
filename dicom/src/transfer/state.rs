//! Durable transfer state in a redb database: jobs, the chunk list of each partial object and
//! the bitmap of its verified chunks. Every commit is fsynced before it returns.
//!
//! Objects are keyed by a group (a fetch job id, or `upload`) and the object's digest.

use super::error::StateError;
use super::protocol::ChunkList;
use crate::digest::Digest;
use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use yilian_referral::codec;

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const LISTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("chunk_lists");
const BITMAPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("bitmaps");
const DONE: TableDefinition<&str, &[u8]> = TableDefinition::new("done");

/// The persisted state of one object being received: its chunk list and verified chunks.
#[derive(Debug, Clone)]
pub(crate) struct PartialRecord {
    /// The chunk list the chunks are checked against.
    pub(crate) list: ChunkList,
    /// Bytes of the bitmap of verified chunks.
    pub(crate) bitmap: Vec<u8>,
}

/// The transfer state database.
#[derive(Debug)]
pub(crate) struct StateDb {
    db: Database,
    path: PathBuf,
}

impl StateDb {
    /// Open (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StateError> {
        let fail = |reason: String| StateError { path: path.to_owned(), reason };
        let db = Database::create(path).map_err(|e| fail(e.to_string()))?;
        let state = StateDb { db, path: path.to_owned() };
        let tx = state.db.begin_write().map_err(|e| state.err(e))?;
        for table in [JOBS, DONE] {
            tx.open_table(table).map_err(|e| state.err(e))?;
        }
        for table in [LISTS, BITMAPS] {
            tx.open_table(table).map_err(|e| state.err(e))?;
        }
        tx.commit().map_err(|e| state.err(e))?;
        Ok(state)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        StateError { path: self.path.clone(), reason: e.into().to_string() }
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StateError> {
        codec::decode(bytes)
            .map_err(|e| StateError { path: self.path.clone(), reason: format!("{what}: {e}") })
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StateError> {
        codec::encode(value).map_err(|e| StateError { path: self.path.clone(), reason: e.to_string() })
    }

    /// Every job record, by id.
    pub(crate) fn jobs<T: DeserializeOwned>(&self) -> Result<Vec<T>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(JOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (_, value) = entry.map_err(|e| self.err(e))?;
            out.push(self.decode("job record", value.value())?);
        }
        Ok(out)
    }

    /// Record a job.
    pub(crate) fn put_job<T: Serialize>(&self, id: &str, job: &T) -> Result<(), StateError> {
        self.put(JOBS, id, job)
    }

    /// Encode `value` and store it under `key` in `table`, in one committed transaction.
    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), StateError> {
        let bytes = self.encode(value)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(table)
            .map_err(|e| self.err(e))?
            .insert(key, bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// The partial objects recorded under `group`, by digest.
    pub(crate) fn partials(&self, group: &str) -> Result<HashMap<Digest, PartialRecord>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let lists = tx.open_table(LISTS).map_err(|e| self.err(e))?;
        let bitmaps = tx.open_table(BITMAPS).map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for entry in lists.range((group, "")..=(group, "~")).map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let (_, hex) = key.value();
            let Ok(digest) = hex.parse::<Digest>() else { continue };
            let list: ChunkList = self.decode("chunk list", value.value())?;
            let bitmap = match bitmaps.get((group, hex)).map_err(|e| self.err(e))? {
                Some(v) => self.decode("chunk bitmap", v.value())?,
                None => Vec::new(),
            };
            out.insert(digest, PartialRecord { list, bitmap });
        }
        Ok(out)
    }

    /// Record the chunk list of a partial object, with no chunk verified yet.
    pub(crate) fn put_list(&self, group: &str, digest: &Digest, list: &ChunkList) -> Result<(), StateError> {
        let hex = digest.to_hex();
        let list = self.encode(list)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(LISTS)
            .map_err(|e| self.err(e))?
            .insert((group, hex.as_str()), list.as_slice())
            .map_err(|e| self.err(e))?;
        tx.open_table(BITMAPS)
            .map_err(|e| self.err(e))?
            .remove((group, hex.as_str()))
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Record the bitmap of verified chunks of a partial object.
    pub(crate) fn put_bitmap(&self, group: &str, digest: &Digest, bitmap: &[u8]) -> Result<(), StateError> {
        let hex = digest.to_hex();
        let bytes = self.encode(&bitmap)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(BITMAPS)
            .map_err(|e| self.err(e))?
            .insert((group, hex.as_str()), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forget one partial object (after it is stored, or to restart it).
    pub(crate) fn forget_partial(&self, group: &str, digest: &Digest) -> Result<(), StateError> {
        self.finish_partial(group, digest, None)
    }

    /// Forget one partial object and, in the same transaction, record `done` (key, message) as
    /// accepted, so a crash leaves either the partial (to resume) or the completion record.
    pub(crate) fn finish_partial(
        &self,
        group: &str,
        digest: &Digest,
        done: Option<(&str, &str)>,
    ) -> Result<(), StateError> {
        let hex = digest.to_hex();
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        if let Some((key, message)) = done {
            let bytes = self.encode(&message)?;
            tx.open_table(DONE)
                .map_err(|e| self.err(e))?
                .insert(key, bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.open_table(LISTS)
            .map_err(|e| self.err(e))?
            .remove((group, hex.as_str()))
            .map_err(|e| self.err(e))?;
        tx.open_table(BITMAPS)
            .map_err(|e| self.err(e))?
            .remove((group, hex.as_str()))
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forget a job and every partial object recorded under it.
    pub(crate) fn forget_job(&self, id: &str) -> Result<(), StateError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(JOBS).map_err(|e| self.err(e))?.remove(id).map_err(|e| self.err(e))?;
        for def in [LISTS, BITMAPS] {
            let mut table = tx.open_table(def).map_err(|e| self.err(e))?;
            let keys: Vec<String> = table
                .range((id, "")..=(id, "~"))
                .map_err(|e| self.err(e))?
                .map(|entry| entry.map(|(k, _)| k.value().1.to_owned()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for hex in keys {
                table.remove((id, hex.as_str())).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The message recorded when the object under `key` was accepted, if it was.
    pub(crate) fn done(&self, key: &str) -> Result<Option<String>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(DONE).map_err(|e| self.err(e))?;
        match table.get(key).map_err(|e| self.err(e))? {
            Some(v) => self.decode("completion record", v.value()).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_survive_reopen_and_jobs_are_forgotten_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.redb");
        let d1 = Digest::of_bytes(b"one");
        let d2 = Digest::of_bytes(b"two");
        let list = ChunkList { size: 10, chunk_size: 4096, hashes: vec![Digest::of_bytes(b"c")] };
        {
            let db = StateDb::open(&path).expect("open");
            db.put_job("job-a", &"a".to_owned()).expect("job");
            db.put_list("job-a", &d1, &list).expect("list");
            db.put_bitmap("job-a", &d1, &[1]).expect("bitmap");
            db.put_list("job-ab", &d2, &list).expect("list");
        }
        let db = StateDb::open(&path).expect("reopen");
        assert_eq!(db.jobs::<String>().expect("jobs"), vec!["a".to_owned()]);
        let partials = db.partials("job-a").expect("partials");
        assert_eq!(partials.len(), 1);
        assert_eq!(partials[&d1].bitmap, vec![1]);
        db.forget_job("job-a").expect("forget");
        assert!(db.partials("job-a").expect("partials").is_empty());
        assert_eq!(db.partials("job-ab").expect("partials").len(), 1);
        assert!(db.jobs::<String>().expect("jobs").is_empty());
    }

    #[test]
    fn finishing_a_partial_records_it_done_in_the_same_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.redb");
        let digest = Digest::of_bytes(b"file");
        let list = ChunkList { size: 10, chunk_size: 4096, hashes: vec![Digest::of_bytes(b"c")] };
        {
            let db = StateDb::open(&path).expect("open");
            db.put_list("uploads", &digest, &list).expect("list");
            db.put_bitmap("uploads", &digest, &[1]).expect("bitmap");
            db.finish_partial("uploads", &digest, Some(("key", "stored"))).expect("finish");
        }
        let db = StateDb::open(&path).expect("reopen");
        assert!(db.partials("uploads").expect("partials").is_empty());
        assert_eq!(db.done("key").expect("done"), Some("stored".to_owned()));
        assert_eq!(db.done("other").expect("done"), None);
    }
}
