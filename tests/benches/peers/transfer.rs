//! Scenario 5: moving one CT study (512×512 16-bit slices; 300 full, 60 with --quick) between
//! two sites. The reference is DCMTK storescu → storescp on loopback, and through a user-space
//! shaper at a fixed link rate (goodput as a share of that rate). Yilian's node-to-node side
//! needs the prefetch wiring of the imaging-wire branch and reports "not measured" until then.

use crate::peers::STORESCP;
use crate::{dcmtk, shaper, Settings};
use anyhow::Context;
use std::process::Stdio;
use std::time::Duration;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_tests::harness::free_port;
use yilian_tests::report::{Better, Row};

/// Rate of the shaped link, Mbit/s (a county hospital's leased line).
pub const LINK_MBIT: f64 = 100.0;
const PEER: &str = "DCMTK storescu→storescp";

/// A storescp receiving into a temp directory; killed on drop.
struct StoreScp {
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
    port: u16,
}

impl StoreScp {
    async fn start() -> anyhow::Result<Self> {
        let program = STORESCP.require()?;
        let dir = tempfile::Builder::new().prefix("yilian-bench-storescp-").tempdir()?;
        let port = free_port();
        let child = tokio::process::Command::new(program)
            .args(["-aet", "STORESCP", "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting storescp")?;
        let addr = format!("127.0.0.1:{port}");
        crate::etcd::wait_ok("storescp to listen", Duration::from_secs(10), || {
            let a = addr.clone();
            async move { tokio::net::TcpStream::connect(a).await.map(drop).map_err(Into::into) }
        })
        .await?;
        Ok(Self { _dir: dir, child, port })
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let slices: u32 = if s.quick { 60 } else { 300 };
    let dir = tempfile::Builder::new().prefix("yilian-bench-transfer-").tempdir()?;
    let opts = SynthOptions { seed: 7, ct_slices: slices, ..SynthOptions::default() };
    let summary =
        generate(dir.path(), &[SynthKind::Ct], &opts).map_err(|e| anyhow::anyhow!("synthetic study: {e}"))?;
    let files: Vec<_> = summary.studies.into_iter().flat_map(|s| s.files).collect();
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let mb = bytes as f64 / 1e6;
    let (mut loop_s, mut loop_mbs, mut shaped_s, mut shaped_share) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..s.runs {
        let scp = StoreScp::start().await?;
        let took = dcmtk::store("STORESCP", scp.port, &files, 1).await?.as_secs_f64();
        loop_s.push(took);
        loop_mbs.push(mb / took);
        drop(scp);
        let scp = StoreScp::start().await?;
        let link = shaper::start(format!("127.0.0.1:{}", scp.port).parse()?, LINK_MBIT).await?;
        let took = dcmtk::store("STORESCP", link.port, &files, 1).await?.as_secs_f64();
        shaped_s.push(took);
        shaped_share.push(100.0 * (mb * 8.0 / took) / LINK_MBIT);
        eprintln!(
            "  transfer run {}: {mb:.0} MB, loopback {:.2} s ({:.0} MB/s), {LINK_MBIT} Mbit/s link {:.2} s ({:.0}% of the link)",
            run + 1,
            loop_s[run],
            loop_mbs[run],
            shaped_s[run],
            shaped_share[run]
        );
    }
    let metric = |m: &str| format!("{m}, CT {slices}×512² ({mb:.0} MB)");
    Ok(vec![
        Row::peer_only("transfer", metric("loopback seconds"), "s", Better::Lower, PEER, &loop_s),
        Row::peer_only("transfer", metric("loopback MB/s"), "MB/s", Better::Higher, PEER, &loop_mbs),
        Row::peer_only(
            "transfer",
            metric(&format!("{LINK_MBIT} Mbit/s link seconds")),
            "s",
            Better::Lower,
            PEER,
            &shaped_s,
        ),
        Row::peer_only(
            "transfer",
            metric(&format!("goodput share of a {LINK_MBIT} Mbit/s link")),
            "%",
            Better::Higher,
            PEER,
            &shaped_share,
        ),
    ])
}
