//! Studies moving between real node processes over QUIC: a clinic uploads a study to node 1
//! with `yilian upload`; the case is offered to a specialist at the facility nodes 2 and 3
//! serve; they prefetch it at a capped rate; node 2 is killed mid-transfer and restarted from
//! its data directory, resumes from its verified chunks (counters on `/metrics`) and ends with
//! byte-identical objects, recorded as a holder only once verified. Also: an interrupted upload
//! sends only the missing chunks when run again, refusals are clear, and a de-identified export
//! keeps no identifying attribute of the Basic Profile.

mod support;

use dicom_core::value::Value;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use support::*;
use yilian_consensus::pki;
use yilian_dicom::deid::{pattern_action, profile_entry, ProfileAction};
use yilian_dicom::synth::{generate, SynthKind, SynthOptions, SynthSummary};
use yilian_dicom::{Digest, Store};
use yilian_referral::StudyManifest;
use yilian_tests::imaging_client::{output_text, sent_and_held, upload_cmd, upload_cmd_with};
use yilian_tests::netfault::LinkRule;

/// Every node serves the county hospital's readers, with prefetches capped at 8 Mbit/s per link.
fn imaging_toml() -> String {
    format!("{FAST_RAFT}\n[imaging]\nserves = [\"CTY\"]\nlink_rate_limit_mbit = 8\n")
}

async fn run(mut cmd: tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("command finished")
        .expect("ran")
}

fn synth(dir: &Path, kinds: &[SynthKind], case: &str, opts: SynthOptions) -> SynthSummary {
    let opts = SynthOptions { accession: Some(case.to_owned()), ..opts };
    generate(dir, kinds, &opts).expect("synthetic studies")
}

async fn manifest(cluster: &TestCluster, id: u64, uid: &str) -> StudyManifest {
    let nurse = acting(&cluster.api(id), NURSE).await;
    nurse.get(&format!("/v1/studies/{uid}?consistency=stale")).await.expect("manifest")
}

