//! SLA deadlines are evaluated by the leader and committed as commands: a leader change in the
//! middle of an SLA timer neither loses nor duplicates the escalation, and every node (including
//! one killed and restarted) ends with the same single escalation.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use yilian_referral::{Case, Outcome, SlaClock};

/// How long the accept clock runs in this test.
const ACCEPT_WITHIN_MS: u64 = 4_000;

/// Seed the region plus a provincial cardiologist, and a policy with a short accept clock.
async fn seed(api: &yilian_node::client::ApiClient) {
    seed_region(api).await;
    let ops = acting(api, "ops:test").await;
    let prov = json!({
        "id": "DR-PROV", "name": "省专家", "facility": "PROV", "specialty": "cardiology",
        "modalities": ["ECG"], "cap": 10, "on_shift": true,
    });
    let _: Outcome = ops.post("/v1/specialists", &prov).await.expect("specialist");
    let policy = json!({ "sla": { "urgent": {
        "offer_timeout_ms": 600_000, "offer_to_accept_ms": ACCEPT_WITHIN_MS, "accept_to_report_ms": 3_600_000,
    } } });
    let _: Outcome = ops.put("/v1/policies/r", &policy).await.expect("policy");
}

fn rules(case: &Case, rule: &str) -> usize {
    case.history.iter().filter(|e| e.rule == rule).count()
}

/// Whether `case` shows exactly one accept breach and one escalation, now offered upstairs.
fn escalated_once(case: &Case) -> bool {
    let breaches = case.sla.breaches.iter().filter(|b| b.clock == SlaClock::Accept).count();
    breaches == 1
        && rules(case, "sla-accept-breach") == 1
        && rules(case, "escalated-to-next-tier") == 1
        && case.owner.as_ref().is_some_and(|o| o.0 == "DR-PROV")
}

async fn case_on(cluster: &TestCluster, node: u64, id: &str) -> anyhow::Result<Case> {
    acting(&cluster.api(node), NURSE).await.get(&format!("/v1/cases/{id}?consistency=stale")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_mid_sla_timer_escalates_exactly_once() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    seed(&cluster.api(survivors[0])).await;

    let id = submit(&cluster.api(survivors[0]), "sla").await.expect("submit");
    let nurse = acting(&cluster.api(survivors[1]), NURSE).await;
    let case: Case = nurse.get(&format!("/v1/cases/{id}")).await.expect("read");
    assert_eq!(case.owner.as_ref().map(|o| o.0.as_str()), Some("DR"), "first offer goes to the county");
    assert_eq!(case.sla.accept_due_ms, case.sla.requested_at_ms + ACCEPT_WITHIN_MS);

    // Kill the leader one second before the accept deadline: the new leader must commit it.
    let submitted = Instant::now();
    tokio::time::sleep(Duration::from_millis(ACCEPT_WITHIN_MS - 1_000)).await;
    cluster.kill9(leader);
    let new_leader = cluster.wait_leader(&survivors).await;
    assert_ne!(new_leader, leader);

    wait_for("the escalation on both survivors", Duration::from_secs(30), || {
        let cluster = &cluster;
        let (id, survivors) = (id.clone(), survivors.clone());
        async move {
            let mut all = true;
            for n in survivors {
                all &= case_on(cluster, n, &id).await.is_ok_and(|c| escalated_once(&c));
            }
            all
        }
    })
    .await;
    assert!(submitted.elapsed() >= Duration::from_millis(ACCEPT_WITHIN_MS), "escalated before the deadline");

    // Several more timer rounds pass: still exactly one breach and one escalation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reference = case_on(&cluster, survivors[0], &id).await.expect("case");
    assert!(escalated_once(&reference), "history: {:?}", reference.history);
    for n in &survivors {
        let c = case_on(&cluster, *n, &id).await.expect("case");
        assert_eq!(c, reference, "node {n} disagrees");
    }

    // The killed node restarts from disk and converges on the same single escalation.
    cluster.restart(leader);
    wait_for("the restarted node to converge", Duration::from_secs(30), || {
        let cluster = &cluster;
        let (id, reference) = (id.clone(), reference.clone());
        async move { case_on(cluster, leader, &id).await.is_ok_and(|c| c == reference) }
    })
    .await;
}
