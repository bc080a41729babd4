//! Jepsen-style runs: real nodes behind fault-injecting relays, concurrent clients driving
//! referral cases, a nemesis running a seeded [`Schedule`] of process, network and membership
//! faults, and afterwards the checks: the history is linearizable per case against the model in
//! [`crate::linearizable`], every acknowledged submit is on every member and no refused one is,
//! all members hold identical cases, and every member's audit chain verifies.
//!
//! A run prints its schedule with its seed; the same seed replays the same schedule.

mod nemesis;
pub mod schedule;
mod verify;
pub mod workload;

pub use schedule::{Fault, Mix, Schedule, Step};

use crate::harness::{acting, seed_region, submit_retrying, token, TestCluster, FAST_RAFT, NURSE};
use crate::linearizable::{Actor, CaseState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use workload::{spec_of, state_of, Shared, READERS};

/// How long clients keep working after the last fault ended.
const RECOVERY: Duration = Duration::from_secs(2);

/// The size of a run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Faults in the schedule.
    pub faults: usize,
    /// Which faults it draws.
    pub mix: Mix,
    /// Cases under test.
    pub cases: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Most operations per client.
    pub budget: usize,
    /// How long a client waits before calling an operation unknown.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self { faults: 4, mix: Mix::ALL, cases: 5, clients: 4, budget: 60, timeout: Duration::from_secs(4) }
    }
}

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The schedule it ran.
    pub schedule: Schedule,
    /// Operations recorded (case operations and submits).
    pub operations: usize,
    /// Faults injected.
    pub faults: usize,
    /// Packets the relays dropped.
    pub packets_dropped: u64,
    /// What went wrong, each with the evidence (e.g. a minimal non-linearizable sub-history).
    pub violations: Vec<String>,
    /// Faults the nemesis could not complete (e.g. a membership change that timed out).
    pub notes: Vec<String>,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}\n  {} operations, {} faults, {} packets dropped, {} violations",
            self.schedule,
            self.operations,
            self.faults,
            self.packets_dropped,
            self.violations.len()
        )?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        for v in &self.violations {
            writeln!(f, "  VIOLATION: {v}")?;
        }
        Ok(())
    }
}

/// The summary table of many runs (markdown).
pub fn summary_table(runs: &[RunReport], harness_failures: usize) -> String {
    let ops: usize = runs.iter().map(|r| r.operations).sum();
    let faults: usize = runs.iter().map(|r| r.faults).sum();
    let dropped: u64 = runs.iter().map(|r| r.packets_dropped).sum();
    let violations: usize = runs.iter().map(|r| r.violations.len()).sum();
    let failing: Vec<String> =
        runs.iter().filter(|r| !r.violations.is_empty()).map(|r| r.schedule.seed.to_string()).collect();
    format!(
        "| schedules | operations | faults injected | packets dropped | violations | harness failures | failing seeds |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {ops} | {faults} | {dropped} | {violations} | {harness_failures} | {} |\n",
        runs.len() + harness_failures,
        if failing.is_empty() { "-".to_owned() } else { failing.join(" ") }
    )
}

/// Run the schedule of `seed` on three nodes behind relays and check what happened.
pub async fn run(seed: u64, settings: &Settings) -> RunReport {
    let schedule = Schedule::generate(seed, settings.faults, 3, settings.mix);
    println!("{schedule} (replay: YILIAN_JEPSEN_SEED={seed} in the test that printed it, or soak --schedules 1 --seed {seed})");
    let mut cluster = TestCluster::start_behind_relays(3, FAST_RAFT, seed).await;
    let mut members = vec![1, 2, 3];
    let leader = cluster.wait_leader(&members).await;
    let api = cluster.api(leader);
    seed_region(&api).await;
    let dr2 = json!({
        "id": READERS[1], "name": "医生二", "facility": "CTY", "specialty": "cardiology",
        "modalities": ["ECG"], "cap": 1000, "on_shift": true,
    });
    let _: Value = acting(&api, "ops:test").await.post("/v1/specialists", &dr2).await.expect("second reader");

    let nurse = acting(&api, NURSE).await;
    let mut cases = Vec::new();
    let mut initial: BTreeMap<String, CaseState> = BTreeMap::new();
    for i in 0..settings.cases {
        let case = submit_retrying(&api, &format!("jepsen-{seed}-{i}")).await;
        let read: Value = nurse.get(&format!("/v1/cases/{case}")).await.expect("initial read");
        initial.insert(case.clone(), state_of(&read).expect("case state"));
        cases.push(case);
    }
    let mut tokens = HashMap::new();
    for actor in [Actor::Requester, Actor::Ops]
        .into_iter()
        .chain(READERS.iter().map(|r| Actor::Reader((*r).to_owned())))
    {
        let spec = spec_of(&actor);
        tokens.insert(spec.clone(), token(&api, &spec).await);
    }
    tokens.insert("auditor:audit".to_owned(), token(&api, "auditor:audit").await);
    let nodes = members.iter().map(|id| cluster.node(*id).api_addr.clone()).collect();
    let shared = Arc::new(Shared::new(nodes, tokens, cases, settings.timeout));
    let clients: Vec<_> = (0..settings.clients)
        .map(|id| tokio::spawn(workload::client(shared.clone(), id, seed, settings.budget)))
        .collect();

    let notes = nemesis::play(&mut cluster, &mut members, &shared, &schedule).await;
    // Clients keep going a little after the last fault ends, through the recovery.
    tokio::time::sleep(RECOVERY).await;
    shared.done.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }

    cluster.net().heal();
    cluster.wait_alive().await;
    cluster.wait_leader(&members).await;
    let violations = verify::all(&cluster, &members, &shared, &initial).await;
    let history = shared.history.lock().expect("history");
    RunReport {
        schedule: schedule.clone(),
        operations: history.ops.len() + history.submits.len(),
        faults: schedule.steps.len(),
        packets_dropped: cluster.net().counts().dropped,
        violations,
        notes,
    }
}
