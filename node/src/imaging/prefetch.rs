//! Prefetch: studies of cases offered to or owned by readers this node serves are fetched from
//! the nodes that hold them, chunk by chunk, with the transfer state in `<data_dir>/transfers`
//! so a restart resumes. Each object is verified and catalogued as soon as it is stored, so a
//! reader here can open the first images while the rest arrive; a completed study is recorded
//! in the manifest (via Raft) as held by this node only once every instance is verified. The same loop starts de-identified copies of
//! studies leaving their region ([`super::deidentify`]).

use super::deidentify::Deidentifications;
use super::Imaging;
use crate::config::ImagingSettings;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use yilian_consensus::ClusterNode;
use yilian_dicom::transfer::{
    Connector, FetchConfig, FetchCounters, FetchError, FetchEvent, FetchJob, Fetcher, SourceId,
    UploadCounters, UploadReceiver, PRIORITY_ROUTINE, PRIORITY_STAT,
};
use yilian_dicom::Digest;
use yilian_referral::{Actor, Change, Command, FacilityId, Priority};

/// How often the loop looks for work whatever happens (retries, de-identified copies, reports).
const PLAN_EVERY: Duration = Duration::from_millis(500);
/// How soon after new entries are applied the loop looks for work again: a case offered to one
/// of this node's readers starts its prefetch within this, not within [`PLAN_EVERY`].
const PLAN_ON_CHANGE_EVERY: Duration = Duration::from_millis(50);
/// How long a failed job waits before it is submitted again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);
/// Prefix of prefetch job ids; the rest is the Study Instance UID.
const JOB_PREFIX: &str = "prefetch:";
/// Priority of ASAP and urgent cases.
const PRIORITY_URGENT: u8 = 2;

/// What the transfer engine did since the node started, for `/metrics`.
#[derive(Debug, Default)]
pub struct TransferStats {
    inner: Mutex<TransferSnapshot>,
    uploads: OnceLock<Arc<UploadReceiver>>,
}

/// One reading of [`TransferStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferSnapshot {
    /// Node-to-node fetch counters (chunks fetched, resumed, corrupt, bytes, failures, ...).
    pub fetch: FetchCounters,
    /// Prefetch jobs running or queued.
    pub jobs_queued: u64,
    /// Prefetch jobs completed.
    pub jobs_completed: u64,
    /// Prefetch jobs that failed (and will be retried).
    pub jobs_failed: u64,
    /// Instances recorded in manifests as held by this node after a prefetch.
    pub copies_recorded: u64,
    /// Clinic upload counters.
    pub uploads: UploadCounters,
    /// Manifest writes made by ingest (filled by [`super::Imaging::counters`]).
    pub manifests: super::manifest_batch::ManifestCounters,
}

impl TransferStats {
    /// The current values.
    pub fn snapshot(&self) -> TransferSnapshot {
        let mut s = *self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = self.uploads.get() {
            s.uploads = r.counters();
        }
        s
    }

    /// Report the counters of `receiver` as the upload counters.
    pub fn watch_uploads(&self, receiver: Arc<UploadReceiver>) {
        let _ = self.uploads.set(receiver);
    }

