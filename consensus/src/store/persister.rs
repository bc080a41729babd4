//! Writes what the state machine applied to redb in the background, off the commit → answer
//! path.
//!
//! The state machine applies entries in memory and answers at once; while it still holds the
//! state's write lock it marks the entities it touched as dirty here. A writer thread commits
//! at most every [`COMMIT_EVERY`]: it takes the state's read lock, takes the dirty set, encodes
//! those entities straight from the state and copies the bookkeeping (whose `last_applied`
//! covers exactly the entries that made them dirty), and stores them in one non-durable
//! transaction. An entity touched by many entries in between is encoded and stored once, and
//! nothing is cloned, on the apply path or here. Nothing acknowledged depends on the writer:
//! the log is durable, and after a crash the stored state is that of some earlier
//! `last_applied` (entities and `last_applied` are always one transaction), from which openraft
//! re-applies the log.

use super::db::{begin_write_lazy, DbError};
use super::state_machine::{ClusterState, EncodedEntities, SharedState};
use redb::Database;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use yilian_referral::EntityKey;

/// Shortest time between two commits of the applied state while entries keep being applied.
/// Longer merges more changes per commit (an entity touched by several entries is written once,
/// and the tree's upper pages are rewritten once); a crash re-applies at most this much of the
/// log more on restart.
const COMMIT_EVERY: Duration = Duration::from_millis(20);

/// What is waiting to be stored, guarded by [`Shared::pending`].
#[derive(Default)]
struct Pending {
    /// Entities touched since the last commit.
    keys: HashSet<EntityKey>,
    /// Whether anything was applied since the last commit (an entry may touch no entity but
    /// still moves `last_applied`).
    applied: bool,
    /// Callers waiting until everything applied before they asked is committed.
    barriers: Vec<oneshot::Sender<()>>,
    /// The owner is gone: commit what is pending and stop.
    stopping: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle of the background writer; the last clone of the state machine drops it, which lets
/// the writer store what is pending and waits for it, so the database closes cleanly.
pub(super) struct Persister {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// Start the writer that stores `state` into `db`.
    pub(super) fn start(db: Arc<Database>, state: SharedState) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            failure: Mutex::new(None),
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("yilian-sm-writer".into())
            .spawn(move || run(&db, &state, &writer))
            .map_err(
                |e| tracing::error!(error = %e, "cannot start the state machine writer; applies will fail"),
            )
            .ok();
        Self { shared, thread }
    }

    /// Mark `touched` as changed by entries just applied. Must be called while the caller still
    /// holds the state's write lock, so that the writer never sees a `last_applied` whose
    /// changes it has not been told about.
    pub(super) fn record(&self, touched: impl IntoIterator<Item = EntityKey>) -> Result<(), DbError> {
        self.check()?;
        let mut pending = self.shared.pending();
        pending.keys.extend(touched);
        if !pending.applied {
            pending.applied = true;
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Wait until everything applied so far is committed.
    pub(super) async fn flush(&self) -> Result<(), DbError> {
        self.check()?;
        let (done, committed) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            pending.barriers.push(done);
            self.shared.wake.notify_one();
        }
        committed.await.map_err(|_| DbError::Background("the state machine writer stopped".into()))?;
        self.check()
    }

    /// The writer's first failure, if any: the state machine must stop then, as a failed apply.
    pub(super) fn check(&self) -> Result<(), DbError> {
        if self.thread.is_none() {
            return Err(DbError::Background("the state machine writer could not start".into()));
        }
        match self.shared.failure.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(reason) => Err(DbError::Background(reason.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.shared.pending().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer loop: wait for something to store, commit it, answer the barriers it covered.
fn run(db: &Database, state: &SharedState, shared: &Shared) {
    let mut last_commit = Instant::now().checked_sub(COMMIT_EVERY).unwrap_or_else(Instant::now);
    loop {
        let stopping = wait_for_work(shared, last_commit);
        last_commit = Instant::now();
        let (changes, barriers) = take_changes(state, shared);
        if let Some(changes) = changes {
            let entities = changes.as_ref().map_or(0, |c| c.entities.len());
            if let Err(e) = changes.and_then(|c| c.commit(db)) {
                tracing::error!(error = %e, "cannot store the applied state; the node must stop");
                shared.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
            }
            tracing::debug!(entities, us = last_commit.elapsed().as_micros() as u64, "applied state stored");
        }
        for done in barriers {
            let _ = done.send(());
        }
        if stopping {
            return;
        }
    }
}

/// Block until the writer should commit: a barrier or the owner's drop asks now, or entries were
/// applied and [`COMMIT_EVERY`] has passed since `last_commit`. Returns whether it is stopping.
fn wait_for_work(shared: &Shared, last_commit: Instant) -> bool {
    let mut pending = shared.pending();
    loop {
        if pending.stopping {
            return true;
        }
        if !pending.barriers.is_empty() {
            return false;
        }
        if pending.applied {
            let due = last_commit + COMMIT_EVERY;
            let now = Instant::now();
            if now >= due {
                return false;
            }
            pending = shared.wake.wait_timeout(pending, due - now).unwrap_or_else(|p| p.into_inner()).0;
        } else {
            pending = shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Take what is pending and encode it straight from the state, under the state's read lock so
/// that the entities and `last_applied` agree (nothing is copied first); `None` when nothing was
/// applied since the last commit.
fn take_changes(
    state: &SharedState,
    shared: &Shared,
) -> (Option<Result<Changes, DbError>>, Vec<oneshot::Sender<()>>) {
    let state = state.read();
    let mut pending = shared.pending();
    let barriers = std::mem::take(&mut pending.barriers);
    if !std::mem::take(&mut pending.applied) {
        return (None, barriers);
    }
    let keys = std::mem::take(&mut pending.keys);
    drop(pending);
    let entities = ClusterState::encode_entities(keys.into_iter().map(|key| {
        let entity = state.region.entity_ref(&key);
        (key, entity)
    }));
    let changes = entities.map(|entities| Changes { bookkeeping: state.bookkeeping_only(), entities });
    (Some(changes), barriers)
}

/// The state to store: the bookkeeping as of the last applied entry (with an empty region) and
/// every entity touched since the last commit, encoded (`None` for one that no longer exists).
struct Changes {
    bookkeeping: ClusterState,
    entities: EncodedEntities,
}

impl Changes {
    fn commit(self, db: &Database) -> Result<(), DbError> {
        let txn = begin_write_lazy(db)?;
        self.bookkeeping.persist_meta(&txn)?;
        ClusterState::persist_entities(&txn, &self.entities)?;
        txn.commit()?;
        Ok(())
    }
}
