//! DICOMweb on real nodes. A case is submitted through the API, synthetic studies are written
//! with that case id as their Accession Number, and:
//!
//! - the `dicomweb-client` Python package (tests/dicomweb/roundtrip.py, installed by
//!   tests/dicomweb/setup.sh) stores them on a follower with STOW-RS, searches them with QIDO-RS
//!   and retrieves instances (byte-identical), series metadata (with BulkDataURI), frames (equal
//!   to pydicom's pixel data) and rendered PNGs;
//! - a STOW-RS request mixing a good file, a non-DICOM part and a truncated file stores the good
//!   one and refuses the others one by one with a reason; a file naming an unknown case is
//!   refused; storing and reading need a bearer token;
//! - access follows the referral: staff of another facility are refused WADO (403, audited) and
//!   find nothing with QIDO, ops may not search images at all.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::python_peer::DICOMWEB_CLIENT;
use support::*;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_tests::imaging_client;

/// Write small synthetic studies of `kinds` whose Accession Number is `case`.
fn studies(dir: &Path, case: &str, kinds: &[SynthKind]) -> Vec<PathBuf> {
    let opts = SynthOptions { accession: Some(case.to_owned()), ..SynthOptions::small(11) };
    let summary = generate(dir, kinds, &opts).expect("synthetic studies");
    summary.studies.into_iter().flat_map(|s| s.files).collect()
}

/// Wait until node `api` has applied case `id`.
async fn wait_case(cluster: &TestCluster, node: u64, id: &str) {
    let api = cluster.api(node);
    wait_for(&format!("case {id} on node {node}"), Duration::from_secs(30), || {
        let api = api.clone();
        let id = id.to_owned();
        async move { cases_stale(&api).await.map(|c| c.iter().any(|c| c.id.0 == id)).unwrap_or(false) }
    })
    .await;
}

/// POST a STOW-RS request; returns the status and the JSON answer.
async fn stow(addr: &str, query: &str, token: Option<&str>, parts: &[(&str, Vec<u8>)]) -> (u16, Value) {
    let (status, text) = imaging_client::stow(addr, query, token, parts).await.expect("STOW request");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn items<'a>(answer: &'a Value, tag: &str) -> Vec<&'a Value> {
    answer[tag]["Value"].as_array().map(|v| v.iter().collect()).unwrap_or_default()
}

