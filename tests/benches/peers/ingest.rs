//! Scenario 2: DIMSE ingest. The same synthetic CT study (`yilian synth`'s generator, 512×512
//! 16-bit slices) is C-STOREd by DCMTK storescu into a Yilian node and into Orthanc 1.10, over 1
//! and over 4 parallel associations. Each run sends a new study (new seed, new UIDs) so neither
//! side can answer from what it already holds; Yilian files each instance under the case its
//! Accession Number names.

use crate::dcmtk::Nagle;
use crate::{dcmtk, orthanc, yilian, Settings};
use std::path::PathBuf;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_tests::harness::{self, free_port};
use yilian_tests::report::{Better, Row};

const PEER: &str = "Orthanc 1.10";

fn study(
    dir: &std::path::Path,
    accession: &str,
    seed: u64,
    slices: u32,
) -> anyhow::Result<(Vec<PathBuf>, u64)> {
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

/// Run the scenario and return its rows: for each DCMTK TCP setting (storescu sends to both
/// sides, and Orthanc's DICOM side is DCMTK), 1 and 4 associations.
pub async fn run(s: &Settings, http: &reqwest::Client) -> anyhow::Result<Vec<Row>> {
    let slices: u32 = if s.quick { 40 } else { 150 };
    let dimse_port = free_port();
    let extra = format!("[imaging]\ndimse_addr = \"127.0.0.1:{dimse_port}\"\nae_title = \"YILIAN\"\n");
    let ours = yilian::YilianCluster::start(1, &extra).await?;
    ours.wait_writable(http, 1).await?;
    let case = harness::submit(&ours.cluster.api(1), "bench-ingest").await?;
    let mut rows = Vec::new();
    for nagle in Nagle::BOTH {
        let peer = orthanc::Orthanc::start(http, nagle).await?;
        let peer_name = format!("{PEER}{}", nagle.peer_suffix());
        for associations in [1usize, 4] {
            let (mut y, mut o, mut y_mb, mut o_mb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in 0..s.runs {
                let dir = tempfile::Builder::new().prefix("yilian-bench-ingest-").tempdir()?;
                let seed =
                    1000 + associations as u64 * 100 + run as u64 + 10 * u64::from(nagle == Nagle::Off);
                let (files, bytes) = study(dir.path(), &case, seed, slices)?;
                let took =
                    dcmtk::store("YILIAN", dimse_port, &files, associations, nagle).await?.as_secs_f64();
                y.push(files.len() as f64 / took);
                y_mb.push(bytes as f64 / 1e6 / took);
                let took = dcmtk::store(orthanc::AE_TITLE, peer.dicom_port, &files, associations, nagle)
                    .await?
                    .as_secs_f64();
                o.push(files.len() as f64 / took);
                o_mb.push(bytes as f64 / 1e6 / took);
                eprintln!(
                    "  ingest {associations} assoc{} run {}: {} files, Yilian {:.0}/s, Orthanc {:.0}/s",
                    nagle.peer_suffix(),
                    run + 1,
                    files.len(),
                    y[run],
                    o[run]
                );
            }
            let metric = |m: &str| {
                format!("{m}, CT {slices}×512² 16-bit, {associations} assoc, storescu{}", nagle.peer_suffix())
            };
            rows.push(Row::compare(
                "ingest",
                metric("C-STORE instances/s"),
                "/s",
                Better::Higher,
                &y,
                &peer_name,
                &o,
            ));
            rows.push(Row::compare(
                "ingest",
                metric("C-STORE MB/s"),
                "MB/s",
                Better::Higher,
                &y_mb,
                &peer_name,
                &o_mb,
            ));
        }
    }
    Ok(rows)
}
