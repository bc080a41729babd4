//! The audit trail is replicated, append-only and hash-chained: every node verifies the same
//! chain, the export is valid FHIR R4 AuditEvent, and an entry altered or removed directly in a
//! stopped node's database is caught by `yilian audit verify` and logged when the node starts.

mod support;

use redb::{Database, ReadableTable};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::python_peer::{validate_fhir, FHIR_VALIDATOR};
use support::*;
use yilian_consensus::codec;
use yilian_consensus::store::{DB_FILE, SM_ENTITIES};
use yilian_referral::{Entity, EntityKey};

fn cli(token: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(node_binary())
        .env("YILIAN_TOKEN", token)
        .args(args)
        .output()
        .expect("run the yilian CLI");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn data_dir(cluster: &TestCluster, id: u64) -> PathBuf {
    cluster.node(id).config.parent().expect("node dir").join("data")
}

/// Rewrite (or, with `None`, delete) audit event `seq` straight in the database file.
fn tamper(dir: &Path, seq: u64, change: Option<&dyn Fn(&mut yilian_referral::AuditEvent)>) {
    let db = Database::open(dir.join(DB_FILE)).expect("open the stopped node's database");
    let key = codec::encode_key(&EntityKey::Audit(seq)).expect("key");
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn.open_table(SM_ENTITIES).expect("table");
        let bytes = table.get(key.as_slice()).expect("get").expect("event exists").value().to_vec();
        match change {
            Some(change) => {
                let Entity::Audit(mut event) = codec::decode::<Entity>(&bytes).expect("decode") else {
                    panic!("not an audit event")
                };
                change(&mut event);
                let bytes = codec::encode(&Entity::Audit(event)).expect("encode");
                table.insert(key.as_slice(), bytes.as_slice()).expect("insert");
            }
            None => {
                table.remove(key.as_slice()).expect("remove");
            }
        }
    }
    txn.commit().expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_replicates_exports_as_fhir_and_catches_tampering() {
    let python = FHIR_VALIDATOR.require();
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    for i in 0..3 {
        submit(&cluster.api(2), &format!("audit-{i}")).await.expect("submit");
    }
    let dr = acting(&cluster.api(3), "specialist:DR").await;
    let auditor = token(&cluster.api(1), "auditor:aud").await;
    let _: Value = dr.post("/v1/cases/C00000001/accept", &json!({})).await.expect("accept");

    // Every node verifies the same chain with the same head.
    let mut heads = Vec::new();
    for id in 1..=3 {
        let v: Value =
            acting(&cluster.api(id), "auditor:aud").await.get("/v1/audit/verify").await.expect("verify");
        assert!(v["verified"].as_u64().is_some_and(|n| n >= 10), "{v}");
        heads.push(v["head"].clone());
    }
    assert!(heads.windows(2).all(|w| w[0] == w[1]), "nodes disagree on the chain head: {heads:?}");

    // The export is a valid FHIR R4 Bundle of AuditEvent, carrying no raw patient ID.
    let out = cluster.dir.path().join("audit.json");
    let (ok, text) = cli(
        &auditor,
        &["audit", "export", "--out", &out.display().to_string(), "--api", &cluster.node(1).api_addr],
    );
    assert!(ok, "{text}");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("JSON");
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "AuditEvent");
    assert!(!bundle.to_string().contains(&patient_id("audit-0")));
    validate_fhir(&python, &[out]);

    // Stop node 3, alter one event in its database: offline verify names it.
    cluster.stop(3);
    let dir = data_dir(&cluster, 3);
    let (ok, text) = cli(&auditor, &["audit", "verify", "--data-dir", &dir.display().to_string()]);
    assert!(ok, "an untouched trail verifies: {text}");
    tamper(&dir, 5, Some(&|e| e.detail = Some("nothing happened here".into())));
    let (ok, text) = cli(&auditor, &["audit", "verify", "--data-dir", &dir.display().to_string()]);
    assert!(!ok && text.contains("audit event 5 was altered"), "{text}");

    // Removing an event is caught too.
    tamper(&dir, 7, None);
    let (ok, text) = cli(&auditor, &["audit", "verify", "--data-dir", &dir.display().to_string()]);
    assert!(!ok && text.contains("audit event 5 was altered"), "the first break is reported: {text}");
    tamper(&dir, 5, Some(&|e| e.detail = None));
    let (ok, text) = cli(&auditor, &["audit", "verify", "--data-dir", &dir.display().to_string()]);
    assert!(!ok && text.contains("audit event 7 is missing"), "{text}");

    // The node says so loudly when it starts on the damaged trail, and over the API.
    cluster.restart(3);
    cluster.wait_alive().await;
    wait_for("the tamper warning", std::time::Duration::from_secs(20), || {
        let log = cluster.log_of(3);
        async move { log.contains("AUDIT TRAIL TAMPERED") }
    })
    .await;
    let damaged =
        acting(&cluster.api(3), "auditor:aud").await.get::<Value>("/v1/audit/verify?consistency=stale").await;
    let msg = damaged.expect_err("a damaged chain does not verify").to_string();
    assert!(msg.contains("409") && msg.contains("audit event 7 is missing"), "{msg}");
    let healthy: Value =
        acting(&cluster.api(1), "auditor:aud").await.get("/v1/audit/verify").await.expect("verify");
    assert_eq!(healthy["head"], heads[0], "the other nodes keep the intact chain");
}
