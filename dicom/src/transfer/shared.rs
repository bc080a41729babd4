//! State shared by a fetcher's tasks: the schedule, persisted state, counters, links, and the
//! job lifecycle (activate, complete, fail, retry elsewhere).

use super::chunking::{chunk_count, remove_if_present, Bitmap};
use super::error::FetchError;
use super::fetcher::{Connector, FetchConfig, FetchCounters, FetchEvent, FetchJob, JobProgress};
use super::link::Link;
use super::protocol::SourceId;
use super::queue::{JobRun, ObjRun, Sched, WorkItem, WorkKind};
use super::state::{PartialRecord, StateDb};
use super::worker;
use crate::digest::Digest;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;

/// Blocking disk operations (chunk writes, state commits, whole-object checks) run at once.
pub(crate) const BLOCKING_PERMITS: u32 = 32;
/// Longest job id accepted.
const MAX_JOB_ID_CHARS: usize = 256;

/// A job as persisted: the job and its age.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRecord {
    job: FetchJob,
    seq: u64,
}

/// Live counters behind [`FetchCounters`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) chunks_fetched: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) chunks_resumed: AtomicU64,
    pub(crate) chunk_lists_fetched: AtomicU64,
    pub(crate) chunks_corrupt: AtomicU64,
    pub(crate) objects_restarted: AtomicU64,
    pub(crate) objects_stored: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) request_failures: AtomicU64,
}

/// Everything a fetcher's tasks share.
pub(crate) struct Shared<C> {
    pub(crate) cfg: FetchConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) connector: Arc<C>,
    pub(crate) counters: Counters,
    /// Signalled whenever requests are queued.
    pub(crate) work: Notify,
    /// Held while a bitmap is snapshotted and committed, so commits land in snapshot order.
    pub(crate) bitmap_commit: tokio::sync::Mutex<()>,
    db: Arc<StateDb>,
    partial_dir: PathBuf,
    sched: Mutex<Sched>,
    next_seq: AtomicU64,
    events: mpsc::UnboundedSender<FetchEvent>,
    blocking: Arc<Semaphore>,
    links: Mutex<HashMap<SourceId, Arc<Link>>>,
    tasks: Mutex<JoinSet<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io { op, path: path.to_owned(), source }
}

impl<C: Connector> Shared<C> {
    /// Open the state in `dir` and resume the jobs recorded there.
    pub(crate) async fn open(
        dir: PathBuf,
        store: Arc<Store>,
        connector: Arc<C>,
        cfg: FetchConfig,
        events: mpsc::UnboundedSender<FetchEvent>,
    ) -> Result<Arc<Self>, FetchError> {
        let partial_dir = dir.join("partials");
        let load_dir = partial_dir.clone();
        let (db, loaded) = tokio::task::spawn_blocking(move || -> Result<_, FetchError> {
            std::fs::create_dir_all(&load_dir).map_err(io("create directory", &load_dir))?;
            let db = StateDb::open(&dir.join("fetch.redb"))?;
            let mut loaded = Vec::new();
            for record in db.jobs::<JobRecord>()? {
                let partials = db.partials(&record.job.id)?;
                loaded.push((record, partials));
            }
            Ok((db, loaded))
        })
        .await
        .map_err(|e| FetchError::Task(e.to_string()))??;
        let next_seq = loaded.iter().map(|(r, _)| r.seq + 1).max().unwrap_or(0);
        let shared = Arc::new(Shared {
            cfg,
            store,
            connector,
            counters: Counters::default(),
            work: Notify::new(),
            bitmap_commit: tokio::sync::Mutex::new(()),
            db: Arc::new(db),
            partial_dir,
            sched: Mutex::new(Sched::default()),
            next_seq: AtomicU64::new(next_seq),
            events,
            blocking: Arc::new(Semaphore::new(BLOCKING_PERMITS as usize)),
            links: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        });
        for (record, partials) in loaded {
            tracing::info!(job = %record.job.id, "resuming fetch job");
            shared.activate(record, partials).await?;
        }
        Ok(shared)
    }

