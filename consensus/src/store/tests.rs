//! The state machine on a real redb file: a group of writes in one entry ends in the same state
//! and answers as the same writes one entry each, and survives reopening.

use super::open;
use crate::types::{Request, Response, StampedCommand, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use std::sync::Arc;
use yilian_referral::{Actor, Change, Command, FacilityId, FacilityLevel, FacilityRegistration, Outcome};

fn entry(index: u64, request: Request) -> Entry<TypeConfig> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(request) }
}

fn register(id: &str) -> Command {
    Command::new(
        Actor::ops("ops1"),
        Change::RegisterFacility(FacilityRegistration {
            id: FacilityId(id.into()),
            name: id.into(),
            level: FacilityLevel::County,
            region: "r".into(),
            parent: None,
            location: None,
            devices: Default::default(),
        }),
    )
}

/// Three registrations, the second a duplicate of the first (refused by the domain).
fn commands() -> Vec<StampedCommand> {
    ["A", "A", "B"]
        .into_iter()
        .enumerate()
        .map(|(i, id)| StampedCommand { at_ms: 1_000 + i as u64, command: Arc::new(register(id)) })
        .collect()
}

#[tokio::test]
async fn a_group_entry_applies_like_one_entry_per_write_and_survives_reopening() {
    let singles_dir = tempfile::tempdir().expect("tempdir");
    let mut singles = open(singles_dir.path()).expect("open").state_machine;
    let entries = commands()
        .into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, Request::Referral { at_ms: c.at_ms, command: c.command }));
    let single_answers: Vec<_> = singles
        .apply(entries.collect::<Vec<_>>())
        .await
        .expect("apply")
        .into_iter()
        .map(|r| match r {
            Response::Referral(answer) => answer,
            other => panic!("single write answered {other:?}"),
        })
        .collect();

    let group_dir = tempfile::tempdir().expect("tempdir");
    let mut group = open(group_dir.path()).expect("open").state_machine;
    let answers = group.apply(vec![entry(1, Request::Referrals(commands().into()))]).await.expect("apply");
    assert_eq!(answers, vec![Response::Referrals(single_answers.clone())]);
    assert!(matches!(single_answers[0], Ok(Outcome::Registered { .. })), "{:?}", single_answers[0]);
    assert!(single_answers[1].is_err(), "the duplicate is refused inside the group too");
    assert_eq!(group.shared().read().region, singles.shared().read().region);

    // The group's state is stored (non-durably, written when the database closes) and reloads.
    let applied = group.shared().read().clone();
    drop(group);
    let reopened = open(group_dir.path()).expect("reopen").state_machine;
    assert_eq!(*reopened.shared().read(), applied);
}

/// Builds a fresh store on a real redb file for openraft's storage conformance suite; the
/// temporary directory lives as long as the store.
struct TempStore;

impl openraft::testing::StoreBuilder<TypeConfig, super::LogStore, super::StateMachineStore, tempfile::TempDir>
    for TempStore
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, super::LogStore, super::StateMachineStore), crate::types::StorageError>
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = open(dir.path()).expect("open");
        Ok((dir, opened.log, opened.state_machine))
    }
}

/// openraft's own storage tests (append, truncate, purge, reads of every range, vote,
/// snapshots) pass on the store with its in-memory entry cache and background state writer.
#[test]
fn the_store_passes_openraft_storage_suite() {
    openraft::testing::Suite::test_all(TempStore).expect("openraft storage suite");
}

