//! A node that is offline while the log is purged past it catches up by snapshot.

mod support;

use std::time::Duration;
use support::*;

const SNAPSHOT_EVERY_20: &str = "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 800\n\
election_timeout_max_ms = 1600\nsnapshot_after_logs = 20\nlogs_kept_after_snapshot = 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_node_catches_up_by_snapshot_after_purge() {
    let mut cluster = TestCluster::start(3, SNAPSHOT_EVERY_20).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let offline = (1..=3).find(|id| *id != leader).expect("a follower");
    let online: Vec<u64> = (1..=3).filter(|id| *id != offline).collect();
    seed_region(&cluster.api(leader)).await;
    let lagging_at = cluster.view(offline).await.expect("view").status.last_log_index.unwrap_or(0);

    cluster.kill9(offline);
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..80 {
        let id = submit_retrying(&cluster.api(online[i % 2]), &format!("s{i}")).await;
        acked.insert(id, format!("complaint s{i}"));
    }
    let api = cluster.api(leader);
    wait_for("the leader to purge its log past the offline node", Duration::from_secs(20), || {
        let api = api.clone();
        async move {
            let v: anyhow::Result<yilian_node::api::NodeView> = api.get("/v1/node").await;
            v.map(|v| v.status.purged_index.unwrap_or(0) > lagging_at + 20).unwrap_or(false)
        }
    })
    .await;

    cluster.restart(offline);
    wait_for_cases("the offline node to catch up", &cluster.api(offline), &acked).await;
    assert!(
        cluster.log_of(offline).contains("installing snapshot"),
        "the lagging node must have caught up by installing a snapshot"
    );
    // And it keeps working afterwards: new writes reach it through the normal log.
    let id = submit_retrying(&cluster.api(leader), "after-snapshot").await;
    let api = cluster.api(offline);
    wait_for("a post-snapshot write to reach the node", Duration::from_secs(10), || {
        let api = api.clone();
        let id = id.clone();
        async move { cases_stale(&api).await.map(|c| c.iter().any(|c| c.id.0 == id)).unwrap_or(false) }
    })
    .await;
}
