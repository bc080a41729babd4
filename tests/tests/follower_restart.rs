//! A follower killed -9 and restarted from its data directory rejoins under the same leader:
//! no election, the leader keeps its term, and the follower catches up.
//!
//! Regression: the restarted process signed its QUIC connection IDs and stateless resets with
//! fresh random keys, so it silently dropped the packets the leader kept sending on its
//! connection to the previous process. The leader reached it only after that connection's
//! 10 s idle timeout, by which time the follower, hearing no leader, had stood for election and
//! deposed it. The keys now derive from the node's private key (`tls::EndpointKeys`): the
//! restarted node answers with a stateless reset, the leader redials at once, and a handshake
//! slower than one heartbeat is no longer cut off by the heartbeat's timeout.

mod support;

use std::time::Duration;
use support::*;

/// Election timeouts long enough that a restarted follower reached within about a second
/// never stands for election, and short enough that one reached only after the old 10 s
/// idle timeout always does.
const RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 2000\nelection_timeout_max_ms = 3000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_rejoins_without_an_election() {
    let mut cluster = TestCluster::start(3, RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(leader)).await;
    let before = cluster.view(leader).await.expect("leader view").status;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");

    for round in 0..2 {
        cluster.kill9(follower);
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(follower);
        cluster.wait_alive().await;
        let case = submit_retrying(&cluster.api(leader), &format!("after-restart-{round}")).await;
        // Longer than the restarted follower's leader lease plus its longest election timeout.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let now = cluster.view(leader).await.expect("leader view").status;
        assert_eq!(
            now.state, "Leader",
            "node {leader} lost leadership after node {follower} restarted: {now:?}"
        );
        assert_eq!(now.term, before.term, "an election followed the restart of node {follower}: {now:?}");
        let nurse = acting(&cluster.api(follower), NURSE).await;
        wait_for(&format!("node {follower} to apply {case}"), Duration::from_secs(10), || async {
            cases_stale(&nurse).await.is_ok_and(|cases| cases.iter().any(|c| c.id.0 == case))
        })
        .await;
    }
}
