//! Opening the database, table layout and error conversion.

use super::{ClusterState, LogStore, StateMachineStore};
use crate::codec::{self, CodecError};
use crate::types::StorageError;
use openraft::{AnyError, ErrorSubject, ErrorVerb};
use redb::{
    Database, Durability, ReadTransaction, ReadableTable, TableDefinition, TableHandle, WriteTransaction,
};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yilian_referral::EntityKey;

/// Log entries by index.
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log store metadata: vote, last purged log id, committed log id.
pub(super) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
/// State machine metadata: last applied log id, membership, retired node ids.
pub(super) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// State machine entities (facilities, specialists, cases, audit events, ...), keyed by
/// `codec::encode_key(&EntityKey)`, whose byte order follows the ids' order: a new case or audit
/// event lands in the tree's last leaf. Public for offline tools and tests that inspect a
/// stopped node's file.
pub const SM_ENTITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_entities_ordered");
/// The entity table of earlier builds, keyed by `codec::encode(&EntityKey)` (little-endian
/// integers, so consecutive audit events were scattered over the tree). Moved into
/// [`SM_ENTITIES`] when a node opens its database.
const LEGACY_SM_ENTITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_entities");
/// Where earlier builds recorded the latest snapshot they built (its metadata and data, or the
/// file holding the data). A snapshot is now the stored state itself, so the table is dropped
/// when a node opens its database.
const LEGACY_SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

/// File name of the database inside a node's data directory.
pub const DB_FILE: &str = "raft.redb";
/// Directory inside a node's data directory where snapshots are encoded for followers.
const SNAPSHOT_DIR: &str = "snapshots";

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}; check the path and its permissions")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// redb refused to open the file.
    #[error("cannot open database {path}: {source}; is another yilian process using this data_dir?")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The redb error.
        source: redb::DatabaseError,
    },
    /// The file opened but its contents could not be read.
    #[error("database {path} is unreadable: {reason}; restore it from a backup or re-join the node")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// A freshly opened store: the log half and the state machine half share one database.
pub struct Opened {
    /// Raft log and vote.
    pub log: LogStore,
    /// Replicated state machine.
    pub state_machine: StateMachineStore,
}

/// Open (or create) the node's database under `data_dir` and load the state machine.
pub fn open(data_dir: &Path) -> Result<Opened, StoreOpenError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|source| StoreOpenError::CreateDir { path: data_dir.to_owned(), source })?;
    let path = data_dir.join(DB_FILE);
    let db = Database::create(&path).map_err(|source| StoreOpenError::Open { path: path.clone(), source })?;
    let db = Arc::new(db);
    let corrupt = |reason: String| StoreOpenError::Corrupt { path: path.clone(), reason };
    create_tables(&db).map_err(|e| corrupt(e.to_string()))?;
    let state = ClusterState::load(&db).map_err(|e| corrupt(e.to_string()))?;
    let state_machine = StateMachineStore::open(db.clone(), state, data_dir.join(SNAPSHOT_DIR))
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Opened { log: LogStore::new(db), state_machine })
}

/// Read the replicated state stored under `data_dir` without starting a node (the node must be
/// stopped: redb allows one process at a time). Used by offline checks such as audit verify.
pub fn load_state(data_dir: &Path) -> Result<ClusterState, StoreOpenError> {
    let path = data_dir.join(DB_FILE);
    if !path.is_file() {
        return Err(StoreOpenError::Corrupt {
            path,
            reason: "no database here; point --data-dir at a node's data_dir".into(),
        });
    }
    let db = Database::open(&path).map_err(|source| StoreOpenError::Open { path: path.clone(), source })?;
    ClusterState::load(&db).map_err(|e| StoreOpenError::Corrupt { path, reason: e.to_string() })
}

fn create_tables(db: &Database) -> Result<(), DbError> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(LOG_META)?;
    txn.open_table(SM_META)?;
    txn.open_table(SM_ENTITIES)?;
    txn.delete_table(LEGACY_SNAPSHOT)?;
    let moved = migrate_legacy_entities(&txn)?;
    txn.commit()?;
    if moved > 0 {
        tracing::info!(entities = moved, "moved the state machine's entities to ordered keys");
    }
    Ok(())
}

/// Move every entity of a database written by an earlier build into [`SM_ENTITIES`] under its
/// ordered key, and drop the old table, in the caller's transaction. Returns how many moved.
fn migrate_legacy_entities(txn: &WriteTransaction) -> Result<u64, DbError> {
    let exists = txn.list_tables()?.any(|t| t.name() == LEGACY_SM_ENTITIES.name());
    if !exists {
        return Ok(0);
    }
    let mut moved = 0;
    {
        let legacy = txn.open_table(LEGACY_SM_ENTITIES)?;
        let mut entities = txn.open_table(SM_ENTITIES)?;
        for item in legacy.iter()? {
            let (key, value) = item?;
            let key: EntityKey = codec::decode(key.value())?;
            entities.insert(codec::encode_key(&key)?.as_slice(), value.value())?;
            moved += 1;
        }
    }
    txn.delete_table(LEGACY_SM_ENTITIES)?;
    Ok(moved)
}

/// Every stored entity's encoded value, from [`SM_ENTITIES`] and, in a file an earlier build
/// wrote and no node has opened since (read offline), from the legacy table.
pub(super) fn entity_values(
    txn: &ReadTransaction,
    mut each: impl FnMut(&[u8]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    for definition in [SM_ENTITIES, LEGACY_SM_ENTITIES] {
        let table = match txn.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for item in table.iter()? {
            each(item?.1.value())?;
        }
    }
    Ok(())
}

/// Turn any storage-layer failure into openraft's error for `subject`.
pub(super) fn storage_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageError::IO { source: openraft::StorageIOError::new(subject, verb, AnyError::new(&e)) }
}

/// Any error from the storage layer, folded into one type for internal plumbing.
#[derive(Debug, thiserror::Error)]
pub(super) enum DbError {
    #[error(transparent)]
    Redb(Box<redb::Error>),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("background storage task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("storing the applied state failed: {0}")]
    Background(String),
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! impl_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
impl_from_redb!(redb::Error, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Read and decode `key` from a string-keyed metadata table.
pub(super) fn read_meta<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, DbError> {
    match table.get(key)? {
        Some(v) => Ok(Some(codec::decode(v.value())?)),
        None => Ok(None),
    }
}

/// A write transaction whose commit is not fsynced: it reaches the disk with the next durable
/// commit (every log append, vote, truncation and purge is one) or when the database closes.
/// Only for data that can be rebuilt from the durable log after a crash: the state machine,
/// which openraft re-applies from its `last_applied` on restart.
pub(super) fn begin_write_lazy(db: &Database) -> Result<WriteTransaction, DbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None);
    Ok(txn)
}

/// Run blocking database work off the async executor.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, DbError>
where
    F: FnOnce() -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
