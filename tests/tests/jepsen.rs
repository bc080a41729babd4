//! Jepsen-style run on three real nodes: concurrent clients drive referral cases through their
//! lifecycle (accept, start, hold, resume, cancel) and read them linearizably through random
//! nodes, while a seeded fault schedule kills the leader or any node with SIGKILL (restarting it
//! from its data directory) and freezes nodes with SIGSTOP/SIGCONT. Every invocation is recorded
//! with its outcome (ok, refused, unknown). Afterwards the history must be linearizable per case
//! against the domain's transition table, every node must hold the same cases with the same
//! histories, and every node's audit chain must verify.
//!
//! The schedule is printed with its seed; `YILIAN_JEPSEN_SEED=<seed>` replays it and
//! `YILIAN_JEPSEN_SEEDS=<n>` runs more schedules (a soak).

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use yilian_referral::{CaseAction, TaskStatus};
use yilian_tests::linearizable::{check, Op, OpKind, Outcome};

/// Cases the clients work on.
const CASES: usize = 3;
/// Concurrent clients.
const CLIENTS: usize = 4;
/// Operations per client.
const OPS_PER_CLIENT: usize = 30;
/// The reader every case is offered to.
const READER: &str = "specialist:DR";
/// How long a client waits before calling an operation unknown.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// One fault of a schedule.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL the current leader, restart it after the pause.
    KillLeader,
    /// SIGKILL node n, restart it after the pause.
    Kill(u64),
    /// SIGSTOP node n, SIGCONT after the pause.
    Freeze(u64),
}

/// A fault schedule derived from `seed`: (delay before, fault, how long it lasts).
fn schedule(seed: u64) -> Vec<(Duration, Fault, Duration)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..3)
        .map(|_| {
            let fault = match rng.u8(..3) {
                0 => Fault::KillLeader,
                1 => Fault::Kill(rng.u64(1..=3)),
                _ => Fault::Freeze(rng.u64(1..=3)),
            };
            (Duration::from_millis(rng.u64(300..1200)), fault, Duration::from_millis(rng.u64(800..2500)))
        })
        .collect()
}

/// The actions clients pick from: (action, status it leads to, who does it, body).
fn actions() -> Vec<(CaseAction, TaskStatus, &'static str, Value)> {
    vec![
        (CaseAction::Accept, TaskStatus::Accepted, READER, json!({})),
        (CaseAction::Start, TaskStatus::InProgress, READER, json!({})),
        (CaseAction::Hold, TaskStatus::OnHold, READER, json!({"reason": "waiting for labs"})),
        (CaseAction::Resume, TaskStatus::InProgress, READER, json!({})),
        (CaseAction::Cancel, TaskStatus::Cancelled, NURSE, json!({"reason": "patient transferred"})),
    ]
}

/// Classify an HTTP exchange: refused (4xx: the domain or access rules said no, nothing
/// happened), ok, or unknown (timeout, connection lost, 5xx).
fn outcome_of(status: Option<u16>) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Ok,
        Some(s) if (400..500).contains(&s) => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

struct Client {
    id: usize,
    http: reqwest::Client,
    nodes: Vec<String>,
    tokens: Vec<(String, String)>,
    cases: Vec<String>,
    start: Instant,
    history: Arc<Mutex<Vec<Op>>>,
}

impl Client {
    fn token(&self, spec: &str) -> &str {
        self.tokens.iter().find(|(s, _)| s == spec).map(|(_, t)| t.as_str()).unwrap_or_default()
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    async fn run(self, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed ^ (self.id as u64 + 1).wrapping_mul(0x9E37_79B9));
        let actions = actions();
        for _ in 0..OPS_PER_CLIENT {
            let case = self.cases[rng.usize(..self.cases.len())].clone();
            let node = &self.nodes[rng.usize(..self.nodes.len())];
            let invoke_us = self.now_us();
            let (kind, outcome) = if rng.bool() {
                let url = format!("http://{node}/v1/cases/{case}");
                let answer =
                    self.http.get(&url).bearer_auth(self.token(NURSE)).timeout(CLIENT_TIMEOUT).send().await;
                let Ok(resp) = answer else { continue };
                if !resp.status().is_success() {
                    continue;
                }
                let Ok(body) = resp.json::<Value>().await else { continue };
                let Ok(status) = serde_json::from_value::<TaskStatus>(body["status"].clone()) else {
                    continue;
                };
                (OpKind::Read(status), Outcome::Ok)
            } else {
                let (action, to, who, body) = actions[rng.usize(..actions.len())].clone();
                let url = format!("http://{node}/v1/cases/{case}/{}", action.name());
                let answer = self
                    .http
                    .post(&url)
                    .bearer_auth(self.token(who))
                    .json(&body)
                    .timeout(CLIENT_TIMEOUT)
                    .send()
                    .await;
                (OpKind::Act { action, to }, outcome_of(answer.ok().map(|r| r.status().as_u16())))
            };
            let op = Op { client: self.id, case, kind, outcome, invoke_us, complete_us: self.now_us() };
            self.history.lock().expect("history").push(op);
        }
    }
}