/// Chunks of 1 MiB (the fetcher's default) in all instances of `study`.
fn chunks_of(study: &StudyManifest) -> u64 {
    study.instances.values().map(|i| i.record.size.div_ceil(1 << 20)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_resumes_after_a_restart_and_ends_byte_identical() {
    let cluster = TestCluster::start(3, &imaging_toml()).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let case = submit(&api, "transfer").await.expect("case");
    token(&api, NURSE).await;

    // An 8 MB radiograph (one instance, 8 chunks) and a small CT series for the case.
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = synth(dir.path(), &[SynthKind::Dr, SynthKind::Ct], &case, SynthOptions::small(41));
    let big = SynthOptions { dr_matrix: 2048, ..SynthOptions::small(42) };
    let dr = synth(&dir.path().join("dr"), &[SynthKind::Dr], &case, big);
    let out = run(upload_cmd(&cluster, 1, &case, &[dir.path()], &["--commit"])).await;
    assert!(out.status.success(), "upload failed: {}", output_text(&out));
    let dr_uid = dr.studies[0].study_instance_uid.clone();
    let originals: BTreeMap<String, Vec<u8>> = summary
        .studies
        .iter()
        .chain(&dr.studies)
        .flat_map(|s| s.files.iter())
        .map(|f| (Digest::of_bytes(&std::fs::read(f).unwrap()).to_hex(), std::fs::read(f).unwrap()))
        .collect();

    // Node 2 is prefetching the big study: kill it mid-transfer, before it is recorded.
    wait_for("node 2 to fetch part of the radiograph", Duration::from_secs(60), || async {
        cluster.metric(2, "yilian_transfer_bytes_fetched").await >= 3 << 20
    })
    .await;
    let mut cluster = cluster;
    cluster.kill9(2);
    let study = manifest(&cluster, 1, &dr_uid).await;
    assert!(!study.held_by(2), "node 2 is recorded as a holder before it verified its copy");
    assert!(study.instances.values().all(|i| !i.holders.contains(&2)));

    // Restarted from the same data directory, it resumes and completes.
    cluster.restart(2);
    cluster.wait_alive().await;
    let uids: Vec<String> =
        summary.studies.iter().chain(&dr.studies).map(|s| s.study_instance_uid.clone()).collect();
    for uid in &uids {
        for node in [2, 3] {
            wait_for(&format!("node {node} to hold {uid}"), Duration::from_secs(90), || async {
                manifest(&cluster, 1, uid).await.held_by(node)
            })
            .await;
        }
    }
    let resumed = cluster.metric(2, "yilian_transfer_chunks_resumed").await;
    let fetched_after = cluster.metric(2, "yilian_transfer_chunks_fetched").await;
    let total = chunks_of(&manifest(&cluster, 1, &dr_uid).await);
    assert!(resumed > 0, "node 2 restarted the transfer instead of resuming it");
    assert!(
        fetched_after < total,
        "node 2 fetched {fetched_after} of {total} chunks again after the restart"
    );

    // Every object on nodes 2 and 3 is byte-identical to what the clinic sent.
    for node in [2, 3] {
        let store = Store::open(cluster.node(node).data_dir().join("objects")).expect("store");
        for uid in &uids {
            for instance in manifest(&cluster, 1, uid).await.instances.values() {
                let digest: Digest = instance.record.sha256.parse().unwrap();
                let held = std::fs::read(store.path_of(&digest)).expect("object on disk");
                assert_eq!(
                    &held, &originals[&instance.record.sha256],
                    "node {node} copy of {digest} differs"
                );
            }
        }
    }
    // And node 2 serves it to readers from its own catalog.
    let dr_reader = acting(&cluster.api(2), "specialist:DR").await;
    let found: serde_json::Value =
        dr_reader.get(&format!("/dicomweb/studies?StudyInstanceUID={dr_uid}")).await.expect("QIDO on node 2");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}

/// Sites whose uplink loses packets choose BBR (`[transport] congestion_control`, `yilian upload
/// --congestion`): a study uploaded with it and prefetched between two BBR nodes through a path
/// that drops 1 % of packets arrives byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_lossy_path_bbr_nodes_deliver_byte_identical_copies() {
    let toml = format!("{}\n[transport]\ncongestion_control = \"bbr\"\n", imaging_toml());
    let cluster = TestCluster::start_behind_relays(2, &toml, 0x10_55).await;
    let lossy = LinkRule { loss: 0.01, delay: Duration::from_millis(5), ..LinkRule::default() };
    cluster.net().set_all(lossy);
    let api = cluster.api(1);
    seed_region(&api).await;
    let case = submit_retrying(&api, "lossy").await;
    token(&api, NURSE).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let summary = synth(dir.path(), &[SynthKind::Ct], &case, SynthOptions::small(44));
    let out = run(upload_cmd(&cluster, 1, &case, &[dir.path()], &["--congestion", "bbr", "--commit"])).await;
    assert!(out.status.success(), "upload failed: {}", output_text(&out));
    let uid = summary.studies[0].study_instance_uid.clone();
    wait_for("node 2 to hold the study", Duration::from_secs(90), || async {
        manifest(&cluster, 1, &uid).await.held_by(2)
    })
    .await;
    assert!(cluster.net().counts().dropped > 0, "the path dropped no packet");
    for node in [1, 2] {
        assert!(
            cluster.log_of(node).contains("congestion_control=bbr"),
            "node {node} did not start with BBR"
        );
    }

    let store = Store::open(cluster.node(2).data_dir().join("objects")).expect("store");
    let study = manifest(&cluster, 1, &uid).await;
    assert_eq!(study.instances.len(), summary.studies[0].files.len());
    for file in &summary.studies[0].files {
        let sent = std::fs::read(file).expect("original");
        let held = std::fs::read(store.path_of(&Digest::of_bytes(&sent))).expect("copy on node 2");
        assert!(held == sent, "node 2's copy of {} differs", file.display());
    }

    let out = run(upload_cmd(&cluster, 1, &case, &[dir.path()], &["--congestion", "reno"])).await;
    assert!(!out.status.success());
    assert!(output_text(&out).contains("use \"cubic\""), "{}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_upload_sends_only_missing_chunks_and_export_is_deidentified() {
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let case = submit(&api, "upload").await.expect("case");
    token(&api, NURSE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let big = SynthOptions { dr_matrix: 2048, ..SynthOptions::small(43) };
    let summary = synth(dir.path(), &[SynthKind::Dr], &case, big);
    let file = summary.studies[0].files[0].clone();
    let chunks = std::fs::metadata(&file).unwrap().len().div_ceil(256 << 10);

    // First run at 4 Mbit/s in 256 KiB chunks, killed once the node holds a few chunks.
    let slow = ["--chunk-kib", "256", "--streams", "1", "--limit-kbit", "4000"];
    let mut child = upload_cmd(&cluster, 1, &case, &[&file], &slow).spawn().expect("upload");
    wait_for("the node to accept some chunks", Duration::from_secs(60), || async {
        cluster.metric(1, "yilian_upload_chunks_accepted").await >= 4
    })
    .await;
    child.start_kill().expect("kill the uploader");
    let _ = child.wait().await;
    let first = cluster.metric(1, "yilian_upload_chunks_accepted").await;
    assert!(first < chunks, "the first run finished before it was interrupted");

    // Second run: only the missing chunks are sent, then the study is committed.
    let out = run(upload_cmd(&cluster, 1, &case, &[&file], &["--chunk-kib", "256", "--commit"])).await;
    let log = output_text(&out);
    assert!(out.status.success(), "{log}");
    let (sent, held) = sent_and_held(&log).expect("upload summary");
    assert_eq!(sent + held, chunks, "{log}");
    assert!(held >= first && held > 0, "only missing chunks are sent: {log}");
    assert!(log.contains("committed study"), "{log}");
    assert_eq!(cluster.metric(1, "yilian_upload_chunks_accepted").await, chunks, "a chunk was sent twice");
    let uid = summary.studies[0].study_instance_uid.clone();
    assert!(manifest(&cluster, 1, &uid).await.is_committed());

    // Refusals: a file that is not DICOM, an unknown case, a certificate from another CA.
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, b"not a DICOM file at all").unwrap();
    let out = run(upload_cmd(&cluster, 1, &case, &[&junk], &[])).await;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("refused") && output_text(&out).contains("notes.txt"),
        "{}",
        output_text(&out)
    );
    let out = run(upload_cmd(&cluster, 1, "C-NOPE", &[&file], &[])).await;
    assert!(!out.status.success());
    assert!(output_text(&out).contains("case C-NOPE cannot be used"), "{}", output_text(&out));
    let other_ca = cluster.dir.path().join("other-ca");
    pki::init_ca(&other_ca, "elsewhere").unwrap();
    let foreign = pki::issue_client_cert(&other_ca, "intruder", &other_ca).unwrap();
    let out = run(upload_cmd_with(&cluster, 1, &case, &[&file], &[], (foreign.cert, foreign.key))).await;
    assert!(!out.status.success(), "{}", output_text(&out));
    let log = output_text(&out);
    assert!(log.contains("refused the connection") || log.contains("failed "), "{log}");

    // De-identified export for teaching.
    let export = dir.path().join("export");
    let out = run(export_cmd(&cluster, &uid, &export)).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let exported: Vec<PathBuf> = std::fs::read_dir(&export).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(exported.len(), 1);
    let original = dicom_object::open_file(&file).unwrap();
    let deid = dicom_object::open_file(&exported[0]).unwrap();
    assert_profile_applied(&original, &deid);
    let bytes = std::fs::read(&exported[0]).unwrap();
    for needle in [&summary.patient_name, &summary.patient_id, &uid] {
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "exported file still contains {needle:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_read_in_another_region_travels_only_as_a_deidentified_copy() {
    // Both nodes serve the reader of region r2; the study is taken in region r.
    let toml = format!("{FAST_RAFT}\n[imaging]\nserves = [\"XPROV\"]\n");
    let cluster = TestCluster::start(2, &toml).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let ops = acting(&api, "ops:test").await;
    let other = serde_json::json!({"id": "XPROV", "name": "邻省医院", "level": "provincial", "region": "r2", "parent": null});
    let _: serde_json::Value = ops.post("/v1/facilities", &other).await.expect("facility in r2");
    let reader = serde_json::json!({
        "id": "DRX", "name": "外省医生", "facility": "XPROV", "specialty": "cardiology",
        "modalities": ["ECG"], "licensed_regions": ["r", "r2"], "cap": 10, "on_shift": true,
    });
    let _: serde_json::Value = ops.post("/v1/specialists", &reader).await.expect("reader in r2");
    let off = serde_json::json!({"on_shift": false});
    let _: serde_json::Value = ops.put("/v1/specialists/DR/shift", &off).await.expect("DR off shift");
    let case = submit(&api, "cross-region").await.expect("case");
    // Outside the referral ladder: ops assign the reader in r2.
    let _: serde_json::Value = ops
        .post(&format!("/v1/cases/{case}/assign"), &serde_json::json!({"to": "DRX"}))
        .await
        .expect("assign");
    let nurse = acting(&api, NURSE).await;
    let shown: serde_json::Value = nurse.get(&format!("/v1/cases/{case}")).await.expect("case");
    assert_eq!(shown["owner"], "DRX", "the case is offered to the reader in r2: {shown}");

    let dir = tempfile::tempdir().expect("tempdir");
    let summary = synth(dir.path(), &[SynthKind::Ecg], &case, SynthOptions::small(44));
    let original_uid = summary.studies[0].study_instance_uid.clone();
    let out = run(upload_cmd(&cluster, 1, &case, &[dir.path()], &["--commit"])).await;
    assert!(out.status.success(), "upload failed: {}", output_text(&out));

    // Node 1 holds the original and makes the copy; node 2 fetches only the copy.
    let copy_of = |studies: Vec<StudyManifest>| {
        studies
            .into_iter()
            .find(|s| s.derived_from.as_deref() == Some(&original_uid) && s.is_committed() && s.held_by(2))
    };
    let studies_path = format!("/v1/cases/{case}/studies?consistency=stale");
    wait_for("a de-identified copy held by node 2", Duration::from_secs(60), || async {
        copy_of(nurse.get(&studies_path).await.unwrap_or_default()).is_some()
    })
    .await;
    let copy = copy_of(nurse.get(&studies_path).await.expect("studies")).expect("copy");
    assert_ne!(copy.study_uid, original_uid);
    assert!(!manifest(&cluster, 1, &original_uid).await.held_by(2), "the original left its region");
    let store = Store::open(cluster.node(2).data_dir().join("objects")).expect("store");
    for instance in copy.instances.values() {
        let digest: Digest = instance.record.sha256.parse().unwrap();
        let path = store.path_of(&digest);
        let bytes = std::fs::read(&path).expect("copy on node 2");
        for needle in [&summary.patient_name, &summary.patient_id, &original_uid] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "copy still contains {needle:?}"
            );
        }
        let obj = dicom_object::open_file(&path).expect("copy parses");
        let removed = obj.element(Tag(0x0012, 0x0062)).expect("Patient Identity Removed");
        assert_eq!(removed.to_str().unwrap().trim(), "YES");
    }
}

