//! The replicated state machine: the referral region plus cluster bookkeeping, persisted in redb.

use super::db::{blocking, entity_values, read_meta, storage_error, DbError, SM_ENTITIES, SM_META};
use super::persister::Persister;
use super::snapshot_data::SnapshotData;
use super::snapshot_dir::SnapshotDir;
use crate::codec;
use crate::types::{LogId, NodeId, Request, Response, StorageError, StoredMembership, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, SnapshotMeta};
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction,
};
use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Seek};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use yilian_referral::{Entity, EntityKey, EntityRef, Region};

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const RETIRED: &str = "retired_nodes";
const REVOKED: &str = "revoked_certificates";
const RETIRING: &str = "retiring_nodes";

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
    pub(super) fn encode_entities<'a>(
        entities: impl IntoIterator<Item = (EntityKey, Option<EntityRef<'a>>)>,
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

/// Read a snapshot's bytes from `reader` (`len` of them) one entity at a time and store them in
/// `txn` (which the caller commits), replacing the stored state; returns the full state.
///
/// The bytes are the cluster bookkeeping (with an empty region), then the number of entities
/// and each entity's stored bytes ([`StoredImage`] writes them; earlier builds wrote the same
/// bytes from a collected `Vec`). Each entity is decoded into the region and its received bytes
/// are stored as they are, under the key it names, so nothing is encoded again and no second
/// copy of the region's bytes is held.
fn install_image(txn: &WriteTransaction, reader: impl io::Read, len: u64) -> Result<ClusterState, DbError> {
    let mut image = codec::StreamDecoder::new(reader, len)?;
    let mut state: ClusterState = image.read()?;
    let count: u64 = image.read()?;
    {
        let mut table = txn.open_table(SM_ENTITIES)?;
        table.retain(|_, _| false)?;
        for _ in 0..count {
            let bytes = image.read_bytes()?;
            let entity: Entity = codec::decode(&bytes)?;
            table.insert(codec::encode_key(&entity.key())?.as_slice(), bytes.as_slice())?;
            state.region.restore(entity);
        }
    }
    image.finish()?;
    state.persist_meta(txn)?;
    Ok(state)
}

/// The stored state of one read transaction, serialized as a snapshot's bytes (see
/// [`install_image`]) straight from the entity table, without collecting the entities first.
struct StoredImage<'a> {
    bookkeeping: &'a ClusterState,
    entities: &'a ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Serialize for StoredImage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut image = serializer.serialize_struct("SnapshotImage", 2)?;
        image.serialize_field("bookkeeping", self.bookkeeping)?;
        image.serialize_field("entities", &StoredEntities(self.entities))?;
        image.end()
    }
}

/// Every stored entity value, serialized as a `Vec<Vec<u8>>`.
struct StoredEntities<'a>(&'a ReadOnlyTable<&'static [u8], &'static [u8]>);

impl Serialize for StoredEntities<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.0.len().map_err(S::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(usize::try_from(len).map_err(S::Error::custom)?))?;
        for item in self.0.iter().map_err(S::Error::custom)? {
            let (_, value) = item.map_err(S::Error::custom)?;
            seq.serialize_element(&EntityBytes(value.value()))?;
        }
        seq.end()
    }
}

/// One entity's stored bytes, serialized as a `Vec<u8>` is (length, then the bytes).
struct EntityBytes<'a>(&'a [u8]);

impl Serialize for EntityBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Encode the state `txn` holds (whose bookkeeping is `bookkeeping`) as a snapshot into a new
/// temporary file in `snapshots`, positioned at its start.
fn encode_stored(
    txn: &ReadTransaction,
    bookkeeping: &ClusterState,
    snapshots: &SnapshotDir,
) -> io::Result<std::fs::File> {
    let entities = txn.open_table(SM_ENTITIES).map_err(io::Error::other)?;
    let mut out = BufWriter::new(snapshots.temp_file()?);
    codec::encode_into(&mut out, &StoredImage { bookkeeping, entities: &entities })
        .map_err(io::Error::other)?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(file)
}