/// Every node's stale view of `cases`: their statuses and event counts, keyed by node.
async fn views(cluster: &TestCluster, cases: &[String]) -> Vec<(u64, Vec<(TaskStatus, usize)>)> {
    let mut out = Vec::new();
    for id in [1, 2, 3] {
        let nurse = acting(&cluster.api(id), NURSE).await;
        let mut view = Vec::new();
        for case in cases {
            let c: Value =
                nurse.get(&format!("/v1/cases/{case}?consistency=stale")).await.expect("stale read");
            let status = serde_json::from_value(c["status"].clone()).expect("status");
            view.push((status, c["history"].as_array().map_or(0, Vec::len)));
        }
        out.push((id, view));
    }
    out
}

async fn run_schedule(seed: u64) -> (usize, usize) {
    let plan = schedule(seed);
    println!("jepsen seed {seed} (replay with YILIAN_JEPSEN_SEED={seed}): {plan:?}");
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let api = cluster.api(leader);
    seed_region(&api).await;
    let mut cases = Vec::new();
    for i in 0..CASES {
        cases.push(submit_retrying(&api, &format!("jepsen-{seed}-{i}")).await);
    }
    let mut tokens = Vec::new();
    for spec in [NURSE, READER, "auditor:audit"] {
        tokens.push((spec.to_owned(), token(&api, spec).await));
    }
    let nodes: Vec<String> = (1..=3).map(|id| cluster.node(id).api_addr.clone()).collect();
    let history = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                id,
                http: reqwest::Client::new(),
                nodes: nodes.clone(),
                tokens: tokens.clone(),
                cases: cases.clone(),
                start,
                history: history.clone(),
            };
            tokio::spawn(client.run(seed))
        })
        .collect();

    // The nemesis runs the schedule while the clients work.
    let mut faults = 0;
    for (delay, fault, hold) in plan {
        tokio::time::sleep(delay).await;
        faults += 1;
        match fault {
            Fault::KillLeader | Fault::Kill(_) => {
                let id = match fault {
                    Fault::Kill(id) => id,
                    _ => cluster.wait_leader(&[1, 2, 3]).await,
                };
                cluster.kill9(id);
                tokio::time::sleep(hold).await;
                cluster.restart(id);
            }
            Fault::Freeze(id) => {
                cluster.pause(id);
                tokio::time::sleep(hold).await;
                cluster.resume(id);
            }
        }
    }
    for c in clients {
        c.await.expect("client");
    }

    // Healed: a final linearizable read of every case joins the history.
    cluster.wait_alive().await;
    cluster.wait_leader(&[1, 2, 3]).await;
    let nurse = acting(&cluster.api(1), NURSE).await;
    for case in &cases {
        let invoke_us = start.elapsed().as_micros() as u64;
        let c: Value = nurse.get(&format!("/v1/cases/{case}")).await.expect("final read");
        let status = serde_json::from_value(c["status"].clone()).expect("status");
        let op = Op {
            client: CLIENTS,
            case: case.clone(),
            kind: OpKind::Read(status),
            outcome: Outcome::Ok,
            invoke_us,
            complete_us: start.elapsed().as_micros() as u64,
        };
        history.lock().expect("history").push(op);
    }
    let history = history.lock().expect("history").clone();
    if let Err(violations) = check(&history, TaskStatus::Requested) {
        let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
        panic!("seed {seed}: history not linearizable:\n{}", text.join("\n"));
    }

    // Every node converges on the same cases with the same histories.
    let mut converged = false;
    for _ in 0..50 {
        let v = views(&cluster, &cases).await;
        if v.iter().all(|(_, view)| *view == v[0].1) {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(converged, "seed {seed}: nodes disagree: {:?}", views(&cluster, &cases).await);

    // And every node's audit chain verifies.
    for id in [1, 2, 3] {
        let auditor = acting(&cluster.api(id), "auditor:audit").await;
        let verified: Value = auditor.get("/v1/audit/verify?consistency=stale").await.expect("audit verify");
        assert!(verified["verified"].as_u64().unwrap_or(0) > 0, "seed {seed}: node {id}: {verified}");
    }
    (history.len(), faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_history_stays_linearizable_under_crashes_and_pauses() {
    let seeds: Vec<u64> = match std::env::var("YILIAN_JEPSEN_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let n = std::env::var("YILIAN_JEPSEN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
            (0..n).map(|i| 0x5EED_0000 + i).collect()
        }
    };
    let (mut ops, mut faults) = (0, 0);
    for seed in &seeds {
        let (o, f) = run_schedule(*seed).await;
        ops += o;
        faults += f;
    }
    println!("| schedules | operations | faults injected | violations |");
    println!("|---|---|---|---|");
    println!("| {} | {ops} | {faults} | 0 |", seeds.len());
}
