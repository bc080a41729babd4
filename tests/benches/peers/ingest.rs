//! Scenario 2: DIMSE ingest. The same synthetic CT study (`yilian synth`'s generator, 512×512
//! 16-bit slices) is C-STOREd by DCMTK storescu into a Yilian node and into Orthanc 1.10, over 1
//! and over 4 parallel associations. Each run sends a new study (new seed, new UIDs) so neither
//! side can answer from what it already holds; Yilian files each instance under the case its
//! Accession Number names. Besides the rates, the CPU time (user + system) the receiving
//! process used per instance: when storescu sets the pace, as with Nagle off, both receive at
//! its rate and only their CPU per instance tells them apart.

use crate::dcmtk::Nagle;
use crate::{dcmtk, orthanc, yilian, Settings};
use std::path::{Path, PathBuf};
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_tests::harness::{self, free_port};
use yilian_tests::load::cpu_time;
use yilian_tests::report::{Better, Row};

const PEER: &str = "Orthanc 1.10";

fn study(dir: &Path, accession: &str, seed: u64, slices: u32) -> anyhow::Result<(Vec<PathBuf>, u64)> {
    let opts = SynthOptions {
        seed,
        ct_slices: slices,
        accession: Some(accession.to_owned()),
        ..SynthOptions::default()
    };
    let summary =
        generate(dir, &[SynthKind::Ct], &opts).map_err(|e| anyhow::anyhow!("synthetic study: {e}"))?;
    let files: Vec<PathBuf> = summary.studies.into_iter().flat_map(|s| s.files).collect();
    let bytes = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    Ok((files, bytes))
}

/// What one storescu run into one receiver gave: instances/s, MB/s and the receiver's CPU
/// milliseconds per instance.
struct Sent {
    per_s: f64,
    mb_per_s: f64,
    cpu_ms: f64,
}

/// A row of each ingest measurement: metric, unit, which way is better, its value in a run.
type Measure = (&'static str, &'static str, Better, fn(&Sent) -> f64);

/// The measurements reported for every association count and DCMTK TCP setting.
const MEASURES: [Measure; 3] = [
    ("C-STORE instances/s", "/s", Better::Higher, |r| r.per_s),
    ("C-STORE MB/s", "MB/s", Better::Higher, |r| r.mb_per_s),
    ("receiver CPU per instance", "ms", Better::Lower, |r| r.cpu_ms),
];

/// storescu `files` (`bytes` in all) to `ae` at `port` over `associations`, metering `pids`.
async fn send(
    ae: &str,
    port: u16,
    pids: &[u32],
    files: &[PathBuf],
    bytes: u64,
    associations: usize,
    nagle: Nagle,
) -> anyhow::Result<Sent> {
    let cpu_before = cpu_time(pids)?;
    let took = dcmtk::store(ae, port, files, associations, nagle).await?.as_secs_f64();
    let cpu = cpu_time(pids)?.saturating_sub(cpu_before);
    Ok(Sent {
        per_s: files.len() as f64 / took,
        mb_per_s: bytes as f64 / 1e6 / took,
        cpu_ms: cpu.as_secs_f64() * 1000.0 / files.len() as f64,
    })
}

/// Run the scenario and return its rows: for each DCMTK TCP setting (storescu sends to both
/// sides, and Orthanc's DICOM side is DCMTK), 1 and 4 associations.
pub async fn run(s: &Settings, http: &reqwest::Client) -> anyhow::Result<Vec<Row>> {
    let slices: u32 = if s.quick { 40 } else { 150 };
    let dimse_port = free_port();
    let extra = format!("[imaging]\ndimse_addr = \"127.0.0.1:{dimse_port}\"\nae_title = \"YILIAN\"\n");
    let ours = yilian::YilianCluster::start(1, &extra).await?;
    ours.wait_writable(http, 1).await?;
    let case = harness::submit(&ours.cluster.api(1), "bench-ingest").await?;
    let node_pids = ours.pids();
    let mut rows = Vec::new();
    for nagle in Nagle::BOTH {
        let peer = orthanc::Orthanc::start(http, nagle).await?;
        let peer_name = format!("{PEER}{}", nagle.peer_suffix());
        for associations in [1usize, 4] {
            let (mut y, mut o) = (Vec::new(), Vec::new());
            for run in 0..s.runs {
                let dir = tempfile::Builder::new().prefix("yilian-bench-ingest-").tempdir()?;
                let seed =
                    1000 + associations as u64 * 100 + run as u64 + 10 * u64::from(nagle == Nagle::Off);
                let (files, bytes) = study(dir.path(), &case, seed, slices)?;
                let into_yilian =
                    send("YILIAN", dimse_port, &node_pids, &files, bytes, associations, nagle).await?;
                let into_orthanc = send(
                    orthanc::AE_TITLE,
                    peer.dicom_port,
                    &[peer.pid()],
                    &files,
                    bytes,
                    associations,
                    nagle,
                )
                .await?;
                eprintln!(
                    "  ingest {associations} assoc{} run {}: {} files, Yilian {:.0}/s ({:.2} CPU ms each), \
                     Orthanc {:.0}/s ({:.2} CPU ms each)",
                    nagle.peer_suffix(),
                    run + 1,
                    files.len(),
                    into_yilian.per_s,
                    into_yilian.cpu_ms,
                    into_orthanc.per_s,
                    into_orthanc.cpu_ms,
                );
                y.push(into_yilian);
                o.push(into_orthanc);
            }
            let metric = |m: &str| {
                format!("{m}, CT {slices}×512² 16-bit, {associations} assoc, storescu{}", nagle.peer_suffix())
            };
            for (name, unit, better, value) in MEASURES {
                let (ours, theirs): (Vec<f64>, Vec<f64>) =
                    (y.iter().map(value).collect(), o.iter().map(value).collect());
                rows.push(Row::compare("ingest", metric(name), unit, better, &ours, &peer_name, &theirs));
            }
        }
    }
    Ok(rows)
}
