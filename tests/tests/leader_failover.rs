//! kill -9 the leader: a new leader is elected, writes continue, no acknowledged write is lost,
//! and the killed node restarts from disk and catches up.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_failover_keeps_acked_writes_and_restart_catches_up() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let old_leader = cluster.wait_leader(&[1, 2, 3]).await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != old_leader).collect();
    seed_region(&cluster.api(survivors[0])).await;

    let mut acked = std::collections::BTreeMap::new();
    for i in 0..15 {
        let id = submit(&cluster.api(survivors[i % 2]), &format!("before{i}")).await.expect("submit");
        acked.insert(id, format!("complaint before{i}"));
    }

    cluster.kill9(old_leader);
    let new_leader = cluster.wait_leader(&survivors).await;
    assert_ne!(new_leader, old_leader, "a killed node cannot stay leader");

    for i in 0..15 {
        let id = submit_retrying(&cluster.api(survivors[i % 2]), &format!("after{i}")).await;
        acked.insert(id, format!("complaint after{i}"));
    }
    for id in &survivors {
        let cases: Vec<yilian_referral::Case> =
            acting(&cluster.api(*id), NURSE).await.get("/v1/cases").await.expect("linearizable read");
        assert_eq!(by_id(&cases), acked, "node {id} lost or invented a write");
    }

    cluster.restart(old_leader);
    wait_for_cases("the restarted node to catch up", &cluster.api(old_leader), &acked).await;
    let view = cluster.view(old_leader).await.expect("view");
    assert_eq!(view.status.voters.len(), 3, "restarted node keeps its membership");
}
