//! DIMSE into a real node: DCMTK `echoscu` and `storescu` (Debian package dcmtk, installed by
//! tests/dicom/setup.sh) send synthetic studies whose Accession Number is a case id; every
//! instance lands in the node's store, in the study's replicated manifest (held by the node) and
//! in DICOMweb search. A file naming an unknown case is refused and nothing of it is kept.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use support::*;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_referral::StudyManifest;
use yilian_tests::imaging_client::{self, dcmtk};

fn studies(dir: &Path, accession: &str, seed: u64) -> Vec<PathBuf> {
    let opts = SynthOptions { accession: Some(accession.to_owned()), ..SynthOptions::small(seed) };
    let summary =
        generate(dir, &[SynthKind::Ct, SynthKind::Dr, SynthKind::Ecg], &opts).expect("synthetic studies");
    summary.studies.into_iter().flat_map(|s| s.files).collect()
}

async fn storescu(port: u16, files: &[PathBuf]) -> std::process::Output {
    imaging_client::storescu(port, files).output().await.expect("storescu")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_into_a_node_fills_store_manifest_and_search() {
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let extra = format!("{FAST_RAFT}\n[imaging]\ndimse_addr = \"127.0.0.1:{port}\"\nae_title = \"YILIAN\"\n");
    let cluster = TestCluster::start(1, &extra).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let case = submit(&api, "dimse").await.expect("case");
    let nurse = acting(&api, NURSE).await;

    let echo = dcmtk("echoscu")
        .args(["-aec", "YILIAN", "127.0.0.1", &port.to_string()])
        .output()
        .await
        .expect("echoscu");
    assert!(echo.status.success(), "C-ECHO failed: {}", String::from_utf8_lossy(&echo.stderr));

    let dir = tempfile::tempdir().expect("tempdir");
    let files = studies(dir.path(), &case, 5);
    let out = storescu(port, &files).await;
    assert!(out.status.success(), "storescu failed: {}", String::from_utf8_lossy(&out.stderr));

    let manifests: Vec<StudyManifest> =
        nurse.get(&format!("/v1/cases/{case}/studies")).await.expect("studies");
    assert_eq!(manifests.len(), 3, "CT, DR and ECG studies");
    let instances: usize = manifests.iter().map(|m| m.instances.len()).sum();
    assert_eq!(instances, files.len());
    for m in &manifests {
        assert!(m.held_by(1), "node 1 holds every instance of {}", m.study_uid);
        for i in m.instances.values() {
            assert_eq!(i.record.sha256.len(), 64);
        }
    }
    let found: serde_json::Value =
        nurse.get(&format!("/dicomweb/studies?AccessionNumber={case}")).await.expect("QIDO");
    assert_eq!(found.as_array().map(Vec::len), Some(3), "QIDO finds the three studies: {found}");

    // A study naming a case that does not exist is refused, and nothing of it is recorded.
    let other = tempfile::tempdir().expect("tempdir");
    let stray = studies(other.path(), "C99999999", 6);
    let out = storescu(port, &stray[..1]).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() || text.contains("0x0124"), "refused: {text}");
    let manifests: Vec<StudyManifest> =
        nurse.get(&format!("/v1/cases/{case}/studies")).await.expect("studies");
    assert_eq!(manifests.iter().map(|m| m.instances.len()).sum::<usize>(), files.len());
}
