//! The in-memory schedule of a fetcher: running jobs, the state of each of their objects, and
//! the queue of pending requests ordered by job priority (highest first), then job age, then
//! object and chunk order.

use super::chunking::{chunk_span, Bitmap};
use super::fetcher::FetchJob;
use super::protocol::{ChunkList, SourceId};
use crate::digest::Digest;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// Order of a pending request: priority (highest first), job age, object, then chunk.
type Key = (Reverse<u8>, u64, usize, u64);

/// What a pending request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkKind {
    /// The object's chunk list.
    List,
    /// One chunk of the object.
    Chunk(u32),
}

/// One pending request: which job, which of its objects, and what to fetch.
#[derive(Debug, Clone)]
pub(crate) struct WorkItem {
    pub(crate) job: String,
    pub(crate) obj: usize,
    pub(crate) kind: WorkKind,
    key: Key,
}

/// The receiving state of one object of a job.
#[derive(Debug)]
pub(crate) struct ObjRun {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    /// Where its chunks are written until it is complete.
    pub(crate) partial: PathBuf,
    /// The chunk list chunks are checked against, once fetched.
    pub(crate) list: Option<ChunkList>,
    /// Which source gave the chunk list.
    pub(crate) list_source: Option<SourceId>,
    /// Verified chunks.
    pub(crate) bitmap: Bitmap,
    /// Bumped whenever a chunk is marked verified.
    pub(crate) bitmap_version: u64,
    /// The latest version known to be committed to the state database.
    pub(crate) persisted_version: u64,
    /// Verified whole and in the store.
    pub(crate) stored: bool,
    /// All chunks verified; the whole-object check is under way.
    pub(crate) finalizing: bool,
    /// Failures per source (bad chunks, bad lists).
    pub(crate) failures: HashMap<SourceId, u32>,
    /// Sources no longer asked for this object.
    pub(crate) excluded: HashSet<SourceId>,
    /// Times the object was started over because the whole did not match its digest.
    pub(crate) restarts: u32,
    /// Fits in one chunk: fetched in one request, checked against the manifest digest and put
    /// straight into the store, with no chunk list, partial file or recorded progress (there is
    /// nothing smaller to resume from).
    pub(crate) whole: bool,
}

impl ObjRun {
    /// Treat the object as one chunk whose hash is the object's own digest: the only chunk list
    /// a source could send for it. Only for objects of 1 to `chunk_size` bytes.
    pub(crate) fn fetch_whole(&mut self, chunk_size: u32) {
        self.list = Some(ChunkList { size: self.size, chunk_size, hashes: vec![self.digest] });
        self.bitmap = Bitmap::new(1);
        self.whole = true;
    }

    /// An object with nothing received yet.
    pub(crate) fn new(digest: Digest, size: u64, partial: PathBuf) -> Self {
        ObjRun {
            digest,
            size,
            partial,
            list: None,
            list_source: None,
            bitmap: Bitmap::new(0),
            bitmap_version: 0,
            persisted_version: 0,
            stored: false,
            finalizing: false,
            failures: HashMap::new(),
            excluded: HashSet::new(),
            restarts: 0,
            whole: false,
        }
    }

    /// Bytes verified so far.
    pub(crate) fn bytes_done(&self) -> u64 {
        match (&self.list, self.stored) {
            (_, true) => self.size,
            (Some(list), false) => (0..self.bitmap.len())
                .filter(|&i| self.bitmap.get(i))
                .map(|i| chunk_span(self.size, list.chunk_size, i).1 as u64)
                .sum(),
            (None, false) => 0,
        }
    }
}

/// A running job.
#[derive(Debug)]
pub(crate) struct JobRun {
    pub(crate) job: FetchJob,
    pub(crate) seq: u64,
    pub(crate) objects: Vec<ObjRun>,
}

impl JobRun {
    /// Whether every object is stored.
    pub(crate) fn all_stored(&self) -> bool {
        self.objects.iter().all(|o| o.stored)
    }
}

/// Running jobs and pending requests.
#[derive(Debug, Default)]
pub(crate) struct Sched {
    pub(crate) jobs: HashMap<String, JobRun>,
    queue: BTreeMap<Key, WorkItem>,
}