fn export_cmd(cluster: &TestCluster, uid: &str, out: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(node_binary());
    cmd.args(["study", "export", uid, "--deidentify", "--api", &cluster.node(1).api_addr])
        .args(["--token", &cached_token(&cluster.node(1).api_addr, NURSE)])
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Every primitive element anywhere in the data set: (tag, value as text).
fn leaves(obj: &InMemDicomObject, out: &mut Vec<(Tag, String)>) {
    for e in obj.iter() {
        match e.value() {
            Value::Sequence(seq) => seq.items().iter().for_each(|i| leaves(i, out)),
            Value::Primitive(p) => out.push((e.header().tag, p.to_str().into_owned())),
            Value::PixelSequence(_) => {}
        }
    }
}

/// No attribute the Basic Profile removes, empties, replaces or cleans keeps an original value;
/// no private tag remains; Patient Identity Removed is YES.
fn assert_profile_applied(original: &InMemDicomObject, deid: &InMemDicomObject) {
    let mut before = Vec::new();
    leaves(original, &mut before);
    let mut originals: BTreeMap<Tag, BTreeSet<String>> = BTreeMap::new();
    for (tag, v) in before.into_iter().filter(|(_, v)| !v.trim().is_empty()) {
        originals.entry(tag).or_default().insert(v);
    }
    let mut after = Vec::new();
    leaves(deid, &mut after);
    let mut checked = 0;
    for (tag, v) in &after {
        assert!(tag.group() % 2 == 0, "private tag {tag} remains");
        let changed = pattern_action(*tag).is_some()
            || profile_entry(*tag).is_some_and(|e| e.action != ProfileAction::Keep);
        if changed && !v.trim().is_empty() {
            if let Some(old) = originals.get(tag) {
                checked += 1;
                assert!(!old.contains(v), "{tag} kept its original value {v:?}");
            }
        }
    }
    assert!(checked > 0, "no profile attribute was compared");
    let removed = deid.element(Tag(0x0012, 0x0062)).expect("Patient Identity Removed");
    assert_eq!(removed.to_str().unwrap().trim(), "YES");
    assert!(deid.element(Tag(0x0012, 0x0063)).is_ok(), "De-identification Method is set");
}
