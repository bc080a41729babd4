//! The public face of node-to-node fetch: jobs, configuration, events, progress and the
//! [`Fetcher`] that runs them.

use super::error::FetchError;
use super::protocol::{SourceId, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use super::shared::{Shared, BLOCKING_PERMITS};
use super::window::ReceiveWindow;
use crate::digest::Digest;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Objects to bring to this node, with where to get them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchJob {
    /// Unique id, e.g. the study UID and the target node.
    pub id: String,
    /// Higher first; [`PRIORITY_STAT`](super::PRIORITY_STAT) overtakes routine work.
    pub priority: u8,
    /// Each object's SHA-256 and size, from the manifest.
    pub objects: Vec<(Digest, u64)>,
    /// Nodes holding the objects, in order of preference.
    pub sources: Vec<SourceId>,
}

/// What a fetcher tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// An object was verified whole and is in the store.
    ObjectStored {
        /// The job it belongs to.
        job: String,
        /// The object.
        digest: Digest,
    },
    /// Every object of the job is verified and stored.
    JobComplete {
        /// The job.
        job: String,
    },
    /// The job cannot complete; its state has been dropped (submit it again to retry).
    JobFailed {
        /// The job.
        job: String,
        /// What went wrong and what to do.
        error: String,
    },
}

/// How far a running job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    /// Bytes verified (in verified chunks or stored objects).
    pub bytes_done: u64,
    /// Bytes of all the job's objects.
    pub bytes_total: u64,
    /// Objects verified and stored.
    pub objects_stored: usize,
    /// Objects in the job.
    pub objects_total: usize,
}

/// Counters since the fetcher was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchCounters {
    /// Chunks fetched and verified in this run.
    pub chunks_fetched: u64,
    /// Bytes of those chunks.
    pub bytes_fetched: u64,
    /// Verified chunks found in the persisted state when the fetcher was opened (not fetched again).
    pub chunks_resumed: u64,
    /// Chunk lists fetched.
    pub chunk_lists_fetched: u64,
    /// Chunks that failed their hash check and were discarded.
    pub chunks_corrupt: u64,
    /// Objects started over because the whole did not match the manifest digest.
    pub objects_restarted: u64,
    /// Objects verified and put into the store.
    pub objects_stored: u64,
    /// Successful connections to sources.
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Requests that failed for transport reasons (then retried).
    pub request_failures: u64,
    /// Bytes that went through a bandwidth cap.
    pub throttled_bytes: u64,
    /// Requests a bandwidth cap made wait.
    pub throttle_waits: u64,
    /// Total wait imposed by bandwidth caps, in microseconds.
    pub throttle_wait_micros: u64,
}

/// How a fetcher runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Bytes per chunk ([`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`]; default 1 MiB).
    pub chunk_size: u32,
    /// Requests in flight per source (1..=64; default 4).
    pub streams_per_link: usize,
    /// Bad chunks or lists from one source before it is no longer asked for that object (default 3).
    pub max_failures_per_source: u32,
    /// Bytes per second requested from each source; `None` for no cap.
    pub bandwidth_per_source: Option<u64>,
    /// First delay before reconnecting (default 200 ms).
    pub backoff_initial: Duration,
    /// Longest delay before reconnecting (default 30 s).
    pub backoff_max: Duration,
    /// Longest wait for one answer before the request is retried (default 60 s).
    pub request_timeout: Duration,
    /// Largest object accepted in a job (default 64 GiB).
    pub max_object_size: u64,
    /// Adapt each source connection's receive window to the link's round trip; `None` leaves
    /// the window the [`Connector`] opened it with (the default). The connector should open
    /// connections with [`ReceiveWindow::start`] and allow streams [`ReceiveWindow::max`].
    pub receive_window: Option<ReceiveWindow>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams_per_link: 4,
            max_failures_per_source: 3,
            bandwidth_per_source: None,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_object_size: 64 << 30,
            receive_window: None,
        }
    }
}

impl FetchConfig {
    fn validate(&self) -> Result<(), FetchError> {
        let fail = |reason: String| Err(FetchError::Config { reason });
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return fail(format!(
                "chunk size is {}; use {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes",
                self.chunk_size
            ));
        }
        if !(1..=64).contains(&self.streams_per_link) {
            return fail(format!("streams per link is {}; use 1 to 64", self.streams_per_link));
        }
        if self.max_failures_per_source == 0 {
            return fail("max failures per source is 0; use at least 1".into());
        }
        if self.bandwidth_per_source == Some(0) {
            return fail("bandwidth per source is 0 bytes/s; give a positive rate or no cap".into());
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return fail(
                "backoff delays must be positive with the maximum at least the initial delay".into(),
            );
        }
        if let Some(w) = &self.receive_window {
            if w.max == 0 || w.queue_target.is_zero() {
                return fail(
                    "the adaptive receive window needs a positive maximum and queueing target".into(),
                );
            }
        }
        if self.request_timeout.is_zero() {
            return fail("request timeout is 0; give a positive duration".into());
        }
        Ok(())
    }
}

/// How a fetcher reaches a source; Yilian nodes map the node id to its address and connect
/// with their QUIC endpoint speaking [`ALPN_DICOM`](super::ALPN_DICOM).
pub trait Connector: Send + Sync + 'static {
    /// Open a connection to `source`; the error says why not.
    fn connect(&self, source: &SourceId) -> impl Future<Output = Result<quinn::Connection, String>> + Send;
}

/// Runs fetch jobs, persisting their progress under its directory so they resume after a
/// restart. One fetcher per directory at a time.
pub struct Fetcher<C: Connector> {
    shared: Arc<Shared<C>>,
}

impl<C: Connector> Fetcher<C> {
    /// Open the fetcher whose state is in `dir` (created if needed) and resume its unfinished
    /// jobs. Events arrive on the returned receiver.
    pub async fn open(
        dir: &Path,
        store: Arc<Store>,
        connector: Arc<C>,
        cfg: FetchConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<FetchEvent>), FetchError> {
        cfg.validate()?;
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Shared::open(dir.to_owned(), store, connector, cfg, events).await?;
        Ok((Fetcher { shared }, rx))
    }

    /// Start a job. Submitting the id of a job that is still running changes nothing.
    pub async fn submit(&self, job: FetchJob) -> Result<(), FetchError> {
        self.shared.submit(job).await
    }

    /// Progress of a running job; `None` once it completed or failed, or if unknown.
    pub fn progress(&self, job: &str) -> Option<JobProgress> {
        self.shared.progress(job)
    }

    /// Ids of the running jobs.
    pub fn jobs(&self) -> Vec<String> {
        self.shared.sched().jobs.keys().cloned().collect()
    }

    /// Counters since the fetcher was opened.
    pub fn counters(&self) -> FetchCounters {
        self.shared.counters()
    }

    /// Stop all work and wait until nothing touches the state any more; unfinished jobs resume
    /// when the directory is opened again.
    pub async fn shutdown(self) {
        let mut tasks = self.shared.take_tasks();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        if let Ok(permits) = self.shared.blocking_permits().acquire_many(BLOCKING_PERMITS).await {
            permits.forget();
        }
        self.shared.blocking_permits().close();
    }
}

impl<C: Connector> Drop for Fetcher<C> {
    fn drop(&mut self) {
        self.shared.take_tasks().abort_all();
    }
}
