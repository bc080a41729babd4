//! Removing the node that is the leader (the soak's membership faults pick any member, and
//! `membership.rs` removes a follower): the leader must end up outside the membership, the
//! others must elect a new leader among themselves and keep writing, and the removed id must
//! stay retired.

use serde_json::Value;
use std::time::Duration;
use yilian_node::api::NodeView;
use yilian_tests::harness::*;

async fn voters_seen_by_leader(cluster: &TestCluster, among: &[u64]) -> Option<Vec<u64>> {
    for id in among {
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), cluster.view(*id)).await {
            let v: NodeView = v;
            if v.status.state == "Leader" {
                return Some(v.status.voters.iter().map(|m| m.node_id).collect());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_completes_and_the_rest_carry_on() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(leader)).await;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    // Under write load the leader's replication stream is busy, so followers apply the
    // retirement before the membership change reaches them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (api, stop) = (cluster.api(leader), stop.clone());
        let nurse = acting(&api, NURSE).await;
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), submit(&nurse, &format!("load-{w}-{n}")))
                        .await;
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        cluster.api(rest[0]).delete::<Value>(&format!("/v1/cluster/members/{leader}")),
    )
    .await;
    println!("removal answered: {answer:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let expected = rest.clone();
    wait_for("the old leader to leave the membership", Duration::from_secs(30), || {
        let (cluster, rest, expected) = (&cluster, rest.clone(), expected.clone());
        async move { voters_seen_by_leader(cluster, &rest).await == Some(expected) }
    })
    .await;
    cluster.stop(leader);
    let new_leader = cluster.wait_leader(&rest).await;
    assert!(rest.contains(&new_leader));
    submit_retrying(&cluster.api(new_leader), "after-removing-the-leader").await;
    let v: NodeView = cluster.view(new_leader).await.expect("view");
    assert!(
        v.status.retired_nodes.contains(&leader),
        "the removed id stays retired: {:?}",
        v.status.retired_nodes
    );
}