    fn update(&self, f: impl FnOnce(&mut TransferSnapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Reaches other nodes' image stores through the cluster's QUIC endpoint.
struct NodeConnector {
    node: Arc<ClusterNode>,
    /// Bytes a source may have in flight to this node when a connection opens.
    receive_window: u32,
    /// Most bytes a source may have in flight on one stream (`[imaging] fetch_window_kb`).
    stream_window: u32,
}

impl Connector for NodeConnector {
    async fn connect(&self, source: &SourceId) -> Result<quinn::Connection, String> {
        let id: u64 = source.0.parse().map_err(|_| format!("source `{source}` is not a node id"))?;
        self.node.connect_bulk(id, self.receive_window, self.stream_window).await.map_err(|e| e.to_string())
    }
}

/// The running prefetch loop.
pub struct Prefetch {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Prefetch {
    /// Open the transfer state in `<data_dir>/transfers` (resuming unfinished jobs) and start
    /// the loop for the facilities in `settings.serves`.
    pub async fn start(
        imaging: Arc<Imaging>,
        settings: &ImagingSettings,
        data_dir: &Path,
    ) -> Result<Prefetch, FetchError> {
        let cfg = FetchConfig {
            streams_per_link: settings.streams_per_link,
            bandwidth_per_source: settings.link_rate_limit_bytes(),
            max_object_size: settings.max_object_bytes(),
            backoff_max: Duration::from_secs(10),
            receive_window: settings.adaptive_fetch_window(),
            ..FetchConfig::default()
        };
        let connector = Arc::new(NodeConnector {
            node: imaging.node().clone(),
            receive_window: settings.fetch_window_start_bytes(),
            stream_window: settings.fetch_window_bytes(),
        });
        let (fetcher, events) =
            Fetcher::open(&data_dir.join("transfers"), imaging.shared_store(), connector, cfg).await?;
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            in_flight: fetcher.jobs().into_iter().collect(),
            fetcher,
            imaging,
            serves: settings.serves.clone(),
            retry_after: HashMap::new(),
            deidentifications: Deidentifications::default(),
            catalogued: HashMap::new(),
        };
        let task = tokio::spawn(worker.run(events, stopped));
        Ok(Prefetch { stop, task })
    }

    /// Stop the loop; unfinished transfers resume at the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "prefetch loop ended abnormally");
        }
    }
}

struct Worker {
    fetcher: Fetcher<NodeConnector>,
    imaging: Arc<Imaging>,
    serves: Vec<FacilityId>,
    in_flight: HashSet<String>,
    retry_after: HashMap<String, Instant>,
    deidentifications: Deidentifications,
    /// Objects verified and catalogued ahead of their study's record, by Study Instance UID.
    catalogued: HashMap<String, HashSet<Digest>>,
}

impl Worker {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<FetchEvent>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(PLAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut soon = tokio::time::interval(PLAN_ON_CHANGE_EVERY);
        soon.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let metrics = self.imaging.node().metrics();
        let applied = || metrics.borrow().last_applied.map(|l| l.index);
        let mut planned_at = applied();
        loop {
            tokio::select! {
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        break;
                    }
                }
                Some(event) = events.recv() => self.on_event(event).await,
                _ = tick.tick() => {
                    planned_at = applied();
                    self.plan().await;
                    self.deidentifications.start_wanted(&self.imaging);
                    self.report();
                }
                _ = soon.tick() => {
                    let now = applied();
                    if now != planned_at {
                        planned_at = now;
                        self.plan().await;
                    }
                }
            }
        }
        self.deidentifications.stop().await;
        self.fetcher.shutdown().await;
    }

    fn report(&self) {
        let (counters, queued) = (self.fetcher.counters(), self.fetcher.jobs().len() as u64);
        self.imaging.transfers().update(|s| {
            s.fetch = counters;
            s.jobs_queued = queued;
        });
    }

    async fn plan(&mut self) {
        if self.serves.is_empty() {
            return;
        }
        let me = self.imaging.node().id();
        let wants = self.imaging.node().state().read().region.prefetch_wanted(me, &self.serves);
        let now = Instant::now();
        self.retry_after.retain(|_, at| *at > now);
        for want in wants {
            let id = format!("{JOB_PREFIX}{}", want.study_uid);
            if self.in_flight.contains(&id) || self.retry_after.contains_key(&id) {
                continue;
            }
            let mut objects: Vec<(Digest, u64)> = Vec::new();
            let mut holders: BTreeSet<u64> = BTreeSet::new();
            for (_, sha, size, held_by) in &want.missing {
                if let Ok(digest) = sha.parse::<Digest>() {
                    if !objects.iter().any(|(d, _)| *d == digest) {
                        objects.push((digest, *size));
                    }
                }
                holders.extend(held_by.iter().copied().filter(|h| *h != me));
            }
            if holders.is_empty() || objects.is_empty() {
                continue;
            }
            let job = FetchJob {
                id: id.clone(),
                priority: priority_of(want.priority),
                objects,
                sources: holders.iter().map(|h| SourceId(h.to_string())).collect(),
            };
            match self.fetcher.submit(job).await {
                Ok(()) => {
                    tracing::info!(study = %want.study_uid, case = %want.case, instances = want.missing.len(), "prefetch started");
                    self.in_flight.insert(id);
                }
                Err(e) => {
                    tracing::warn!(study = %want.study_uid, error = %e, "prefetch could not start");
                    self.retry_after.insert(id, now + RETRY_FAILED_AFTER);
                }
            }
        }
    }

    async fn on_event(&mut self, event: FetchEvent) {
        match event {
            FetchEvent::ObjectStored { job, digest } => {
                let Some(study) = job.strip_prefix(JOB_PREFIX) else { return };
                if catalogue_early(&self.imaging, study, digest).await {
                    self.catalogued.entry(study.to_owned()).or_default().insert(digest);
                }
            }
            FetchEvent::JobComplete { job } => {
                self.in_flight.remove(&job);
                let Some(study) = job.strip_prefix(JOB_PREFIX) else { return };
                self.imaging.transfers().update(|s| s.jobs_completed += 1);
                let done = self.catalogued.get(study).cloned().unwrap_or_default();
                match record_copy(&self.imaging, study, &done).await {
                    Ok(n) => {
                        tracing::info!(study, instances = n, "prefetched study verified and recorded");
                        self.catalogued.remove(study);
                        self.imaging.transfers().update(|s| s.copies_recorded += n as u64);
                    }
                    Err(e) => {
                        tracing::warn!(study, error = %e, "prefetched study not recorded yet; will retry")
                    }
                }
            }
            FetchEvent::JobFailed { job, error } => {
                tracing::warn!(job, error, "prefetch failed; retrying later");
                self.in_flight.remove(&job);
                self.retry_after.insert(job, Instant::now() + RETRY_FAILED_AFTER);
                self.imaging.transfers().update(|s| s.jobs_failed += 1);
            }
        }
    }
}