impl Sched {
    /// The object an item refers to, if its job is still running.
    pub(crate) fn obj_mut(&mut self, job: &str, obj: usize) -> Option<&mut ObjRun> {
        self.jobs.get_mut(job)?.objects.get_mut(obj)
    }

    /// Queue a request for object `obj` of `job` (ignored if the job is gone).
    pub(crate) fn push(&mut self, job: &str, obj: usize, kind: WorkKind) {
        let Some(run) = self.jobs.get(job) else { return };
        let sub = match kind {
            WorkKind::List => 0,
            WorkKind::Chunk(i) => u64::from(i) + 1,
        };
        let key = (Reverse(run.job.priority), run.seq, obj, sub);
        self.queue.insert(key, WorkItem { job: job.to_owned(), obj, kind, key });
    }

    /// Put back a request that was taken but not completed.
    pub(crate) fn requeue(&mut self, item: WorkItem) {
        if self.jobs.contains_key(&item.job) {
            self.queue.insert(item.key, item);
        }
    }

    fn servable(&self, item: &WorkItem, source: &SourceId) -> bool {
        self.jobs.get(&item.job).is_some_and(|run| {
            run.job.sources.contains(source)
                && run.objects.get(item.obj).is_some_and(|o| !o.excluded.contains(source))
        })
    }

    /// Whether a request `source` may serve is pending.
    pub(crate) fn has_work_for(&self, source: &SourceId) -> bool {
        self.queue.values().any(|item| self.servable(item, source))
    }

    /// Take the first pending request `source` may serve.
    pub(crate) fn take_for(&mut self, source: &SourceId) -> Option<WorkItem> {
        let key = self.queue.iter().find(|(_, item)| self.servable(item, source)).map(|(k, _)| *k)?;
        self.queue.remove(&key)
    }

    /// Remove a job and its pending requests.
    pub(crate) fn remove_job(&mut self, job: &str) -> Option<JobRun> {
        self.queue.retain(|_, item| item.job != job);
        self.jobs.remove(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, priority: u8, seq: u64, sources: &[&str]) -> JobRun {
        JobRun {
            job: FetchJob {
                id: id.into(),
                priority,
                objects: vec![(Digest::of_bytes(id.as_bytes()), 1)],
                sources: sources.iter().map(|s| SourceId((*s).into())).collect(),
            },
            seq,
            objects: vec![ObjRun::new(Digest::of_bytes(id.as_bytes()), 1, PathBuf::new())],
        }
    }

    #[test]
    fn higher_priority_first_then_age_then_chunk_order() {
        let mut s = Sched::default();
        s.jobs.insert("routine".into(), job("routine", 1, 0, &["a"]));
        s.jobs.insert("stat".into(), job("stat", 3, 1, &["a"]));
        s.push("routine", 0, WorkKind::Chunk(1));
        s.push("routine", 0, WorkKind::Chunk(0));
        s.push("stat", 0, WorkKind::List);
        let a = SourceId("a".into());
        let order: Vec<_> = std::iter::from_fn(|| s.take_for(&a)).map(|i| (i.job, i.kind)).collect();
        assert_eq!(
            order,
            vec![
                ("stat".to_owned(), WorkKind::List),
                ("routine".to_owned(), WorkKind::Chunk(0)),
                ("routine".to_owned(), WorkKind::Chunk(1)),
            ]
        );
    }

    #[test]
    fn excluded_and_foreign_sources_get_nothing() {
        let mut s = Sched::default();
        s.jobs.insert("j".into(), job("j", 1, 0, &["a", "b"]));
        s.push("j", 0, WorkKind::List);
        assert!(!s.has_work_for(&SourceId("c".into())));
        s.obj_mut("j", 0).expect("object").excluded.insert(SourceId("a".into()));
        assert!(s.take_for(&SourceId("a".into())).is_none());
        let item = s.take_for(&SourceId("b".into())).expect("b serves it");
        s.requeue(item);
        assert!(s.remove_job("j").is_some());
        assert!(!s.has_work_for(&SourceId("b".into())));
    }
}