fn first_string(item: &Value, tag: &str) -> String {
    item[tag]["Value"][0].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicomweb_client_round_trip_on_a_follower() {
    let python = DICOMWEB_CLIENT.require();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(leader)).await;
    let case = submit_retrying(&cluster.api(leader), "dicomweb-roundtrip").await;
    let follower = if leader == 1 { 2 } else { 1 };
    wait_case(&cluster, follower, &case).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let files = studies(dir.path(), &case, &SynthKind::ALL);
    let url = format!("http://{}/dicomweb", cluster.node(follower).api_addr);
    let out = Command::new(&python)
        .arg(DICOMWEB_CLIENT.script())
        .args(["--url", &url, "--token", &token(&cluster.api(follower), NURSE).await])
        .args(&files)
        .output()
        .expect("run the DICOMweb client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the DICOMweb client round trip failed:\n{stdout}{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.log_of(follower)
    );
    println!("{stdout}");
    assert!(stdout.contains("0 failure(s)"), "{stdout}");
    assert!(stdout.lines().filter(|l| l.starts_with("ok")).count() > 20, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stow_refuses_bad_parts_one_by_one() {
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    cluster.wait_leader(&[1]).await;
    seed_region(&cluster.api(1)).await;
    let case = submit_retrying(&cluster.api(1), "dicomweb-refusals").await;
    let addr = cluster.node(1).api_addr.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = studies(dir.path(), &case, &[SynthKind::Ct]);
    let good = std::fs::read(&files[0]).expect("read");
    let whole = std::fs::read(&files[1]).expect("read");
    let truncated = whole[..whole.len() / 2].to_vec();
    let dicom = "application/dicom";

    // Storing needs a bearer token.
    let (status, answer) = stow(&addr, "", None, &[(dicom, good.clone())]).await;
    assert_eq!(status, 401, "{answer}");
    let nurse = token(&cluster.api(1), NURSE).await;
    let nurse = Some(nurse.as_str());

    // One good file, one text file, one truncated file: 202, one stored, two refused with reasons.
    let parts = [(dicom, good.clone()), (dicom, b"hello, not an image".to_vec()), (dicom, truncated)];
    let (status, answer) = stow(&addr, "", nurse, &parts).await;
    assert_eq!(status, 202, "{answer}");
    let stored = items(&answer, "00081199");
    assert_eq!(stored.len(), 1, "{answer}");
    let good_uid = first_string(stored[0], "00081155");
    assert!(first_string(stored[0], "00081190").ends_with(&good_uid), "{answer}");
    let failed = items(&answer, "00081198");
    assert_eq!(failed.len(), 2, "{answer}");
    for (item, words) in failed.iter().zip(["not a DICOM file", "truncated"]) {
        assert_eq!(item["00081197"]["Value"][0], 0xC000, "{answer}");
        let comment = first_string(item, "00000902");
        assert!(comment.contains(words), "comment {comment:?} should say {words:?}");
    }

    // A file of an unknown case: 409, refused with its UIDs and a reason.
    let other = std::fs::read(&files[2]).expect("read");
    let (status, answer) = stow(&addr, "?case=C99999999", nurse, &[(dicom, other)]).await;
    assert_eq!(status, 409, "{answer}");
    let failed = items(&answer, "00081198");
    assert_eq!(failed.len(), 1, "{answer}");
    assert_eq!(failed[0]["00081197"]["Value"][0], 0x0110, "{answer}");
    assert!(first_string(failed[0], "00000902").contains("C99999999 does not exist"), "{answer}");
    assert!(!first_string(failed[0], "00081155").is_empty(), "{answer}");

    // Storing the good file again is fine (deduplicated); the catalog holds only it.
    let (status, answer) = stow(&addr, &format!("?case={case}"), nurse, &[(dicom, good)]).await;
    assert_eq!(status, 200, "{answer}");
    let (status, found) = get_json(&addr, "/dicomweb/instances", &cluster.api(1), NURSE).await;
    assert_eq!(status, 200, "{found}");
    let uids: Vec<String> =
        found.as_array().expect("array").iter().map(|i| first_string(i, "00080018")).collect();
    assert_eq!(uids, [good_uid]);
}

/// GET `path` on node `addr` as the user `spec`; the status and the JSON answer.
async fn get_json(addr: &str, path: &str, api: &yilian_node::client::ApiClient, spec: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token(api, spec).await)
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_access_follows_the_referral() {
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    cluster.wait_leader(&[1]).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let case = submit_retrying(&api, "dicomweb-access").await;
    let addr = cluster.node(1).api_addr.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let files = studies(dir.path(), &case, &[SynthKind::Dr]);
    let bytes = std::fs::read(&files[0]).expect("read");
    let nurse = token(&api, NURSE).await;
    let (status, answer) = stow(&addr, "", Some(&nurse), &[("application/dicom", bytes)]).await;
    assert_eq!(status, 200, "{answer}");
    let study = first_string(items(&answer, "00081199")[0], "00081190");
    let study =
        study.split("/studies/").nth(1).and_then(|s| s.split('/').next()).expect("study uid").to_owned();

    // The requesting clinic's nurse reads the study.
    let (status, _) = get_json(&addr, &format!("/dicomweb/studies/{study}/metadata"), &api, NURSE).await;
    assert_eq!(status, 200);

    // Staff of another facility: WADO refused with a reason, QIDO finds nothing.
    let stranger = "clinic_staff:clerk@PROV";
    let (status, refusal) =
        get_json(&addr, &format!("/dicomweb/studies/{study}/metadata"), &api, stranger).await;
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal.to_string().contains("PROV") || refusal.to_string().contains("facility"), "{refusal}");
    let (status, found) = get_json(&addr, "/dicomweb/studies", &api, stranger).await;
    assert_eq!((status, found.as_array().map(Vec::len)), (200, Some(0)), "{found}");
    let (status, found) = get_json(&addr, &format!("/dicomweb/studies/{study}/series"), &api, stranger).await;
    assert_eq!((status, found.as_array().map(Vec::len)), (200, Some(0)), "{found}");

    // Ops see no patient data: image search refused.
    let (status, refusal) = get_json(&addr, "/dicomweb/studies", &api, "ops:test").await;
    assert_eq!(status, 403, "{refusal}");

    // The refusal and the reads are in the audit trail, with the study UID.
    let auditor = acting(&api, "auditor:audit").await;
    let events: Vec<Value> = auditor.get("/v1/audit").await.expect("audit");
    let about_study =
        |kind: &str| events.iter().any(|e| e.to_string().contains(kind) && e.to_string().contains(&study));
    assert!(about_study("case.read-denied"), "no audited refusal in {events:?}");
    assert!(about_study("case.read"), "no audited read in {events:?}");
    // A search scoped to the study is audited once, as a search, not also as a case read.
    let count = |events: &[Value], kind: &str| {
        events.iter().filter(|e| e["event_type"] == kind && e.to_string().contains(&study)).count()
    };
    let reads_before = count(&events, "case.read");
    let (status, found) = get_json(&addr, &format!("/dicomweb/studies/{study}/series"), &api, NURSE).await;
    assert_eq!((status, found.as_array().map(Vec::len)), (200, Some(1)), "{found}");
    wait_for("the scoped search to be audited", Duration::from_secs(10), || {
        let auditor = auditor.clone();
        async move {
            let events: Vec<Value> = auditor.get("/v1/audit").await.unwrap_or_default();
            events.iter().any(|e| e["event_type"] == "study.search")
        }
    })
    .await;
    let searched: Vec<Value> = auditor.get("/v1/audit").await.expect("audit");
    assert_eq!(count(&searched, "study.search"), 1, "{searched:?}");
    assert_eq!(count(&searched, "case.read"), reads_before, "{searched:?}");
    // Writes carry the caller's address too.
    assert!(
        events.iter().any(|e| e["event_type"] == "study.record" && e["source"] == "127.0.0.1"),
        "the STOW write is audited with its source address: {events:?}"
    );
}

/// Instances stored concurrently for one study share manifest writes (group commit), and each
/// STOW is answered only once its instance is committed. The followers are frozen so the first
/// write cannot commit until every instance has arrived; election timeouts are long enough that
/// the freeze does not cost the leader its term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_share_manifest_writes() {
    let raft =
        "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 8000\nelection_timeout_max_ms = 12000\n";
    let cluster = TestCluster::start(3, raft).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let api = cluster.api(leader);
    seed_region(&api).await;
    let case = submit_retrying(&api, "dicomweb-group-commit").await;
    let addr = cluster.node(leader).api_addr.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> = studies(dir.path(), &case, &[SynthKind::Ct]).into_iter().take(4).collect();
    assert_eq!(files.len(), 4, "the synthetic CT has at least 4 slices");
    let nurse = token(&api, NURSE).await;
    let writes_before = cluster.metric(leader, "yilian_ingest_manifest_writes").await;

    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    for f in &followers {
        cluster.pause(*f);
    }
    let stores: Vec<_> = files
        .iter()
        .map(|f| {
            let (addr, nurse, bytes) = (addr.clone(), nurse.clone(), std::fs::read(f).expect("read"));
            tokio::spawn(async move { stow(&addr, "", Some(&nurse), &[("application/dicom", bytes)]).await })
        })
        .collect();
    wait_for("all four instances to wait for their manifest write", Duration::from_secs(30), || {
        let cluster = &cluster;
        async move { cluster.metric(leader, "yilian_ingest_instances_waiting").await == 4 }
    })
    .await;
    for f in &followers {
        cluster.resume(*f);
    }
    for store in stores {
        let (status, answer) = store.await.expect("STOW task");
        assert_eq!(status, 200, "{answer}");
    }
    let writes = cluster.metric(leader, "yilian_ingest_manifest_writes").await - writes_before;
    assert!(writes <= 2, "4 concurrent instances took {writes} manifest writes; the last 3 should share one");
    assert_eq!(cluster.metric(leader, "yilian_ingest_instances_waiting").await, 0);
    let reader = acting(&api, NURSE).await;
    let manifests: Vec<yilian_referral::StudyManifest> =
        reader.get(&format!("/v1/cases/{case}/studies")).await.expect("studies");
    assert_eq!(manifests.iter().map(|m| m.instances.len()).sum::<usize>(), 4, "every instance recorded");
}
