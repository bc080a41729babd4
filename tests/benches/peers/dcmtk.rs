//! DCMTK's storescu as the C-STORE client for every DIMSE measurement, so Yilian and the peers
//! receive the same bytes from the same sender.

use crate::peers::STORESCU;
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Send `files` to `ae_title` at 127.0.0.1:`port` over `associations` parallel associations
/// (one storescu process each, files dealt round-robin); the wall time until all are stored.
pub async fn store(
    ae_title: &str,
    port: u16,
    files: &[PathBuf],
    associations: usize,
) -> anyhow::Result<Duration> {
    let program = STORESCU.require()?;
    let count = associations.max(1);
    let mut shares: Vec<Vec<PathBuf>> = vec![Vec::new(); count];
    for (i, f) in files.iter().enumerate() {
        shares[i % count].push(f.clone());
    }
    let started = Instant::now();
    let mut children = Vec::new();
    for share in shares.into_iter().filter(|s| !s.is_empty()) {
        let child = tokio::process::Command::new(&program)
            .args(["-aec", ae_title, "127.0.0.1", &port.to_string()])
            .args(&share)
            .kill_on_drop(true)
            .output();
        children.push(tokio::spawn(child));
    }
    for child in children {
        let out = child.await?.context("running storescu")?;
        anyhow::ensure!(
            out.status.success(),
            "storescu to {ae_title} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed())
}
