//! A 3-member etcd 3.4 cluster on loopback (Debian `etcd-server`), each member with its own temp
//! data directory and ports, driven through etcd's JSON gRPC gateway over HTTP/1.1: the same
//! client stack (reqwest, JSON) the benchmarks use for Yilian's API. etcd fsyncs its WAL on every
//! commit by default.

use crate::peers::ETCD;
use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use yilian_tests::harness::free_port;

/// One etcd member process.
struct Member {
    name: String,
    client_url: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster whose members run as child processes; killed on drop.
pub struct EtcdCluster {
    _dir: TempDir,
    program: PathBuf,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Start `count` members with etcd's default timing (heartbeat 100 ms, election 1000 ms)
    /// and wait until the cluster answers a write.
    pub async fn start(count: usize, http: &reqwest::Client) -> anyhow::Result<Self> {
        let program = ETCD.require()?;
        let dir = tempfile::Builder::new().prefix("yilian-bench-etcd-").tempdir()?;
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--advertise-client-urls".into(),
                client_url.clone(),
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url,
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-token".into(),
                "yilian-bench".into(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--logger".into(),
                "zap".into(),
                "--log-level".into(),
                "warn".into(),
            ];
            let log = dir.path().join(format!("{name}.log"));
            members.push(Member { name, client_url, args, log, child: None });
        }
        let mut cluster = Self { _dir: dir, program, members };
        for i in 0..count {
            cluster.launch(i)?;
        }
        let url = cluster.members[0].client_url.clone();
        let ready = wait_ok("etcd to accept a write", Duration::from_secs(30), || {
            put(http, &url, "bench/ready", b"1")
        })
        .await;
        if let Err(e) = ready {
            let log = std::fs::read_to_string(&cluster.members[0].log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            anyhow::bail!("{e:#}; the first member's log ends with:\n{}", tail.join("\n"));
        }
        Ok(cluster)
    }

    fn launch(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&m.log)?;
        let child = Command::new(&self.program)
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting etcd member {}", m.name))?;
        m.child = Some(child);
        Ok(())
    }

    /// Process ids of the running members.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.child.as_ref().map(Child::id)).collect()
    }

    /// Client URL of every member, in member order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Index of the member that currently leads, asked of the running members.
    pub async fn leader(&self, http: &reqwest::Client) -> anyhow::Result<usize> {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            let Ok(status) = post_json(http, &m.client_url, "/v3/maintenance/status", &json!({})).await
            else {
                continue;
            };
            let leader = status["leader"].as_str().unwrap_or_default().to_owned();
            for (i, other) in self.members.iter().enumerate() {
                let Ok(s) = post_json(http, &other.client_url, "/v3/maintenance/status", &json!({})).await
                else {
                    continue;
                };
                if s["header"]["member_id"].as_str() == Some(leader.as_str()) {
                    return Ok(i);
                }
            }
        }
        anyhow::bail!("no etcd member reports a reachable leader")
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start member `i` again from its data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.launch(i)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}

async fn post_json(http: &reqwest::Client, base: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http.post(format!("{base}{path}")).json(body).send().await?;
    let status = resp.status();
    let value: Value = resp.json().await?;
    if !status.is_success() || value.get("error").is_some() {
        anyhow::bail!("etcd {path}: {status} {value}");
    }
    Ok(value)
}

/// `PUT key=value` through member `base` (linearizable, acknowledged after commit).
pub async fn put(http: &reqwest::Client, base: &str, key: &str, value: &[u8]) -> anyhow::Result<()> {
    let body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
    post_json(http, base, "/v3/kv/put", &body).await.map(drop)
}

/// Linearizable read of `key` through member `base` (etcd's default, ReadIndex).
pub async fn get(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<()> {
    let body = json!({ "key": B64.encode(key) });
    post_json(http, base, "/v3/kv/range", &body).await.map(drop)
}

/// Retry `attempt` every 100 ms until it succeeds, or fail after `timeout` naming `what` and the
/// last error.
pub async fn wait_ok<F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
