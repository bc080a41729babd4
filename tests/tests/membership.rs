//! Add a 4th node as learner, promote it, remove another; a removed node's id is never reused.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use yilian_node::api::NodeView;

async fn voters(cluster: &TestCluster, via: u64) -> Vec<u64> {
    let v = cluster.view(via).await.expect("view");
    v.status.voters.iter().map(|m| m.node_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_promote_remove_and_never_reuse_ids() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    for i in 0..10 {
        submit(&cluster.api(1), &format!("m{i}")).await.expect("submit");
    }

    cluster.spawn_new(4);
    cluster.wait_alive().await;
    // Promoting a node that is not a learner yet is refused with a hint.
    let early =
        cluster.api(2).post::<_, serde_json::Value>("/v1/cluster/voters", &json!({"node_id": 4})).await;
    assert!(early.expect_err("not a learner").to_string().contains("add-learner"));

    let cli = std::process::Command::new(node_binary())
        .env("YILIAN_TOKEN", cluster.admin_token())
        .args([
            "cluster",
            "add-learner",
            "--api",
            &cluster.node(2).api_addr,
            "--node",
            &cluster.node(4).api_addr,
        ])
        .output()
        .expect("run cli");
    assert!(cli.status.success(), "add-learner failed: {}", String::from_utf8_lossy(&cli.stderr));
    let api4 = cluster.api(4);
    wait_for("the learner to catch up", Duration::from_secs(20), || {
        let api4 = api4.clone();
        async move { cases_stale(&api4).await.map(|c| c.len() == 10).unwrap_or(false) }
    })
    .await;
    let v: NodeView = cluster.api(4).get("/v1/node").await.expect("view");
    assert!(v.status.learners.iter().any(|m| m.node_id == 4));

    let _: serde_json::Value =
        cluster.api(3).post("/v1/cluster/voters", &json!({"node_id": 4})).await.expect("promote");
    assert_eq!(voters(&cluster, 1).await, vec![1, 2, 3, 4]);

    let leader = cluster.wait_leader(&[1, 2, 3, 4]).await;
    let victim = (1..=3).find(|id| *id != leader).expect("a follower to remove");
    let _: serde_json::Value =
        cluster.api(4).delete(&format!("/v1/cluster/members/{victim}")).await.expect("remove");
    let remaining: Vec<u64> = (1..=4).filter(|id| *id != victim).collect();
    let after = voters(&cluster, leader).await;
    assert_eq!(after, remaining);
    // Removal is idempotent: a retried DELETE (its first answer lost) is acknowledged again.
    let _: serde_json::Value =
        cluster.api(4).delete(&format!("/v1/cluster/members/{victim}")).await.expect("remove again");
    assert_eq!(voters(&cluster, leader).await, remaining);

    // The cluster keeps working without the removed node.
    submit(&cluster.api(4), "after-remove").await.expect("write after removal");

    // The removed id can never come back, even with a fresh certificate and a new address.
    cluster.stop(victim);
    cluster.spawn_new(victim);
    cluster.wait_alive().await;
    let again = cluster.api(4).get::<NodeView>("/v1/node").await.expect("view");
    assert!(again.status.retired_nodes.contains(&victim));
    let node = cluster.node(victim);
    let body = json!({"node_id": victim, "raft_addr": node.raft_addr, "api_addr": node.api_addr});
    let reuse = cluster.api(leader).post::<_, serde_json::Value>("/v1/cluster/learners", &body).await;
    let msg = reuse.expect_err("retired id must be refused").to_string();
    assert!(msg.contains("409") && msg.contains("never be reused"), "{msg}");

    // The CLI status shows every member with its applied index.
    let out = std::process::Command::new(node_binary())
        .env("YILIAN_TOKEN", cluster.admin_token())
        .args(["cluster", "status", "--api", &cluster.node(4).api_addr])
        .output()
        .expect("run cli");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains("APPLIED") && table.contains("Leader"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains(" voter ")).count(), 3, "{table}");
}