    /// The schedule, locked.
    pub(crate) fn sched(&self) -> MutexGuard<'_, Sched> {
        lock(&self.sched)
    }

    /// The running tasks, leaving an empty set behind.
    pub(crate) fn take_tasks(&self) -> JoinSet<()> {
        std::mem::take(&mut *lock(&self.tasks))
    }

    /// The permits every blocking operation holds while it runs.
    pub(crate) fn blocking_permits(&self) -> &Semaphore {
        &self.blocking
    }

    /// Run `f` on a blocking thread with the state database. Shutdown waits for it to finish.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateDb) -> Result<T, FetchError> + Send + 'static,
    ) -> Result<T, FetchError> {
        let permit = self.blocking.clone().acquire_owned().await.map_err(|_| FetchError::Stopped)?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let out = f(&db);
            drop(db);
            drop(permit);
            out
        })
        .await
        .map_err(|e| FetchError::Task(e.to_string()))?
    }

    /// Send an event to the caller (dropped if nobody listens).
    pub(crate) fn emit(&self, event: FetchEvent) {
        let _ = self.events.send(event);
    }

    /// Counters since the fetcher was opened.
    pub(crate) fn counters(&self) -> FetchCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        let throttle = |f: fn(&super::throttle::TokenBucket) -> &AtomicU64| -> u64 {
            links.iter().filter_map(|l| l.throttle.as_ref()).map(|t| get(f(t))).sum()
        };
        FetchCounters {
            chunks_fetched: get(&c.chunks_fetched),
            bytes_fetched: get(&c.bytes_fetched),
            chunks_resumed: get(&c.chunks_resumed),
            chunk_lists_fetched: get(&c.chunk_lists_fetched),
            chunks_corrupt: get(&c.chunks_corrupt),
            objects_restarted: get(&c.objects_restarted),
            objects_stored: get(&c.objects_stored),
            connects: get(&c.connects),
            connect_failures: get(&c.connect_failures),
            request_failures: get(&c.request_failures),
            throttled_bytes: throttle(|t| &t.granted),
            throttle_waits: throttle(|t| &t.waits),
            throttle_wait_micros: throttle(|t| &t.wait_micros),
        }
    }

    /// Progress of a running job.
    pub(crate) fn progress(&self, job: &str) -> Option<JobProgress> {
        let sched = self.sched();
        let run = sched.jobs.get(job)?;
        Some(JobProgress {
            bytes_done: run.objects.iter().map(ObjRun::bytes_done).sum(),
            bytes_total: run.objects.iter().map(|o| o.size).sum(),
            objects_stored: run.objects.iter().filter(|o| o.stored).count(),
            objects_total: run.objects.len(),
        })
    }

    fn validate(&self, job: &FetchJob) -> Result<Vec<(Digest, u64)>, FetchError> {
        let fail = |reason: String| Err(FetchError::InvalidJob { job: job.id.clone(), reason });
        if job.id.is_empty()
            || job.id.chars().count() > MAX_JOB_ID_CHARS
            || job.id.chars().any(char::is_control)
        {
            return fail(format!(
                "the job id must be 1 to {MAX_JOB_ID_CHARS} characters without control characters"
            ));
        }
        if job.sources.is_empty() {
            return fail("the job names no source; give at least one node that holds the objects".into());
        }
        let mut seen: HashMap<Digest, u64> = HashMap::new();
        let mut objects = Vec::new();
        for &(digest, size) in &job.objects {
            if size > self.cfg.max_object_size {
                return fail(format!(
                    "object {digest} is {size} bytes, over the {}-byte limit; raise the fetcher's maximum object size",
                    self.cfg.max_object_size
                ));
            }
            if chunk_count(size, self.cfg.chunk_size) > u64::from(u32::MAX) {
                return fail(format!("object {digest} has too many chunks; use a larger chunk size"));
            }
            match seen.insert(digest, size) {
                None => objects.push((digest, size)),
                Some(prev) if prev == size => {}
                Some(prev) => {
                    return fail(format!(
                        "object {digest} is listed with two sizes ({prev} and {size}); fix the manifest"
                    ))
                }
            }
        }
        Ok(objects)
    }

    /// Persist and start a new job (no-op if a job with this id is running).
    pub(crate) async fn submit(self: &Arc<Self>, mut job: FetchJob) -> Result<(), FetchError> {
        job.objects = self.validate(&job)?;
        if self.sched().jobs.contains_key(&job.id) {
            return Ok(());
        }
        let record = JobRecord { job, seq: self.next_seq.fetch_add(1, Ordering::Relaxed) };
        let to_store = record.clone();
        self.blocking(move |db| db.put_job(&to_store.job.id, &to_store).map_err(FetchError::from)).await?;
        tracing::info!(job = %record.job.id, priority = record.job.priority, objects = record.job.objects.len(), "fetch job submitted");
        self.activate(record, HashMap::new()).await
    }

    fn partial_path(&self, job: &str, digest: &Digest) -> PathBuf {
        let job_hex = Digest::of_bytes(job.as_bytes()).to_hex();
        self.partial_dir.join(format!("{}-{}.part", &job_hex[..16], digest.to_hex()))
    }

    /// Build a job's in-memory state from its record and persisted partials, queue its
    /// requests and make sure its sources have workers.
    async fn activate(
        self: &Arc<Self>,
        record: JobRecord,
        partials: HashMap<Digest, PartialRecord>,
    ) -> Result<(), FetchError> {
        let store = self.store.clone();
        let paths: Vec<PathBuf> =
            record.job.objects.iter().map(|(d, _)| self.partial_path(&record.job.id, d)).collect();
        let objects = record.job.objects.clone();
        let chunk_size = self.cfg.chunk_size;
        let objects = self
            .blocking(move |_| Ok(prepare_objects(&store, objects, paths, &partials, chunk_size)))
            .await?;
        let job_id = record.job.id.clone();
        let sources = record.job.sources.clone();
        let mut resumed = 0u64;
        let mut to_finalize = Vec::new();
        let all_stored = {
            let mut sched = self.sched();
            if sched.jobs.contains_key(&job_id) {
                return Ok(());
            }
            sched.jobs.insert(job_id.clone(), JobRun { job: record.job, seq: record.seq, objects });
            let run = &sched.jobs[&job_id];
            let mut pending = Vec::new();
            for (idx, obj) in run.objects.iter().enumerate() {
                if obj.stored {
                    continue;
                }
                if obj.list.is_none() {
                    pending.push((idx, WorkKind::List));
                    continue;
                }
                resumed += u64::from(obj.bitmap.count());
                if obj.bitmap.is_complete() {
                    to_finalize.push(idx);
                }
                pending.extend(obj.bitmap.missing().map(|i| (idx, WorkKind::Chunk(i))));
            }
            for &idx in &to_finalize {
                if let Some(obj) = sched.obj_mut(&job_id, idx) {
                    obj.finalizing = true;
                }
            }
            for (idx, kind) in pending {
                sched.push(&job_id, idx, kind);
            }
            sched.jobs[&job_id].all_stored()
        };
        self.counters.chunks_resumed.fetch_add(resumed, Ordering::Relaxed);
        if all_stored {
            self.complete_job(&job_id).await;
            return Ok(());
        }
        self.ensure_links(&sources);
        for idx in to_finalize {
            let shared = self.clone();
            let job = job_id.clone();
            lock(&self.tasks).spawn(async move { worker::finalize(&shared, &job, idx).await });
        }
        self.work.notify_waiters();
        Ok(())
    }

    fn ensure_links(self: &Arc<Self>, sources: &[SourceId]) {
        let mut links = lock(&self.links);
        let mut tasks = lock(&self.tasks);
        for source in sources {
            if links.contains_key(source) {
                continue;
            }
            let link = Arc::new(Link::new(source.clone(), &self.cfg));
            links.insert(source.clone(), link.clone());
            for _ in 0..self.cfg.streams_per_link {
                tasks.spawn(worker::run_link(self.clone(), link.clone()));
            }
        }
    }

    /// Remove a job's state and files; `None` if it was not running.
    async fn drop_job(&self, job: &str) -> Option<JobRun> {
        let run = self.sched().remove_job(job)?;
        let id = job.to_owned();
        let partials: Vec<PathBuf> = run.objects.iter().map(|o| o.partial.clone()).collect();
        let result = self
            .blocking(move |db| {
                db.forget_job(&id)?;
                for p in &partials {
                    remove_if_present(p).map_err(io("remove partial file", p))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(%job, error = %e, "cannot clean up a finished fetch job's state");
        }
        Some(run)
    }

    /// Every object is stored: forget the job and tell the caller.
    pub(crate) async fn complete_job(&self, job: &str) {
        if self.drop_job(job).await.is_some() {
            tracing::info!(%job, "fetch job complete");
            self.emit(FetchEvent::JobComplete { job: job.to_owned() });
        }
    }

    /// The job cannot complete: forget it and tell the caller why.
    pub(crate) async fn fail_job(&self, job: &str, error: String) {
        if self.drop_job(job).await.is_some() {
            tracing::warn!(%job, %error, "fetch job failed");
            self.emit(FetchEvent::JobFailed { job: job.to_owned(), error });
        }
    }

    /// Put a request back after a transport failure.
    pub(crate) fn requeue(&self, item: WorkItem) {
        self.sched().requeue(item);
        self.work.notify_waiters();
    }

    /// `source` gave a bad answer for the item's object (or refused it, `refused`): count it,
    /// stop asking that source after too many, and fail the job when no source is left.
    pub(crate) async fn source_failed(
        &self,
        item: WorkItem,
        source: &SourceId,
        reason: String,
        refused: bool,
    ) {
        tracing::warn!(job = %item.job, source = %source, %reason, "source failed a request");
        let exhausted = {
            let mut sched = self.sched();
            let Some(run) = sched.jobs.get_mut(&item.job) else { return };
            let sources = run.job.sources.clone();
            let Some(obj) = run.objects.get_mut(item.obj) else { return };
            let n = obj.failures.entry(source.clone()).or_insert(0);
            *n += 1;
            if refused || *n >= self.cfg.max_failures_per_source {
                obj.excluded.insert(source.clone());
            }
            let digest = obj.digest;
            if sources.iter().all(|s| obj.excluded.contains(s)) {
                Some(digest)
            } else {
                sched.requeue(item.clone());
                None
            }
        };
        match exhausted {
            Some(digest) => {
                let error = format!(
                    "object {digest} could not be fetched from any source (last: {source}: {reason}); \
                     check that a node holding a verified copy is reachable, then submit the job again"
                );
                self.fail_job(&item.job, error).await;
            }
            None => self.work.notify_waiters(),
        }
    }
}

/// The objects of a job as found on disk: already stored, partly received (with a usable
/// chunk list, bitmap and partial file), or not started (an object that fits in one chunk is
/// then fetched whole).
fn prepare_objects(
    store: &Store,
    objects: Vec<(Digest, u64)>,
    paths: Vec<PathBuf>,
    partials: &HashMap<Digest, PartialRecord>,
    chunk_size: u32,
) -> Vec<ObjRun> {
    objects
        .into_iter()
        .zip(paths)
        .map(|((digest, size), partial)| {
            let mut obj = ObjRun::new(digest, size, partial);
            if store.contains(&digest) {
                obj.stored = true;
                return obj;
            }
            let Some(record) = partials.get(&digest) else {
                if (1..=u64::from(chunk_size)).contains(&size) {
                    obj.fetch_whole(chunk_size);
                }
                return obj;
            };
            let n = record.list.hashes.len() as u32;
            let usable = record.list.size == size
                && chunk_count(size, record.list.chunk_size) == u64::from(n)
                && std::fs::metadata(&obj.partial).is_ok_and(|m| m.len() == size);
            let bitmap = if record.bitmap.is_empty() {
                Some(Bitmap::new(n))
            } else {
                Bitmap::from_bytes(record.bitmap.clone(), n)
            };
            if let (true, Some(bitmap)) = (usable, bitmap) {
                obj.list = Some(record.list.clone());
                obj.bitmap = bitmap;
            }
            obj
        })
        .collect()
}