impl StateMachineStore {
    /// The state machine over `db`, holding `state`, encoding snapshots in `snapshot_dir`.
    /// Snapshot files an earlier build stored there are removed.
    pub(super) fn open(
        db: Arc<Database>,
        state: ClusterState,
        snapshot_dir: PathBuf,
    ) -> Result<Self, DbError> {
        let snapshots = SnapshotDir::new(snapshot_dir);
        snapshots.remove_stored()?;
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

    /// The applied state as a snapshot: everything applied so far is stored first, then the
    /// metadata comes from one read transaction, and the data is encoded from that same
    /// transaction when it is first read (see [`SnapshotData`]), so the two always agree.
    async fn stored_snapshot(&self) -> Result<Snapshot<TypeConfig>, DbError> {
        self.persister.flush().await?;
        let db = self.db.clone();
        let (txn, bookkeeping) = blocking(move || {
            let txn = db.begin_read()?;
            let bookkeeping = ClusterState::bookkeeping(&txn.open_table(SM_META)?)?;
            Ok((txn, bookkeeping))
        })
        .await?;
        // Named by the last entry applied: one term's entry at an index is the same everywhere,
        // so a snapshot of the same stored state always has the same name and bytes.
        let snapshot_id = match bookkeeping.last_applied {
            Some(l) => format!("{}-{}", l.leader_id.term, l.index),
            None => "empty".to_owned(),
        };
        let meta = SnapshotMeta {
            last_log_id: bookkeeping.last_applied,
            last_membership: bookkeeping.membership.clone(),
            snapshot_id,
        };
        let snapshots = self.snapshots.clone();
        let data = SnapshotData::deferred(move || encode_stored(&txn, &bookkeeping, &snapshots));
        Ok(Snapshot { meta, snapshot: Box::new(data) })
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let snapshots = self.snapshots.clone();
        let file = blocking(move || Ok(snapshots.temp_file()?))
            .await
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(Box::new(SnapshotData::receiving(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let (reader, len) =
            snapshot.into_reader().await.map_err(|e| storage_error(subject(), ErrorVerb::Read, e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, bytes = len, "installing snapshot");
        // Everything applied before the snapshot is stored first, so nothing older lands after it.
        self.persister.flush().await.map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        let db = self.db.clone();
        let new_state = blocking(move || {
            // Durable: openraft purges the log up to the snapshot once this returns.
            let txn = db.begin_write()?;
            let state = install_image(&txn, reader, len)?;
            txn.commit()?;
            Ok(state)
        })
        .await
        .map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        *self.state.write() = new_state;
        Ok(())
    }

    /// The applied state, as stored now (not the last snapshot built: building one encodes
    /// nothing, see [`SnapshotData`]); `None` before anything is applied.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshot = self
            .stored_snapshot()
            .await
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(snapshot.meta.last_log_id.is_some().then_some(snapshot))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    /// Everything applied so far is stored (in redb) already, so a snapshot to compact the log
    /// only stores what is pending and names how far the stored state reaches; the log up to
    /// there may be purged, because that purge's durable commit makes this state durable too.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot = self
            .stored_snapshot()
            .await
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        tracing::info!(snapshot = %snapshot.meta.snapshot_id, "snapshot taken of the stored state");
        Ok(snapshot)
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

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, Membership};
    use std::collections::BTreeMap;

    /// A snapshot's bytes as earlier builds collected them before encoding, and as they decoded
    /// them.
    #[derive(Serialize, Deserialize)]
    struct SnapshotImage {
        bookkeeping: ClusterState,
        entities: Vec<Vec<u8>>,
    }

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
        EntryPayload::Normal(Request::Referral { at_ms: 1_700_000_000_000, command: Arc::new(command) })
    }

    #[tokio::test]
    async fn a_snapshot_built_from_storage_is_received_into_a_file_and_installs_to_the_same_state() {
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
        let bytes = snapshot.snapshot.into_bytes().await.expect("encode");
        let collected = {
            let txn = source.db.begin_read().expect("read");
            let mut entities = Vec::new();
            entity_values(&txn, |value| {
                entities.push(value.to_vec());
                Ok(())
            })
            .expect("entities");
            let bookkeeping =
                ClusterState::bookkeeping(&txn.open_table(SM_META).expect("meta")).expect("bookkeeping");
            SnapshotImage { bookkeeping, entities }
        };
        assert_eq!(
            bytes,
            codec::encode(&collected).expect("encode"),
            "streamed from the table, the bytes are those of the collected image that earlier builds send and read"
        );

        let mut target = crate::store::open(to.path()).expect("open").state_machine;
        let receiver = target.clone();
        let received = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            let mut target = receiver.clone();
            async move {
                use tokio::io::AsyncWriteExt;
                let mut data = target.begin_receiving_snapshot().await.expect("begin");
                for chunk in bytes.chunks(7) {
                    data.write_all(chunk).await.expect("receive");
                }
                data.shutdown().await.expect("shutdown");
                data
            }
        };
        let damaged = received(&bytes[..bytes.len() - 3]).await;
        assert!(
            target.install_snapshot(&snapshot.meta, damaged).await.is_err(),
            "a truncated snapshot is refused"
        );
        assert_eq!(*target.shared().read(), ClusterState::default(), "and changes nothing");
        let whole = received(&bytes).await;
        target.install_snapshot(&snapshot.meta, whole).await.expect("install");
        let expected = source.shared().read().clone();
        assert!(
            expected.region.keys().len() >= 2,
            "both facilities (and their audit events) are in the snapshot"
        );
        assert_eq!(expected.retiring_nodes.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(*target.shared().read(), expected);
        drop((target, receiver));
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