/// Transfer priority of a case priority: STAT overtakes everything, then ASAP and urgent.
fn priority_of(p: Priority) -> u8 {
    match p {
        Priority::Stat => PRIORITY_STAT,
        Priority::Asap | Priority::Urgent => PRIORITY_URGENT,
        Priority::Routine => PRIORITY_ROUTINE,
    }
}

/// Verify and catalogue one fetched object of `study_uid` so readers here can open it before
/// the rest of the study arrives; false when it could not be (it is tried again at the end).
async fn catalogue_early(imaging: &Imaging, study_uid: &str, digest: Digest) -> bool {
    let case = match imaging.node().state().read().region.study(study_uid) {
        Ok(study) => study.case.clone(),
        Err(_) => return false,
    };
    match imaging.catalogue_copy(&case, digest).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(study = study_uid, %digest, error = %e, "fetched object failed verification");
            false
        }
    }
}

/// Verify and catalogue the instances of `study_uid` this node now stores but the manifest does
/// not show it holding (except those in `catalogued`, verified as they arrived), then record
/// them (as the system) as held here. Returns how many.
async fn record_copy(
    imaging: &Imaging,
    study_uid: &str,
    catalogued: &HashSet<Digest>,
) -> Result<usize, String> {
    let me = imaging.node().id();
    let (case, missing) = {
        let state = imaging.node().state().read();
        let study = state.region.study(study_uid).map_err(|e| e.to_string())?;
        let missing: Vec<(String, String)> = study
            .missing_at(me)
            .map(|i| (i.record.sop_instance_uid.clone(), i.record.sha256.clone()))
            .collect();
        (study.case.clone(), missing)
    };
    let mut verified = Vec::new();
    for (sop, sha) in missing {
        let Ok(digest) = sha.parse::<Digest>() else { continue };
        if !imaging.store().contains(&digest) {
            continue;
        }
        if catalogued.contains(&digest) {
            verified.push(sop);
            continue;
        }
        match imaging.catalogue_copy(&case, digest).await {
            Ok(_) => verified.push(sop),
            Err(e) => {
                tracing::warn!(study = study_uid, %digest, error = %e, "fetched object failed verification")
            }
        }
    }
    if verified.is_empty() {
        return Ok(0);
    }
    let n = verified.len();
    let change = Change::HoldStudyCopy { study_uid: study_uid.to_owned(), node: me, instances: verified };
    match imaging.node().write(Command::new(Actor::system(), change)).await {
        Ok(Ok(_)) => Ok(n),
        Ok(Err(refused)) => Err(refused.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
