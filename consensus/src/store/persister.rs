//! Writes what the state machine applied to redb in the background, off the commit → answer
//! path.
//!
//! The state machine applies entries in memory and answers at once; the changed entities and the
//! new `last_applied` go to this writer, which merges everything queued since its last commit
//! into one non-durable transaction. Nothing acknowledged depends on it: the log is durable, and
//! after a crash the stored state is that of some earlier `last_applied` (entities and
//! `last_applied` are always one transaction), from which openraft re-applies the log.

use super::db::{begin_write_lazy, DbError};
use super::state_machine::ClusterState;
use redb::Database;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use yilian_referral::{Entity, EntityKey};

/// Batches of changes that may wait for the writer before `apply` waits for it in turn.
const QUEUED_BATCHES: usize = 64;

/// The result of one applied batch: the bookkeeping as of its last entry (with an empty region)
/// and every entity it touched, `None` for one that no longer exists.
pub(super) struct Changes {
    pub(super) bookkeeping: ClusterState,
    pub(super) entities: Vec<(EntityKey, Option<Entity>)>,
}

enum Job {
    Write(Box<Changes>),
    /// Answered once everything queued before it is committed.
    Barrier(oneshot::Sender<()>),
}

/// Handle of the background writer; the last clone of the state machine drops it, which lets
/// the writer finish what is queued and waits for it, so the database closes cleanly.
pub(super) struct Persister {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Persister {
    /// Start the writer for `db`.
    pub(super) fn start(db: Arc<Database>) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUED_BATCHES);
        let failure = Arc::new(Mutex::new(None));
        let failed = failure.clone();
        let thread = std::thread::Builder::new()
            .name("yilian-sm-writer".into())
            .spawn(move || run(&db, jobs, &failed))
            .map_err(
                |e| tracing::error!(error = %e, "cannot start the state machine writer; applies will fail"),
            )
            .ok();
        Self { queue: Some(queue), thread, failure }
    }

    /// Queue `changes`; waits only while the writer is [`QUEUED_BATCHES`] batches behind.
    pub(super) async fn write(&self, changes: Changes) -> Result<(), DbError> {
        self.check()?;
        self.send(Job::Write(Box::new(changes))).await
    }

    /// Wait until everything queued so far is committed.
    pub(super) async fn flush(&self) -> Result<(), DbError> {
        let (done, committed) = oneshot::channel();
        self.send(Job::Barrier(done)).await?;
        committed.await.map_err(|_| DbError::Background("the state machine writer stopped".into()))?;
        self.check()
    }

    async fn send(&self, job: Job) -> Result<(), DbError> {
        let stopped = || DbError::Background("the state machine writer stopped".into());
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(job).await.map_err(|_| stopped())
    }

    /// The writer's first failure, if any: the state machine must stop then, as a failed apply.
    fn check(&self) -> Result<(), DbError> {
        match self.failure.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(reason) => Err(DbError::Background(reason.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer loop: take every queued job, commit their merged changes once, answer barriers.
fn run(db: &Database, mut jobs: mpsc::Receiver<Job>, failure: &Mutex<Option<String>>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut merged = Merged::default();
        let mut barriers = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Write(changes) => merged.add(*changes),
                Job::Barrier(done) => barriers.push(done),
            }
            next = jobs.try_recv().ok();
        }
        let started = std::time::Instant::now();
        let entities = merged.entities.len();
        if let Err(e) = merged.commit(db) {
            tracing::error!(error = %e, "cannot store the applied state; the node must stop");
            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
        }
        tracing::debug!(entities, us = started.elapsed().as_micros() as u64, "applied state stored");
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// Several batches of changes as one: the newest bookkeeping and each entity's newest value.
#[derive(Default)]
struct Merged {
    bookkeeping: Option<ClusterState>,
    entities: HashMap<EntityKey, Option<Entity>>,
}

impl Merged {
    fn add(&mut self, changes: Changes) {
        self.bookkeeping = Some(changes.bookkeeping);
        self.entities.extend(changes.entities);
    }

    fn commit(self, db: &Database) -> Result<(), DbError> {
        let Some(bookkeeping) = self.bookkeeping else { return Ok(()) };
        let encoded = ClusterState::encode_entities(self.entities)?;
        let txn = begin_write_lazy(db)?;
        bookkeeping.persist_meta(&txn)?;
        ClusterState::persist_entities(&txn, &encoded)?;
        txn.commit()?;
        Ok(())
    }
}
