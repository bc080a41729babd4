//! Yilian's node-to-node study transfer as the benchmarks drive it: a clinic uploads a study into
//! one node (`yilian upload --commit`), ops assign its case to a reader at the facility the other
//! nodes serve (`[imaging] serves`), and those nodes' real prefetch loops fetch it over QUIC.
//! The clock starts when the assignment is acknowledged (the prefetch becomes wanted) and stops
//! at the first image a viewer can open there (WADO-RS instance GET answering 200 with the
//! bytes) and at the verified copy (the manifest, as the fetching node applied it, shows it
//! holding every instance: `HoldStudyCopy`).

use crate::yilian::YilianCluster;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use yilian_consensus::pki;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_referral::StudyManifest;
use yilian_tests::harness::{self, acting, cached_token, node_binary, NURSE};

/// Facility whose readers the fetching nodes serve.
pub const SERVED_FACILITY: &str = "PROV";
/// The reader at [`SERVED_FACILITY`] cases are assigned to.
pub const READER: &str = "specialist:DRP";
/// How often the clocks poll the fetching node.
const POLL: Duration = Duration::from_millis(10);
/// Longest any single transfer may take before the benchmark gives up.
const TRANSFER_LIMIT: Duration = Duration::from_secs(600);

/// `[imaging]` table of every node: each serves [`SERVED_FACILITY`]'s readers.
pub fn imaging_toml() -> String {
    format!("[imaging]\nserves = [\"{SERVED_FACILITY}\"]\n")
}

/// Register the provincial reader cases are assigned to (the harness region has PROV already),
/// and log them in: a reader is signed in before a case reaches them, so [`first_image`] times
/// the image, not the sign-in (their user record and session are Raft writes, two round trips
/// each through a long path).
pub async fn add_reader(ours: &YilianCluster) -> anyhow::Result<()> {
    let ops = acting(&ours.cluster.api(1), "ops:test").await;
    let reader = json!({
        "id": "DRP", "name": "省医院医生", "facility": SERVED_FACILITY, "specialty": "cardiology",
        "modalities": ["CT", "ECG"], "licensed_regions": ["r"], "cap": 100000, "on_shift": true,
    });
    let _: Value = ops.post("/v1/specialists", &reader).await.context("registering the reader")?;
    acting(&ours.cluster.api(1), READER).await;
    Ok(())
}

/// A study uploaded into one node, waiting to be offered.
pub struct Staged {
    /// The case it belongs to.
    pub case: String,
    /// Its Study Instance UID.
    pub study_uid: String,
    /// Total bytes of its files.
    pub bytes: u64,
    /// Its files (kept for the peer's side of the same run).
    pub files: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

/// Submit a case at `holder`, generate a CT study of `slices` 512×512 16-bit slices (seed
/// `seed`, new UIDs) for it, and upload it into `holder` with `yilian upload --commit`.
pub async fn stage(ours: &YilianCluster, holder: u64, seed: u64, slices: u32) -> anyhow::Result<Staged> {
    let api = ours.cluster.api(holder);
    let case = harness::submit(&api, &format!("bench-transfer-{seed}")).await?;
    let dir = tempfile::Builder::new().prefix("yilian-bench-prefetch-").tempdir()?;
    let opts =
        SynthOptions { seed, ct_slices: slices, accession: Some(case.clone()), ..SynthOptions::default() };
    let summary =
        generate(dir.path(), &[SynthKind::Ct], &opts).map_err(|e| anyhow::anyhow!("synthetic study: {e}"))?;
    let study = summary.studies.into_iter().next().context("the generator wrote no study")?;
    upload(ours, holder, &case, dir.path()).await?;
    Ok(Staged {
        case,
        study_uid: study.study_instance_uid,
        bytes: study.bytes,
        files: study.files,
        _dir: dir,
    })
}

async fn upload(ours: &YilianCluster, holder: u64, case: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let cluster = &ours.cluster;
    let certs = cluster.dir.path().join("uploader");
    let files = pki::issue_client_cert(&cluster.certs(), "bench-uploader", &certs)?;
    let api_addr = &cluster.node(holder).api_addr;
    harness::token(&cluster.api(holder), NURSE).await;
    let run = tokio::process::Command::new(node_binary())
        .arg("upload")
        .arg(dir)
        .args(["--case", case, "--api", api_addr, "--commit"])
        .args(["--token", &cached_token(api_addr, NURSE)])
        .arg("--tls-ca")
        .arg(cluster.certs().join(pki::CA_CERT))
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TRANSFER_LIMIT, run).await.context("`yilian upload` hung")??;
    crate::peers::ensure_succeeded("`yilian upload`", &out)
}