/// A database written by a build that keyed entities with `codec::encode` (little-endian
/// integers) is read offline as it is, and moved to ordered keys when a node opens it.
#[tokio::test]
async fn entities_stored_by_an_earlier_build_are_read_and_moved_to_ordered_keys() {
    use redb::{ReadableTable, TableDefinition, TableHandle};
    use yilian_referral::EntityKey;
    const LEGACY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_entities");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path()).expect("open").state_machine;
    let registrations: Vec<StampedCommand> = (0..300)
        .map(|i| StampedCommand { at_ms: 1_000 + i, command: Arc::new(register(&format!("F{i:03}"))) })
        .collect();
    store.apply(vec![entry(1, Request::Referrals(registrations.into()))]).await.expect("apply");
    let applied = store.shared().read().clone();
    assert!(applied.region.keys().iter().filter(|k| matches!(k, EntityKey::Audit(_))).count() >= 300);
    drop(store);

    // Rewrite the file as the earlier build left it.
    {
        let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("reopen file");
        let txn = db.begin_write().expect("write");
        {
            let current = txn.open_table(super::SM_ENTITIES).expect("table");
            let mut legacy = txn.open_table(LEGACY).expect("legacy table");
            for item in current.iter().expect("iter") {
                let (key, value) = item.expect("row");
                let key: EntityKey = crate::codec::decode_key(key.value()).expect("ordered key");
                legacy
                    .insert(crate::codec::encode(&key).expect("key").as_slice(), value.value())
                    .expect("put");
            }
        }
        txn.delete_table(super::SM_ENTITIES).expect("drop");
        txn.commit().expect("commit");
    }

    assert_eq!(
        super::load_state(dir.path()).expect("read offline"),
        applied,
        "offline read of the old layout"
    );

    let reopened = open(dir.path()).expect("open migrates").state_machine;
    assert_eq!(*reopened.shared().read(), applied);
    drop(reopened);
    let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("reopen file");
    let txn = db.begin_read().expect("read");
    let tables: Vec<String> = txn.list_tables().expect("tables").map(|t| t.name().to_owned()).collect();
    assert!(!tables.contains(&LEGACY.name().to_owned()), "the old table is dropped: {tables:?}");
    let audit_order: Vec<u64> = txn
        .open_table(super::SM_ENTITIES)
        .expect("table")
        .iter()
        .expect("iter")
        .filter_map(|item| match crate::codec::decode_key(item.expect("row").0.value()).expect("key") {
            EntityKey::Audit(seq) => Some(seq),
            _ => None,
        })
        .collect();
    assert!(audit_order.len() >= 300);
    assert!(audit_order.windows(2).all(|w| w[0] < w[1]), "audit events are stored in sequence order");
}

/// A snapshot is the stored state: building one encodes nothing; its data is encoded when read,
/// from the read transaction its metadata came from, so applies in between do not leak into it;
/// it installs to the same state; and what earlier builds stored as snapshots (files, and a
/// table holding the metadata and data) is removed when a node opens.
#[tokio::test]
async fn a_snapshot_is_the_stored_state_encoded_only_when_read() {
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    use redb::{TableDefinition, TableHandle};
    const LEGACY_SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path()).expect("open").state_machine;
    assert!(store.get_current_snapshot().await.expect("read").is_none(), "nothing applied, no snapshot");
    store.apply(vec![entry(1, Request::Referrals(commands().into()))]).await.expect("apply");
    let at_one = store.shared().read().clone();
    let built = store.get_snapshot_builder().await.build_snapshot().await.expect("build");
    assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(1));
    assert!(files(dir.path()).is_empty(), "building a snapshot encodes nothing");
    let current = store.get_current_snapshot().await.expect("read").expect("a snapshot");
    assert_eq!(current.meta, built.meta, "the same stored state is the same snapshot");

    let another = StampedCommand { at_ms: 2_000, command: Arc::new(register("C")) };
    store.apply(vec![entry(2, Request::Referrals(vec![another].into()))]).await.expect("apply more");
    let bytes = current.snapshot.into_bytes().await.expect("encode");
    let later = store.get_current_snapshot().await.expect("read").expect("a snapshot");
    assert_eq!(later.meta.last_log_id.map(|l| l.index), Some(2));

    let target_dir = tempfile::tempdir().expect("tempdir");
    let mut target = open(target_dir.path()).expect("open").state_machine;
    let mut received = target.begin_receiving_snapshot().await.expect("receive");
    tokio::io::AsyncWriteExt::write_all(&mut *received, &bytes).await.expect("write");
    target.install_snapshot(&built.meta, received).await.expect("install");
    assert_eq!(*target.shared().read(), at_one, "the data is the state its metadata names");
    let installed = target.get_current_snapshot().await.expect("read").expect("a snapshot");
    assert_eq!(installed.meta, built.meta);
    assert_eq!(installed.snapshot.into_bytes().await.expect("encode"), bytes, "same state, same bytes");
    drop((built, later, store, target));
    assert!(files(dir.path()).is_empty(), "encoded snapshots leave no file behind");

    // What an earlier build left: its snapshot files, and the table naming the latest one.
    std::fs::write(dir.path().join("snapshots/1-1-1700000000000.snap"), b"old").expect("file");
    std::fs::write(dir.path().join("snapshots/1-2-1700000000001.snap.tmp"), b"half").expect("temp");
    {
        let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("file");
        let txn = db.begin_write().expect("write");
        txn.open_table(LEGACY_SNAPSHOT).expect("table").insert("data", b"old".as_slice()).expect("blob");
        txn.commit().expect("commit");
    }
    let store = open(dir.path()).expect("reopen").state_machine;
    assert!(files(dir.path()).is_empty(), "the files of earlier builds are removed");
    drop(store);
    let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("file");
    let txn = db.begin_read().expect("read");
    let tables: Vec<String> = txn.list_tables().expect("tables").map(|t| t.name().to_owned()).collect();
    assert!(!tables.contains(&LEGACY_SNAPSHOT.name().to_owned()), "the old table is dropped: {tables:?}");
}
