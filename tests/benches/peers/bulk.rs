//! Scenario 6: Raft writes while a study transfer saturates the links between the nodes, vs the
//! same cluster idle, in the same run. Three nodes behind the harness's UDP relays, every link
//! shaped to the transfer scenario's rate each way. A 300-slice CT study is uploaded into the
//! leader; its case is assigned to a reader both followers serve, so both fetch it from the
//! leader at once, filling both leader → follower links that carry Raft's AppendEntries. Four
//! closed-loop clients submit ~1 KB case records (spread over the three nodes; a specialty no
//! reader has, so they wait unrouted and leave the readers' caps alone) for one window
//! while idle and one while the transfer runs; the fetched bytes during the window show the
//! links were busy.

use crate::transfer::{shaped_link, LINK_MBIT};
use crate::writes::RECORD_BYTES;
use crate::yilian::{self, YilianCluster};
use crate::{prefetch, Settings};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yilian_tests::load::{closed_loop, LoadResult};
use yilian_tests::report::{Better, Row};

/// Closed-loop writers in both windows.
pub const CLIENTS: usize = 4;
/// Slices of the study that loads the links (~160 MB: ~13 s per link at 100 Mbit/s).
const SLICES: u32 = 300;
const IDLE: &str = "same cluster, idle links";

/// The load's case record: [`yilian::case_body`] for a specialty no reader in the region has,
/// so the load's cases wait unrouted and never fill a reader's cap (which would route the
/// staged case to the provincial reader before it is assigned).
fn load_case(seq: u64) -> serde_json::Value {
    let mut body = yilian::case_body(RECORD_BYTES, seq);
    body["specialty"] = serde_json::json!("dermatology");
    body
}

async fn writes(s: &Settings, ours: &YilianCluster, http: &reqwest::Client) -> anyhow::Result<LoadResult> {
    let (bases, token, http) = (Arc::new(ours.bases()), Arc::new(ours.nurse_token.clone()), http.clone());
    closed_loop(CLIENTS, s.warmup, s.window, move |c, seq| {
        let (b, t, h) = (bases.clone(), token.clone(), http.clone());
        async move { yilian::submit(&h, &b[c % b.len()], &t, &load_case(seq)).await }
    })
    .await
}

/// Bytes both followers fetched so far.
async fn fetched(ours: &YilianCluster, followers: &[u64]) -> u64 {
    let mut total = 0;
    for id in followers {
        total += prefetch::bytes_fetched(ours, *id).await;
    }
    total
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings, http: &reqwest::Client) -> anyhow::Result<Vec<Row>> {
    let ours = YilianCluster::start_behind_relays(3, &prefetch::imaging_toml()).await?;
    ours.cluster.net().set_all(shaped_link());
    prefetch::add_reader(&ours).await?;
    ours.wait_writable(http, 1).await?;
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    let mut link_use = Vec::new();
    for run in 0..s.runs {
        let leader = ours.leader().await;
        let followers: Vec<u64> = ours.cluster.running().into_iter().filter(|id| *id != leader).collect();
        let staged = prefetch::stage(&ours, leader, 9000 + run as u64, SLICES).await?;
        idle.push(writes(s, &ours, http).await?);
        let since = prefetch::offer(&ours, leader, &staged).await?;
        let before = fetched(&ours, &followers).await;
        while fetched(&ours, &followers).await < before + (4 << 20) {
            anyhow::ensure!(
                since.elapsed() < Duration::from_secs(60),
                "the followers did not start fetching"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (started, at_start) = (Instant::now(), fetched(&ours, &followers).await);
        busy.push(writes(s, &ours, http).await?);
        let moved = fetched(&ours, &followers).await - at_start;
        let secs = started.elapsed().as_secs_f64();
        let capacity = followers.len() as f64 * LINK_MBIT * 1e6 / 8.0 * secs;
        link_use.push(100.0 * moved as f64 / capacity);
        let mut still_running = false;
        for id in &followers {
            still_running |= !prefetch::holds(&ours, *id, &staged).await;
        }
        for id in &followers {
            prefetch::copy_held(&ours, *id, &staged, since).await?;
        }
        let (i, b) = (&idle[run], &busy[run]);
        eprintln!(
            "  bulk run {}: idle p50 {:.1} ms p99 {:.1} ms ({:.0} w/s); under bulk p50 {:.1} ms p99 {:.1} ms ({:.0} w/s); links {:.0}% used{}",
            run + 1,
            i.percentile_ms(50.0),
            i.percentile_ms(99.0),
            i.per_second(),
            b.percentile_ms(50.0),
            b.percentile_ms(99.0),
            b.per_second(),
            link_use[run],
            if still_running { "" } else { " (the transfer ended inside the window)" }
        );
    }
    let of = |r: &[LoadResult], f: &dyn Fn(&LoadResult) -> f64| r.iter().map(f).collect::<Vec<_>>();
    let metric = |m: &str| format!("{m} @{CLIENTS}, both leader→follower links saturated vs idle");
    Ok(vec![
        Row::compare(
            "bulk",
            metric("write p50"),
            "ms",
            Better::Lower,
            &of(&busy, &|r| r.percentile_ms(50.0)),
            IDLE,
            &of(&idle, &|r| r.percentile_ms(50.0)),
        ),
        Row::compare(
            "bulk",
            metric("write p99"),
            "ms",
            Better::Lower,
            &of(&busy, &|r| r.percentile_ms(99.0)),
            IDLE,
            &of(&idle, &|r| r.percentile_ms(99.0)),
        ),
        Row::compare(
            "bulk",
            metric("writes/s"),
            "/s",
            Better::Higher,
            &of(&busy, &|r| r.per_second()),
            IDLE,
            &of(&idle, &|r| r.per_second()),
        ),
        Row::alone(
            "bulk",
            format!("share of the two {LINK_MBIT} Mbit/s links the transfer used during the window"),
            "%",
            Better::Higher,
            &link_use,
        ),
    ])
}