/// Assign the staged case to [`READER`] as ops; returns when the assignment was acknowledged
/// (from then on the serving nodes want the study).
pub async fn offer(ours: &YilianCluster, via: u64, staged: &Staged) -> anyhow::Result<Instant> {
    let ops = acting(&ours.cluster.api(via), "ops:test").await;
    let reader = READER.trim_start_matches("specialist:");
    let _: Value = ops
        .post(&format!("/v1/cases/{}/assign", staged.case), &json!({ "to": reader }))
        .await
        .context("assigning the case to the reader")?;
    Ok(Instant::now())
}

/// Time from `since` until node `id` serves the first instance of the study to the reader:
/// QIDO-RS lists an instance there and WADO-RS returns it (200, non-empty body) to the reader
/// [`add_reader`] signed in.
pub async fn first_image(
    ours: &YilianCluster,
    id: u64,
    staged: &Staged,
    since: Instant,
) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let token = cached_token(&ours.cluster.node(id).api_addr, READER);
    let base = ours.cluster.api(id).base().to_owned();
    let list = format!("{base}/dicomweb/studies/{}/instances", staged.study_uid);
    loop {
        if let Some((series, sop)) = first_listed(&http, &list, &token).await {
            let url = format!("{base}/dicomweb/studies/{}/series/{series}/instances/{sop}", staged.study_uid);
            let resp = http.get(url).bearer_auth(&token).send().await?;
            if resp.status().is_success() && !resp.bytes().await?.is_empty() {
                return Ok(since.elapsed());
            }
        }
        anyhow::ensure!(
            since.elapsed() < TRANSFER_LIMIT,
            "node {id} served no image within {TRANSFER_LIMIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// (Series, SOP Instance UID) of the first instance QIDO-RS lists, if any.
async fn first_listed(http: &reqwest::Client, url: &str, token: &str) -> Option<(String, String)> {
    let resp = http.get(url).bearer_auth(token).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let found: Value = resp.json().await.ok()?;
    let first = found.as_array()?.first()?;
    let text = |tag: &str| first[tag]["Value"][0].as_str().map(str::to_owned);
    Some((text("0020000E")?, text("00080018")?))
}

/// Time from `since` until node `id` has applied the manifest entry recording it as holding
/// every instance of the study (its verified copy).
pub async fn copy_held(
    ours: &YilianCluster,
    id: u64,
    staged: &Staged,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        if holds(ours, id, staged).await {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            since.elapsed() < TRANSFER_LIMIT,
            "node {id} recorded no copy of the study within {TRANSFER_LIMIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether node `id` has applied its copy of the staged study.
pub async fn holds(ours: &YilianCluster, id: u64, staged: &Staged) -> bool {
    let nurse = acting(&ours.cluster.api(id), NURSE).await;
    let path = format!("/v1/studies/{}?consistency=stale", staged.study_uid);
    nurse.get::<StudyManifest>(&path).await.is_ok_and(|m| m.held_by(id))
}

/// Bytes node `id` has fetched from other nodes since it started (`/metrics`).
pub async fn bytes_fetched(ours: &YilianCluster, id: u64) -> u64 {
    let body = ours.cluster.api(id).get_text("/metrics").await.unwrap_or_default();
    body.lines()
        .filter_map(|l| l.strip_prefix("yilian_transfer_bytes_fetched "))
        .find_map(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
