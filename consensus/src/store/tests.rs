//! The state machine on a real redb file: a group of writes in one entry ends in the same state
//! and answers as the same writes one entry each, and survives reopening.

use super::open;
use crate::types::{Request, Response, StampedCommand, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
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
        .map(|(i, id)| StampedCommand { at_ms: 1_000 + i as u64, command: register(id) })
        .collect()
}

#[tokio::test]
async fn a_group_entry_applies_like_one_entry_per_write_and_survives_reopening() {
    let singles_dir = tempfile::tempdir().expect("tempdir");
    let mut singles = open(singles_dir.path()).expect("open").state_machine;
    let entries = commands().into_iter().enumerate().map(|(i, c)| {
        entry(i as u64 + 1, Request::Referral { at_ms: c.at_ms, command: Box::new(c.command) })
    });
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
    let answers = group.apply(vec![entry(1, Request::Referrals(commands()))]).await.expect("apply");
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
        .map(|i| StampedCommand { at_ms: 1_000 + i, command: register(&format!("F{i:03}")) })
        .collect();
    store.apply(vec![entry(1, Request::Referrals(registrations))]).await.expect("apply");
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

/// Snapshot data lives in a file the database names: a built snapshot reads back whole, files
/// the database does not name are removed at open, and a snapshot an earlier build kept inside
/// the database is still served until the next one replaces it.
#[tokio::test]
async fn snapshot_data_is_kept_in_a_file_the_database_names() {
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    use redb::TableDefinition;
    const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
    let snap_files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path()).expect("open").state_machine;
    store.apply(vec![entry(1, Request::Referrals(commands()))]).await.expect("apply");
    let built = store.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let built_data = built.snapshot.into_inner();
    assert_eq!(snap_files(dir.path()).len(), 1, "one snapshot file");
    let current = store.get_current_snapshot().await.expect("read").expect("a snapshot");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built_data);
    drop(store);

    // Leftovers of a crash before a commit named them are removed when the node opens.
    let kept = snap_files(dir.path());
    std::fs::write(dir.path().join("snapshots/stray.snap"), b"half").expect("stray");
    std::fs::write(dir.path().join("snapshots/next.snap.tmp"), b"half").expect("temp");
    let mut store = open(dir.path()).expect("reopen").state_machine;
    assert_eq!(snap_files(dir.path()), kept);

    // A snapshot stored by an earlier build: data in the table, no file named.
    drop(store);
    {
        let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("file");
        let txn = db.begin_write().expect("write");
        {
            let mut table = txn.open_table(SNAPSHOT).expect("table");
            table.remove("file").expect("forget the file");
            table.insert("data", built_data.as_slice()).expect("blob");
        }
        txn.commit().expect("commit");
    }
    store = open(dir.path()).expect("reopen").state_machine;
    assert!(snap_files(dir.path()).is_empty(), "no file is named, so none is kept");
    let legacy = store.get_current_snapshot().await.expect("read").expect("the stored snapshot");
    assert_eq!(legacy.snapshot.into_inner(), built_data);
    store.get_snapshot_builder().await.build_snapshot().await.expect("build again");
    assert_eq!(snap_files(dir.path()).len(), 1);
    drop(store);
    let db = redb::Database::open(dir.path().join(super::DB_FILE)).expect("file");
    let txn = db.begin_read().expect("read");
    assert!(txn.open_table(SNAPSHOT).expect("table").get("data").expect("get").is_none(), "the blob is gone");
}
