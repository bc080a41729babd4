//! Scenario 3: failover. kill -9 the leader of a 3-node Yilian cluster and of a 3-member etcd
//! cluster; a stream of clients keeps writing to the survivors (a new attempt every 50 ms, each
//! with a 2 s timeout); measure from the kill to the first acknowledged write. Both run their
//! default timing: Yilian heartbeat 100 ms / election 0.4–0.8 s (plus openraft's 0.8 s leader
//! lease), etcd heartbeat 100 ms / election 1 s.

use crate::etcd::{self, wait_ok, EtcdCluster};
use crate::yilian::{self, YilianCluster};
use crate::Settings;
use std::future::Future;
use std::time::{Duration, Instant};
use yilian_tests::report::{Better, Row};

const ATTEMPT_EVERY: Duration = Duration::from_millis(50);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const GIVE_UP: Duration = Duration::from_secs(60);

/// Start a write attempt at `targets` every 50 ms from `killed_at` on; the time from the kill to
/// the first attempt that is acknowledged.
async fn first_ack<F, Fut>(killed_at: Instant, targets: &[String], attempt: F) -> anyhow::Result<Duration>
where
    F: Fn(String, u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(ATTEMPT_EVERY);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                anyhow::ensure!(killed_at.elapsed() < GIVE_UP, "no write was acknowledged {GIVE_UP:?} after the kill");
                let fut = attempt(targets[seq as usize % targets.len()].clone(), seq);
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(())) = tokio::time::timeout(ATTEMPT_TIMEOUT, fut).await {
                        let _ = tx.send(Instant::now());
                    }
                });
                seq += 1;
            }
            Some(acked) = rx.recv() => return Ok(acked - killed_at),
        }
    }
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings, http: &reqwest::Client) -> anyhow::Result<Vec<Row>> {
    let mut ours = YilianCluster::start(3, "").await?;
    ours.wait_writable(http, 1).await?;
    let mut etcd_cluster = EtcdCluster::start(3, http).await?;
    let (mut y, mut e) = (Vec::new(), Vec::new());
    for run in 0..s.runs {
        let leader = ours.leader().await;
        let survivors: Vec<String> =
            ours.cluster.nodes.keys().filter(|id| **id != leader).map(|id| ours.base(*id)).collect();
        let token = ours.nurse_token.clone();
        ours.cluster.kill9(leader);
        let killed = Instant::now();
        let took = first_ack(killed, &survivors, |base, seq| {
            let (h, t) = (http.clone(), token.clone());
            async move { yilian::submit(&h, &base, &t, &yilian::case_body(1024, seq)).await }
        })
        .await?;
        y.push(took.as_secs_f64());
        ours.cluster.restart(leader);
        ours.cluster.wait_alive().await;
        let all: Vec<u64> = ours.cluster.nodes.keys().copied().collect();
        ours.cluster.wait_leader(&all).await;

        let leader = etcd_cluster.leader(http).await?;
        let urls = etcd_cluster.client_urls();
        let survivors: Vec<String> =
            urls.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, u)| u.clone()).collect();
        etcd_cluster.kill9(leader);
        let killed = Instant::now();
        let took = first_ack(killed, &survivors, |base, seq| {
            let h = http.clone();
            async move { etcd::put(&h, &base, &format!("failover/{seq}"), &[b'x'; 1024]).await }
        })
        .await?;
        e.push(took.as_secs_f64());
        etcd_cluster.restart(leader)?;
        let back = urls[leader].clone();
        wait_ok("the restarted etcd member to serve", Duration::from_secs(30), || {
            etcd::get(http, &back, "bench/ready")
        })
        .await?;
        eprintln!("  failover run {}: Yilian {:.2} s, etcd {:.2} s", run + 1, y[run], e[run]);
    }
    Ok(vec![Row::compare(
        "failover",
        "kill -9 leader → first acknowledged write",
        "s",
        Better::Lower,
        &y,
        "etcd 3.4",
        &e,
    )])
}
