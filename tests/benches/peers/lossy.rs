//! Scenario 5 on a path that loses packets, as a township clinic's radio or long rural uplink
//! does: one CT study (60 slices) prefetched between two Yilian sites through the 100 Mbit/s
//! link with a [`RTT_MS`] round trip that drops [`LOSS`] of packets at random each way, with the
//! sites' nodes sending as shipped (Cubic) and with `[transport] congestion_control = "bbr"`.
//! DCMTK has no row here: this kernel has no `netem` to drop its TCP packets, and the user-space
//! TCP shaper cannot drop inside a TCP stream; a loss-based TCP sender is bound near
//! MSS / RTT × 1.22 / √loss (about 7 Mbit/s here), as Cubic over QUIC is.

use crate::prefetch;
use crate::transfer::{link_share, prefetch_once, shaped_link, LINK_MBIT};
use crate::yilian::YilianCluster;
use crate::Settings;
use std::time::Duration;
use yilian_consensus::CongestionControl;
use yilian_tests::netfault::LinkRule;
use yilian_tests::report::{Better, Row};

/// Round trip of the lossy path, ms.
const RTT_MS: u64 = 20;
/// Share of packets dropped each way.
const LOSS: f64 = 0.01;
/// Slices of the study: Cubic moves about 6 Mbit/s through this path, so a 300-slice study
/// would take minutes per run.
const SLICES: u32 = 60;

/// Two sites whose nodes send with `controller`, behind the lossy path.
async fn site_pair(controller: CongestionControl) -> anyhow::Result<YilianCluster> {
    let toml = format!("{}\n[transport]\ncongestion_control = \"{controller}\"\n", prefetch::imaging_toml());
    let ours = YilianCluster::start_behind_relays(2, &toml).await?;
    let delay = Duration::from_millis(RTT_MS / 2);
    ours.cluster.net().set_all(LinkRule { delay, loss: LOSS, ..shaped_link() });
    prefetch::add_reader(&ours).await?;
    Ok(ours)
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let controllers = [CongestionControl::Bbr, CongestionControl::Cubic];
    let (bbr, cubic) = (site_pair(controllers[0]).await?, site_pair(controllers[1]).await?);
    let (mut copy, mut first) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut mb = 0.0;
    for run in 0..s.runs {
        for (i, (name, ours)) in controllers.into_iter().zip([&bbr, &cubic]).enumerate() {
            let staged = prefetch::stage(ours, 1, 7500 + (2 * run + i) as u64, SLICES).await?;
            let (first_s, copy_s) = prefetch_once(ours, &staged).await?;
            mb = staged.bytes as f64 / 1e6;
            eprintln!(
                "  lossy run {} ({name}): {mb:.0} MB in {copy_s:.2} s (first image {first_s:.3} s)",
                run + 1
            );
            copy[i].push(copy_s);
            first[i].push(first_s);
        }
    }
    let path = format!("{LINK_MBIT} Mbit/s link, {RTT_MS} ms round trip, {}% loss", LOSS * 100.0);
    let metric = |m: &str| format!("{m}, {path}, CT {SLICES}×512² ({mb:.0} MB)");
    let peer = "Yilian, congestion_control = cubic (default)";
    let share = |secs: &[f64]| secs.iter().map(|t| link_share(mb, *t)).collect::<Vec<_>>();
    Ok(vec![
        Row::compare("lossy", metric("bbr: seconds"), "s", Better::Lower, &copy[0], peer, &copy[1]),
        Row::compare(
            "lossy",
            metric("bbr: goodput share"),
            "%",
            Better::Higher,
            &share(&copy[0]),
            peer,
            &share(&copy[1]),
        ),
        Row::compare(
            "lossy",
            metric("bbr: assigned → first image served"),
            "s",
            Better::Lower,
            &first[0],
            peer,
            &first[1],
        ),
    ])
}
