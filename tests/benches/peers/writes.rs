//! Scenario 1: replicated writes and linearizable reads, 3-node Yilian vs 3-member etcd 3.4,
//! both fsyncing, ~1 KB records, at 1/16/64/256 concurrent clients. Clients are spread evenly
//! over the three members of each cluster (followers forward writes to the leader in both).

use crate::etcd::{self, EtcdCluster};
use crate::yilian::{self, YilianCluster};
use crate::Settings;
use std::sync::Arc;
use yilian_tests::load::{closed_loop, closed_loop_metered, LoadResult};
use yilian_tests::report::{Better, Row};

/// Size of one record in bytes: the JSON body of a case submission, and etcd's value.
pub const RECORD_BYTES: usize = 1024;
const PEER: &str = "etcd 3.4";

/// Per-run values of one system at one client count.
#[derive(Default)]
struct Series {
    writes: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu_ms: Vec<f64>,
    reads: Vec<f64>,
    read_p99: Vec<f64>,
}

impl Series {
    fn add_writes(&mut self, r: &LoadResult) {
        self.writes.push(r.per_second());
        self.p50.push(r.percentile_ms(50.0));
        self.p99.push(r.percentile_ms(99.0));
        self.cpu_ms.extend(r.cpu_ms_per_op());
    }

    fn add_reads(&mut self, r: &LoadResult) {
        self.reads.push(r.per_second());
        self.read_p99.push(r.percentile_ms(99.0));
    }
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings, http: &reqwest::Client) -> anyhow::Result<Vec<Row>> {
    let etcd_cluster = EtcdCluster::start(3, http).await?;
    let etcd_urls = Arc::new(etcd_cluster.client_urls());
    let ours = YilianCluster::start(3, "").await?;
    ours.wait_writable(http, 1).await?;
    let (our_pids, etcd_pids) = (ours.pids(), etcd_cluster.pids());
    let bases = Arc::new(ours.bases());
    let token = Arc::new(ours.nurse_token.clone());
    let value = Arc::new(vec![b'x'; RECORD_BYTES]);
    let mut rows = Vec::new();
    for &clients in &s.clients {
        let (mut y, mut e) = (Series::default(), Series::default());
        for run in 0..s.runs {
            let (b, t, h) = (bases.clone(), token.clone(), http.clone());
            let r = closed_loop_metered(&our_pids, clients, s.warmup, s.window, move |c, seq| {
                let (b, t, h) = (b.clone(), t.clone(), h.clone());
                async move {
                    let body = yilian::case_body(RECORD_BYTES, seq);
                    yilian::submit(&h, &b[c % b.len()], &t, &body).await
                }
            })
            .await?;
            y.add_writes(&r);
            let (u, v, h) = (etcd_urls.clone(), value.clone(), http.clone());
            let r = closed_loop_metered(&etcd_pids, clients, s.warmup, s.window, move |c, seq| {
                let (u, v, h) = (u.clone(), v.clone(), h.clone());
                async move { etcd::put(&h, &u[c % u.len()], &format!("case/{run}/{c}/{seq}"), &v).await }
            })
            .await?;
            e.add_writes(&r);
            let (b, t, h) = (bases.clone(), token.clone(), http.clone());
            let r = closed_loop(clients, s.warmup, s.window, move |c, _| {
                let (b, t, h) = (b.clone(), t.clone(), h.clone());
                async move { yilian::read(&h, &b[c % b.len()], &t).await }
            })
            .await?;
            y.add_reads(&r);
            let (u, h) = (etcd_urls.clone(), http.clone());
            let r = closed_loop(clients, s.warmup, s.window, move |c, _| {
                let (u, h) = (u.clone(), h.clone());
                async move { etcd::get(&h, &u[c % u.len()], "bench/ready").await }
            })
            .await?;
            e.add_reads(&r);
            eprintln!(
                "  writes @{clients:>3} clients run {}: Yilian {:.0} w/s p99 {:.1} ms {:.3} CPU ms/write, \
                 etcd {:.0} w/s p99 {:.1} ms {:.3} CPU ms/write; reads Yilian {:.0}/s, etcd {:.0}/s",
                run + 1,
                y.writes[run],
                y.p99[run],
                y.cpu_ms.get(run).copied().unwrap_or(f64::NAN),
                e.writes[run],
                e.p99[run],
                e.cpu_ms.get(run).copied().unwrap_or(f64::NAN),
                y.reads[run],
                e.reads[run]
            );
        }
        let row = |metric: &str, unit: &str, better, ours: &[f64], peer: &[f64]| {
            Row::compare("writes", format!("{metric} @{clients}"), unit, better, ours, PEER, peer)
        };
        rows.push(row("writes/s", "/s", Better::Higher, &y.writes, &e.writes));
        rows.push(row("write p50", "ms", Better::Lower, &y.p50, &e.p50));
        rows.push(row("write p99", "ms", Better::Lower, &y.p99, &e.p99));
        rows.push(row("server CPU per write (all members)", "ms", Better::Lower, &y.cpu_ms, &e.cpu_ms));
        rows.push(row("linearizable reads/s", "/s", Better::Higher, &y.reads, &e.reads));
        rows.push(row("read p99", "ms", Better::Lower, &y.read_p99, &e.read_p99));
    }
    Ok(rows)
}
