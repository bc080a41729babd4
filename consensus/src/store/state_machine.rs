//! The replicated state machine: the referral region plus cluster bookkeeping, persisted in redb.

use super::db::{blocking, entity_values, read_meta, storage_error, DbError, SM_ENTITIES, SM_META, SNAPSHOT};
use super::persister::Persister;
use super::snapshot_file::SnapshotDir;
use crate::codec;
use crate::types::{LogId, NodeId, Request, Response, StorageError, StoredMembership, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, SnapshotMeta};
use redb::{Database, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use yilian_referral::{Entity, EntityKey, Region};

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const RETIRED: &str = "retired_nodes";
const REVOKED: &str = "revoked_certificates";
const RETIRING: &str = "retiring_nodes";
const SNAPSHOT_META: &str = "meta";
/// Where the snapshot's data is: a [`SnapshotFile`].
const SNAPSHOT_FILE: &str = "file";
/// The snapshot's data itself, as builds before snapshot files stored it; read if no file is
/// named, removed when the next snapshot is stored.
const SNAPSHOT_DATA: &str = "data";

/// Metadata of a snapshot.
type Meta = SnapshotMeta<NodeId, crate::types::NodeInfo>;

/// Everything the state machine holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Last log entry applied.
    pub last_applied: Option<LogId>,
    /// Last membership applied.
    pub membership: StoredMembership,
    /// Node ids that were removed and may never be used again.
    pub retired_nodes: BTreeSet<NodeId>,
    /// SHA-256 fingerprints of certificates refused at the handshake (removed nodes').
    pub revoked_certificates: BTreeSet<String>,
    /// Nodes whose removal was requested while they were still members, with the certificates
    /// to revoke. Each retires once a committed membership no longer holds it: retiring earlier
    /// would make the others refuse a removed leader before it has replicated its own removal.
    pub retiring_nodes: BTreeMap<NodeId, Vec<String>>,
    /// The referral region.
    pub region: Region,
}

impl ClusterState {
    pub(super) fn load(db: &Database) -> Result<Self, DbError> {
        let txn = db.begin_read()?;
        let mut state = Self::bookkeeping(&txn.open_table(SM_META)?)?;
        entity_values(&txn, |value| {
            state.region.restore(codec::decode(value)?);
            Ok(())
        })?;
        Ok(state)
    }

    /// Everything but the region's entities, from the metadata table.
    fn bookkeeping(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Self, DbError> {
        Ok(ClusterState {
            last_applied: read_meta(meta, LAST_APPLIED)?.flatten(),
            membership: read_meta(meta, MEMBERSHIP)?.unwrap_or_default(),
            retired_nodes: read_meta(meta, RETIRED)?.unwrap_or_default(),
            revoked_certificates: read_meta(meta, REVOKED)?.unwrap_or_default(),
            retiring_nodes: read_meta(meta, RETIRING)?.unwrap_or_default(),
            region: Region::default(),
        })
    }

    /// Write the bookkeeping (everything but the region) into `txn`.
    pub(super) fn persist_meta(&self, txn: &WriteTransaction) -> Result<(), DbError> {
        let mut meta = txn.open_table(SM_META)?;
        meta.insert(LAST_APPLIED, codec::encode(&self.last_applied)?.as_slice())?;
        meta.insert(MEMBERSHIP, codec::encode(&self.membership)?.as_slice())?;
        meta.insert(RETIRED, codec::encode(&self.retired_nodes)?.as_slice())?;
        meta.insert(REVOKED, codec::encode(&self.revoked_certificates)?.as_slice())?;
        meta.insert(RETIRING, codec::encode(&self.retiring_nodes)?.as_slice())?;
        Ok(())
    }

    /// Entities as stored: encoded key and value, `None` for one to delete.
    pub(super) fn encode_entities(
        entities: impl IntoIterator<Item = (EntityKey, Option<Entity>)>,
    ) -> Result<EncodedEntities, DbError> {
        entities
            .into_iter()
            .map(|(key, entity)| {
                Ok((codec::encode_key(&key)?, entity.map(|e| codec::encode(&e)).transpose()?))
            })
            .collect()
    }

    /// Write encoded entities into `txn`.
    pub(super) fn persist_entities(
        txn: &WriteTransaction,
        entities: &EncodedEntities,
    ) -> Result<(), DbError> {
        let mut table = txn.open_table(SM_ENTITIES)?;
        for (key, value) in entities {
            match value {
                Some(v) => table.insert(key.as_slice(), v.as_slice())?,
                None => table.remove(key.as_slice())?,
            };
        }
        Ok(())
    }
}

/// Encoded entity keys and values (`None`: delete the key).
pub(super) type EncodedEntities = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Read access to the state machine shared with the API layer.
#[derive(Clone, Default)]
pub struct SharedState(Arc<RwLock<ClusterState>>);

impl SharedState {
    /// A read guard on the current state. Hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ClusterState> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The state machine store handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Database>,
    state: SharedState,
    persister: Arc<Persister>,
    snapshots: SnapshotDir,
}

/// A snapshot's contents: the cluster bookkeeping (with an empty region) and every entity of the
/// region as the codec bytes the state machine stores, copied from one read transaction. Built
/// that way, a snapshot needs neither the in-memory state's lock nor a re-encoding of the region,
/// so applying goes on while it is built, however large the region.
#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    bookkeeping: ClusterState,
    entities: Vec<Vec<u8>>,
}

