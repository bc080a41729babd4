//! Group commit for study manifests. Instances ingested concurrently for the same study by the
//! same requester (several DIMSE associations, parallel STOW parts or uploads) are recorded in
//! one Raft write instead of one each: while a lane's write is in flight, arrivals queue, and the
//! next write carries all of them. Every caller still waits for its own instance to be
//! committed, so nothing is acknowledged before it is durable in the manifest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
use yilian_consensus::ClusterNode;
use yilian_referral::{
    Actor, CaseId, Change, Command, InstanceBatch, InstanceRecord, Provenance, MAX_INSTANCES_PER_BATCH,
};

/// What one batch is recorded as: every instance in a write shares all of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    /// The case the study belongs to.
    pub case: CaseId,
    /// Study Instance UID.
    pub study_uid: String,
    /// The study this copy was de-identified from, if it is a derived copy.
    pub derived_from: Option<String>,
    /// Who records the instances.
    pub actor: Actor,
    /// Where the request came from.
    pub provenance: Provenance,
}

/// Why an instance did not make it into the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestFailure {
    /// The domain refused the record (the reason says why).
    Refused(String),
    /// The cluster could not be reached, or the outcome is unknown.
    Unavailable(String),
}

type Waiter = (InstanceRecord, oneshot::Sender<Result<(), ManifestFailure>>);

#[derive(Default)]
struct Queue {
    writing: bool,
    waiting: Vec<Waiter>,
}

/// How many manifest writes ingest made, and how many instances they recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestCounters {
    /// Raft writes recording ingested instances.
    pub writes: u64,
    /// Instances those writes recorded.
    pub instances: u64,
    /// Instances waiting for their manifest write now (being written or queued behind it).
    pub waiting: u64,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    instances: AtomicU64,
    waiting: AtomicU64,
}

/// Records instances in study manifests through Raft, batching concurrent ones per [`Lane`].
#[derive(Clone)]
pub struct ManifestBatcher {
    node: Arc<ClusterNode>,
    lanes: Arc<Mutex<HashMap<Lane, Queue>>>,
    counters: Arc<Counters>,
}

impl ManifestBatcher {
    /// A batcher writing through `node`.
    pub fn new(node: Arc<ClusterNode>) -> Self {
        Self { node, lanes: Arc::default(), counters: Arc::default() }
    }

    /// The counters since this process started.
    pub fn counters(&self) -> ManifestCounters {
        ManifestCounters {
            writes: self.counters.writes.load(Ordering::Relaxed),
            instances: self.counters.instances.load(Ordering::Relaxed),
            waiting: self.counters.waiting.load(Ordering::Relaxed),
        }
    }

    /// Record `record` in the manifest of `lane`'s study; returns once it is committed (or
    /// refused). The write itself runs in its own task, so a caller that goes away does not
    /// stall the others queued behind it.
    pub async fn record(&self, lane: Lane, record: InstanceRecord) -> Result<(), ManifestFailure> {
        let (tx, rx) = oneshot::channel();
        let start_writer = {
            let mut lanes = self.lock();
            let queue = lanes.entry(lane.clone()).or_default();
            queue.waiting.push((record, tx));
            self.counters.waiting.fetch_add(1, Ordering::Relaxed);
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            tokio::spawn(self.clone().drain(lane));
        }
        rx.await.unwrap_or_else(|_| Err(ManifestFailure::Unavailable("the node is shutting down".to_owned())))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Lane, Queue>> {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write the lane's queued instances, batch after batch, until none are left.
    async fn drain(self, lane: Lane) {
        loop {
            let batch: Vec<Waiter> = {
                let mut lanes = self.lock();
                let Some(queue) = lanes.get_mut(&lane) else { return };
                if queue.waiting.is_empty() {
                    lanes.remove(&lane);
                    return;
                }
                let take = queue.waiting.len().min(MAX_INSTANCES_PER_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let records: Vec<InstanceRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
            match self.write(&lane, records).await {
                Err(ManifestFailure::Refused(_)) if batch.len() > 1 => {
                    // One refused instance refuses the whole batch: find out which, one by one.
                    for (record, tx) in batch {
                        let result = self.write(&lane, vec![record]).await;
                        self.answer(tx, result);
                    }
                }
                result => {
                    tracing::debug!(instances = batch.len(), study = %lane.study_uid, "manifest batch written");
                    for (_, tx) in batch {
                        self.answer(tx, result.clone());
                    }
                }
            }
        }
    }

    fn answer(&self, tx: oneshot::Sender<Result<(), ManifestFailure>>, result: Result<(), ManifestFailure>) {
        self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        let _ = tx.send(result);
    }

    async fn write(&self, lane: &Lane, instances: Vec<InstanceRecord>) -> Result<(), ManifestFailure> {
        let batch = InstanceBatch {
            case: lane.case.clone(),
            study_uid: lane.study_uid.clone(),
            node: self.node.id(),
            instances,
            derived_from: lane.derived_from.clone(),
        };
        let count = batch.instances.len() as u64;
        let command = Command::new(lane.actor.clone(), Change::RecordInstances(batch))
            .with_provenance(lane.provenance.clone());
        match self.node.write(command).await {
            Ok(Ok(_)) => {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                self.counters.instances.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(refused)) => Err(ManifestFailure::Refused(refused.to_string())),
            Err(e) => Err(ManifestFailure::Unavailable(e.to_string())),
        }
    }
}
