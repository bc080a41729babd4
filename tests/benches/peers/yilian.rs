//! A Yilian cluster for benchmarks: the test harness's real node processes, seeded with a small
//! region, plus the raw HTTP calls the workloads make (same client stack as for the peers).

use crate::etcd::wait_ok;
use serde_json::{json, Value};
use std::time::Duration;
use yilian_tests::harness::{self, TestCluster, NURSE};

/// Facility every benchmark case is submitted from.
pub const FACILITY: &str = "TS";

/// A running cluster with the nurse's token.
pub struct YilianCluster {
    /// The harness cluster (node processes, data dirs, logs).
    pub cluster: TestCluster,
    /// Bearer token of the clinic nurse that submits cases.
    pub nurse_token: String,
}

impl YilianCluster {
    /// Start `count` nodes with production Raft timing (deploy/node.example.toml defaults) plus
    /// `extra_toml`, seed the region and log the nurse in.
    pub async fn start(count: u64, extra_toml: &str) -> anyhow::Result<Self> {
        Self::seeded(TestCluster::start(count, extra_toml).await).await
    }

    /// Like [`YilianCluster::start`], with every node behind a UDP relay of the harness's
    /// [`Network`](yilian_tests::netfault::Network) (nodes advertise their relay, so all
    /// node-to-node QUIC traffic crosses it; `cluster.net()` shapes the links).
    pub async fn start_behind_relays(count: u64, extra_toml: &str) -> anyhow::Result<Self> {
        Self::seeded(TestCluster::start_behind_relays(count, extra_toml, 7).await).await
    }

    async fn seeded(cluster: TestCluster) -> anyhow::Result<Self> {
        let api = cluster.api(1);
        harness::seed_region(&api).await;
        let nurse_token = harness::token(&api, NURSE).await;
        Ok(Self { cluster, nurse_token })
    }

    /// Base URL (`http://host:port`) of node `id`'s API.
    pub fn base(&self, id: u64) -> String {
        self.cluster.api(id).base().to_owned()
    }

    /// Base URLs of every node, by id.
    pub fn bases(&self) -> Vec<String> {
        self.cluster.nodes.keys().map(|id| self.base(*id)).collect()
    }

    /// Process ids of the running node processes.
    pub fn pids(&self) -> Vec<u32> {
        self.cluster.nodes.values().filter_map(|n| n.pid()).collect()
    }

    /// The node that leads now.
    pub async fn leader(&self) -> u64 {
        let running = self.cluster.running();
        self.cluster.wait_leader(&running).await
    }

    /// Wait until a write through node `id` is acknowledged.
    pub async fn wait_writable(&self, http: &reqwest::Client, id: u64) -> anyhow::Result<()> {
        let base = self.base(id);
        let body = case_body(64, 0);
        wait_ok("Yilian to accept a write", Duration::from_secs(30), || {
            submit(http, &base, &self.nurse_token, &body)
        })
        .await
    }
}

/// Body of `POST /v1/cases` whose JSON is about `bytes` long (a case record of that size).
pub fn case_body(bytes: usize, seq: u64) -> Value {
    let base = json!({
        "patient_id": harness::patient_id(&format!("bench-{}", seq % 1000)),
        "complaint": "",
        "priority": "routine",
        "specialty": "cardiology",
    });
    let pad = bytes.saturating_sub(base.to_string().len());
    let complaint: String = "胸闷气短，活动后加重，伴心悸。".chars().cycle().take((pad / 3).max(1)).collect();
    json!({
        "patient_id": base["patient_id"],
        "complaint": complaint,
        "priority": "routine",
        "specialty": "cardiology",
    })
}

/// `POST /v1/cases` through node `base`; acknowledged once committed and applied.
pub async fn submit(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> anyhow::Result<()> {
    let resp = http.post(format!("{base}/v1/cases")).bearer_auth(token).json(body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("POST /v1/cases: {status} {}", resp.text().await.unwrap_or_default());
    }
    resp.bytes().await?;
    Ok(())
}

/// Linearizable read (ReadIndex through the leader) of the submitting facility's record through
/// node `base`. Case reads are also audited, which makes each one a Raft write; facility reads
/// are not, so this measures the read path itself.
pub async fn read(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    let resp = http.get(format!("{base}/v1/facilities/{FACILITY}")).bearer_auth(token).send().await?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("GET /v1/facilities: {status} {}", resp.text().await.unwrap_or_default());
    }
    resp.bytes().await?;
    Ok(())
}