impl SnapshotImage {
    /// The state as persisted by the last apply (a consistent point: one read transaction).
    fn read(db: &Database) -> Result<Self, DbError> {
        let txn = db.begin_read()?;
        let bookkeeping = ClusterState::bookkeeping(&txn.open_table(SM_META)?)?;
        let mut entities = Vec::new();
        entity_values(&txn, |value| {
            entities.push(value.to_vec());
            Ok(())
        })?;
        Ok(SnapshotImage { bookkeeping, entities })
    }

    /// The full state the image describes.
    fn into_state(self) -> Result<ClusterState, DbError> {
        let mut state = self.bookkeeping;
        for entity in &self.entities {
            state.region.restore(codec::decode(entity)?);
        }
        Ok(state)
    }
}

/// The file holding the current snapshot's data (the encoded [`SnapshotImage`]), recorded in
/// the snapshot table beside its metadata.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    name: String,
    len: u64,
}

impl SnapshotFile {
    /// Read the current snapshot's metadata and file record from the snapshot table.
    fn current(
        table: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<(Option<Meta>, Option<Self>), DbError> {
        Ok((read_meta(table, SNAPSHOT_META)?, read_meta(table, SNAPSHOT_FILE)?))
    }

    /// Make `data` the current snapshot: its file first, durably, then one commit that names it
    /// (with whatever `also` writes into the same transaction, and without a data blob an
    /// earlier build kept in the table), then remove every other snapshot file.
    fn store(
        db: &Database,
        snapshots: &SnapshotDir,
        meta: &Meta,
        data: &[u8],
        also: impl FnOnce(&WriteTransaction) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let file = Self { name: SnapshotDir::file_name(&meta.snapshot_id), len: data.len() as u64 };
        snapshots.write(&file.name, data)?;
        let txn = db.begin_write()?;
        also(&txn)?;
        {
            let mut t = txn.open_table(SNAPSHOT)?;
            t.insert(SNAPSHOT_META, codec::encode(meta)?.as_slice())?;
            t.insert(SNAPSHOT_FILE, codec::encode(&file)?.as_slice())?;
            t.remove(SNAPSHOT_DATA)?;
        }
        txn.commit()?;
        snapshots.remove_others(Some(&file.name))?;
        Ok(())
    }
}

impl StateMachineStore {
    /// The state machine over `db`, holding `state`, with snapshot files in `snapshot_dir`.
    /// Snapshot files the database does not name (left by a crash) are removed.
    pub(super) fn open(
        db: Arc<Database>,
        state: ClusterState,
        snapshot_dir: PathBuf,
    ) -> Result<Self, DbError> {
        let snapshots = SnapshotDir::new(snapshot_dir);
        let (_, file) = SnapshotFile::current(&db.begin_read()?.open_table(SNAPSHOT)?)?;
        snapshots.remove_others(file.as_ref().map(|f| f.name.as_str()))?;
        let state = SharedState(Arc::new(RwLock::new(state)));
        let persister = Arc::new(Persister::start(db.clone(), state.clone()));
        Ok(Self { db, state, persister, snapshots })
    }

    /// Shared read access to the state, for the API.
    pub fn shared(&self) -> SharedState {
        self.state.clone()
    }

