//! The checks after a run, once the network is healed and every member runs again.

use super::workload::{state_of, Shared};
use crate::harness::{acting, TestCluster, NURSE};
use crate::linearizable::{check, CaseState, Op, OpKind, Outcome};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long members may take to converge after healing.
const CONVERGENCE: Duration = Duration::from_secs(30);

/// One member's cases: id → (complaint, the whole case as the API shows it).
type View = BTreeMap<String, (String, Value)>;

/// Every check; each problem found is one string with its evidence.
pub(crate) async fn all(
    cluster: &TestCluster,
    members: &[u64],
    shared: &Shared,
    initial: &BTreeMap<String, CaseState>,
) -> Vec<String> {
    let mut problems = Vec::new();
    final_reads(cluster, members[0], shared).await;
    let ops = shared.history.lock().expect("history").ops.clone();
    if let Err(violations) = check(&ops, initial) {
        problems.extend(violations.iter().map(ToString::to_string));
    }
    match converged(cluster, members).await {
        Ok(view) => problems.extend(submits_durable(&view, shared)),
        Err(e) => problems.push(e),
    }
    problems.extend(audit_chains(cluster, members).await);
    problems
}

/// A linearizable read of every case, appended to the history.
async fn final_reads(cluster: &TestCluster, via: u64, shared: &Shared) {
    let nurse = acting(&cluster.api(via), NURSE).await;
    for case in &shared.cases {
        let invoke_us = shared.now_us();
        let Ok(read) = nurse.get::<Value>(&format!("/v1/cases/{case}")).await else { continue };
        let Some(state) = state_of(&read) else { continue };
        let op = Op {
            client: usize::MAX,
            case: case.clone(),
            kind: OpKind::Read(state),
            outcome: Outcome::Ok,
            invoke_us,
            complete_us: shared.now_us(),
        };
        shared.history.lock().expect("history").ops.push(op);
    }
}

async fn view_of(cluster: &TestCluster, id: u64) -> anyhow::Result<View> {
    let nurse = acting(&cluster.api(id), NURSE).await;
    let cases: Vec<Value> = nurse.get("/v1/cases?consistency=stale").await?;
    Ok(cases
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap_or_default().to_owned();
            let complaint = c["complaint"].as_str().unwrap_or_default().to_owned();
            (id, (complaint, c.clone()))
        })
        .collect())
}

/// Wait until every member holds the same cases, identical in every field.
async fn converged(cluster: &TestCluster, members: &[u64]) -> Result<View, String> {
    let deadline = Instant::now() + CONVERGENCE;
    loop {
        let mut views = Vec::new();
        for id in members {
            views.push((*id, view_of(cluster, *id).await.map_err(|e| format!("{e:#}"))));
        }
        if let Some((_, Ok(first))) = views.first() {
            if views.iter().all(|(_, v)| v.as_ref().ok() == Some(first)) {
                return Ok(first.clone());
            }
        }
        if Instant::now() > deadline {
            let summary: Vec<String> = views
                .iter()
                .map(|(id, v)| match v {
                    Ok(v) => format!(
                        "node {id}: {} cases {:?}",
                        v.len(),
                        v.values()
                            .map(|(_, c)| (state_of(c), c["history"].as_array().map_or(0, Vec::len)))
                            .collect::<Vec<_>>()
                    ),
                    Err(e) => format!("node {id}: {e}"),
                })
                .collect();
            return Err(format!("members did not converge within {CONVERGENCE:?}: {}", summary.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every acknowledged submit is present, no refused one is, and no case appeared from nowhere.
fn submits_durable(view: &View, shared: &Shared) -> Vec<String> {
    let present: BTreeSet<&str> =
        view.values().filter_map(|(complaint, _)| complaint.strip_prefix("complaint ")).collect();
    let history = shared.history.lock().expect("history");
    let mut problems = Vec::new();
    let mut known: BTreeSet<&str> = shared.cases.iter().map(String::as_str).collect();
    for s in &history.submits {
        let here = present.contains(s.tag.as_str());
        match s.outcome {
            Outcome::Ok if !here => problems.push(format!("acknowledged submit {} is lost", s.tag)),
            Outcome::Failed if here => problems.push(format!("refused submit {} took effect", s.tag)),
            _ => {}
        }
        known.insert(&s.tag);
    }
    for (id, (complaint, _)) in view {
        let tag = complaint.strip_prefix("complaint ").unwrap_or(complaint);
        if !known.contains(tag) && !shared.cases.contains(id) && !tag.starts_with("jepsen-") {
            problems.push(format!("case {id} ({complaint}) was never submitted"));
        }
    }
    problems
}

/// Every member's audit chain verifies.
async fn audit_chains(cluster: &TestCluster, members: &[u64]) -> Vec<String> {
    let mut problems = Vec::new();
    for id in members {
        let auditor = acting(&cluster.api(*id), "auditor:audit").await;
        match auditor.get::<Value>("/v1/audit/verify?consistency=stale").await {
            Ok(v) if v["verified"].as_u64().unwrap_or(0) > 0 => {}
            Ok(v) => problems.push(format!("node {id}: audit chain does not verify: {v}")),
            Err(e) => problems.push(format!("node {id}: audit verify failed: {e:#}")),
        }
    }
    problems
}