    /// Wait until everything applied so far is stored (not yet fsynced: the next durable commit
    /// on the database does that).
    pub async fn stored(&self) -> Result<(), StorageError> {
        self.persister
            .flush()
            .await
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    /// Store a built snapshot: its data file first, then the commit that names it; hands the
    /// data back for the caller's [`Snapshot`].
    async fn save_snapshot(&self, meta: Meta, data: Vec<u8>) -> Result<Vec<u8>, DbError> {
        let (db, snapshots) = (self.db.clone(), self.snapshots.clone());
        blocking(move || {
            SnapshotFile::store(&db, &snapshots, &meta, &data, |_| Ok(()))?;
            Ok(data)
        })
        .await
    }
}

fn apply_entry(
    state: &mut ClusterState,
    entry: &openraft::Entry<TypeConfig>,
    touched: &mut Vec<EntityKey>,
) -> Response {
    state.last_applied = Some(entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => Response::Empty,
        EntryPayload::Membership(m) => {
            state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
            state.retire_departed();
            Response::Empty
        }
        EntryPayload::Normal(Request::Referral { at_ms, command }) => {
            let applied = state.region.apply(*at_ms, command);
            touched.extend(applied.touched);
            Response::Referral(applied.result)
        }
        EntryPayload::Normal(Request::Referrals(batch)) => Response::Referrals(
            batch
                .iter()
                .map(|c| {
                    let applied = state.region.apply(c.at_ms, &c.command);
                    touched.extend(applied.touched);
                    applied.result
                })
                .collect(),
        ),
        EntryPayload::Normal(Request::RetireNode { node_id, certificates }) => {
            state.retiring_nodes.entry(*node_id).or_default().extend(certificates.iter().cloned());
            state.retire_departed();
            Response::NodeRetired
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let s = self.state.read();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let mut touched = Vec::new();
        let mut responses = Vec::new();
        let last = {
            let mut state = self.state.write();
            for entry in entries {
                responses.push(apply_entry(&mut state, &entry, &mut touched));
            }
            // Stored in the background, without an fsync: see `persister`.
            self.persister.record(touched).map_err(|e| {
                let subject = state.last_applied.map_or(ErrorSubject::StateMachine, ErrorSubject::Apply);
                storage_error(subject, ErrorVerb::Write, e)
            })?;
            state.last_applied
        };
        tracing::debug!(
            last = last.map(|l| l.index),
            applied_us = started.elapsed().as_micros() as u64,
            "entries applied"
        );
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let data = snapshot.into_inner();
        let new_state = codec::decode::<SnapshotImage>(&data)
            .map_err(DbError::from)
            .and_then(SnapshotImage::into_state)
            .map_err(|e| storage_error(subject(), ErrorVerb::Read, e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, "installing snapshot");
        // Everything applied before the snapshot is stored first, so nothing older lands after it.
        self.persister.flush().await.map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        let (db, snapshots, meta) = (self.db.clone(), self.snapshots.clone(), meta.clone());
        let bookkeeping = new_state.bookkeeping_only();
        let entities = ClusterState::encode_entities(new_state.region.keys().into_iter().map(|k| {
            let e = new_state.region.entity(&k);
            (k, e)
        }))
        .map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        blocking(move || {
            SnapshotFile::store(&db, &snapshots, &meta, &data, |txn| {
                txn.open_table(SM_ENTITIES)?.retain(|_, _| false)?;
                bookkeeping.persist_meta(txn)?;
                ClusterState::persist_entities(txn, &entities)
            })
        })
        .await
        .map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        *self.state.write() = new_state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let (db, snapshots) = (self.db.clone(), self.snapshots.clone());
        let stored = blocking(move || {
            let txn = db.begin_read()?;
            let t = txn.open_table(SNAPSHOT)?;
            let (meta, file) = SnapshotFile::current(&t)?;
            let data = match file {
                Some(file) => Some(snapshots.read(&file.name, file.len)?),
                None => t.get(SNAPSHOT_DATA)?.map(|v| v.value().to_vec()),
            };
            Ok(meta.zip(data))
        })
        .await
        .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // The snapshot is read from storage: store everything applied so far first.
        self.persister
            .flush()
            .await
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        let db = self.db.clone();
        let (image_meta, data) = blocking(move || {
            let image = SnapshotImage::read(&db)?;
            let meta = (image.bookkeeping.last_applied, image.bookkeeping.membership.clone());
            Ok((meta, codec::encode(&image)?))
        })
        .await
        .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        let (last_log_id, last_membership) = image_meta;
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, now_ms()),
            None => format!("empty-{}", now_ms()),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let data = self.save_snapshot(meta.clone(), data).await.map_err(|e| {
            storage_error(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Write, e)
        })?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl ClusterState {
    /// Everything but the region (which is left empty).
    pub(super) fn bookkeeping_only(&self) -> ClusterState {
        ClusterState {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            retired_nodes: self.retired_nodes.clone(),
            revoked_certificates: self.revoked_certificates.clone(),
            retiring_nodes: self.retiring_nodes.clone(),
            region: Region::default(),
        }
    }

    /// Retire every node whose removal was requested and which the applied membership no longer
    /// holds: its id may never be used again and its certificates are refused from now on.
    fn retire_departed(&mut self) {
        let members: BTreeSet<NodeId> = self.membership.membership().nodes().map(|(id, _)| *id).collect();
        let departed: Vec<NodeId> =
            self.retiring_nodes.keys().filter(|id| !members.contains(id)).copied().collect();
        for id in departed {
            if let Some(certificates) = self.retiring_nodes.remove(&id) {
                self.retired_nodes.insert(id);
                self.revoked_certificates.extend(certificates);
            }
        }
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, Membership};
    use std::collections::BTreeMap;

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
    }

    fn voters(ids: &[NodeId]) -> EntryPayload<TypeConfig> {
        let nodes: BTreeMap<NodeId, crate::types::NodeInfo> =
            ids.iter().map(|id| (*id, crate::types::NodeInfo::default())).collect();
        EntryPayload::Membership(Membership::new(vec![ids.iter().copied().collect()], nodes))
    }

    fn retire(node_id: NodeId) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(Request::RetireNode { node_id, certificates: vec![format!("fp-{node_id}")] })
    }

    fn apply(state: &mut ClusterState, index: u64, payload: EntryPayload<TypeConfig>) {
        apply_entry(state, &entry(index, payload), &mut Vec::new());
    }

    #[test]
    fn a_member_retires_only_once_a_membership_without_it_applies() {
        let mut state = ClusterState::default();
        apply(&mut state, 1, voters(&[1, 2, 3]));
        apply(&mut state, 2, retire(1));
        assert!(state.retired_nodes.is_empty(), "still a member: the others must keep accepting it");
        assert!(state.revoked_certificates.is_empty());
        let joint = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 3])],
            BTreeMap::from([(1, Default::default()), (2, Default::default()), (3, Default::default())]),
        );
        apply(&mut state, 3, EntryPayload::Membership(joint));
        assert!(state.retired_nodes.is_empty(), "the joint configuration still holds node 1");
        apply(&mut state, 4, voters(&[2, 3]));
        assert_eq!(state.retired_nodes, BTreeSet::from([1]));
        assert_eq!(state.revoked_certificates, BTreeSet::from(["fp-1".to_owned()]));
        assert!(state.retiring_nodes.is_empty());
    }

    fn facility(
        id: &str,
        level: yilian_referral::FacilityLevel,
        parent: Option<&str>,
    ) -> EntryPayload<TypeConfig> {
        use yilian_referral::{Actor, Change, Command, FacilityId, FacilityRegistration};
        let command = Command::new(
            Actor::ops("test"),
            Change::RegisterFacility(FacilityRegistration {
                id: FacilityId(id.into()),
                name: id.into(),
                level,
                region: "r".into(),
                parent: parent.map(|p| FacilityId(p.into())),
                location: None,
                devices: BTreeSet::new(),
            }),
        );
        EntryPayload::Normal(Request::Referral { at_ms: 1_700_000_000_000, command: Box::new(command) })
    }

    #[tokio::test]
    async fn a_snapshot_built_from_storage_installs_to_the_same_state() {
        use yilian_referral::FacilityLevel;
        let (from, to) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let mut source = crate::store::open(from.path()).expect("open").state_machine;
        let entries = vec![
            entry(1, voters(&[1, 2, 3])),
            entry(2, facility("PROV", FacilityLevel::Provincial, None)),
            entry(3, facility("CTY", FacilityLevel::County, Some("PROV"))),
            entry(4, retire(3)),
            entry(5, retire(9)),
        ];
        source.apply(entries).await.expect("apply");
        let snapshot = source.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(5));

        let mut target = crate::store::open(to.path()).expect("open").state_machine;
        target.install_snapshot(&snapshot.meta, snapshot.snapshot).await.expect("install");
        let expected = source.shared().read().clone();
        assert!(
            expected.region.keys().len() >= 2,
            "both facilities (and their audit events) are in the snapshot"
        );
        assert_eq!(expected.retiring_nodes.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(*target.shared().read(), expected);
        drop(target);
        let reopened = crate::store::open(to.path()).expect("reopen").state_machine;
        assert_eq!(*reopened.shared().read(), expected, "the installed state survives a restart");
    }

    #[test]
    fn a_node_outside_the_membership_retires_at_once() {
        let mut state = ClusterState::default();
        apply(&mut state, 1, voters(&[1, 2]));
        apply(&mut state, 2, retire(9));
        assert_eq!(state.retired_nodes, BTreeSet::from([9]));
        assert_eq!(state.revoked_certificates, BTreeSet::from(["fp-9".to_owned()]));
    }
}
