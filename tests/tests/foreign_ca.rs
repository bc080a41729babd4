//! A node with a certificate from another CA cannot join or send Raft messages, and a node
//! whose certificate names a different id than the one it claims is refused. Both are logged.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use yilian_consensus::network::{PeerRequest, PeerResponse, Transport};
use yilian_consensus::pki;
use yilian_consensus::tls::{self, TlsFiles, ALPN_RAFT};

/// A bare QUIC endpoint holding the certificate of node `id` issued by the CA in `ca_dir`.
fn endpoint_with(ca_dir: &std::path::Path, id: u64, out: &std::path::Path) -> Transport {
    let files = pki::issue_node_cert(ca_dir, id, "127.0.0.1:1", out).expect("issue");
    let tls = tls::load(
        &TlsFiles { ca_cert: ca_dir.join(pki::CA_CERT), cert: files.cert, key: files.key },
        &[ALPN_RAFT],
    )
    .expect("tls");
    Transport::bind("127.0.0.1:0".parse::<SocketAddr>().expect("addr"), tls).expect("bind")
}

fn vote_from(candidate: u64) -> PeerRequest {
    PeerRequest::Vote(openraft::raft::VoteRequest::new(openraft::Vote::new(99, candidate), None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ca_and_impersonation_are_refused() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    let term_before = cluster.view(1).await.expect("view").status.term;
    let node1_raft = cluster.node(1).raft_addr.clone();

    // A forged CA: its node cannot even complete the handshake, so no Raft message gets through.
    let foreign = tempfile::tempdir().expect("tempdir");
    pki::init_ca(foreign.path(), "somewhere else").expect("foreign ca");
    let intruder = endpoint_with(foreign.path(), 2, foreign.path());
    let refused = intruder.call(1, &node1_raft, &vote_from(2), Duration::from_secs(5)).await;
    assert!(refused.is_err(), "a node with a foreign certificate must not get an answer: {refused:?}");

    // A real certificate for node 7 claiming to be node 2 is refused by identity check.
    let impostor = endpoint_with(&cluster.certs(), 7, cluster.dir.path());
    let answer = impostor.call(1, &node1_raft, &vote_from(2), Duration::from_secs(5)).await.expect("answer");
    match answer {
        PeerResponse::Refused(reason) => {
            assert!(reason.contains("node 7") && reason.contains("node 2"), "{reason}")
        }
        other => panic!("impersonation must be refused, got {other:?}"),
    }
    // Neither attempt disturbed the cluster.
    assert_eq!(cluster.view(1).await.expect("view").status.term, term_before);

    // A node process with a foreign-CA certificate is added as learner but never receives data.
    cluster.spawn_new_with_ca(4, foreign.path());
    cluster.wait_alive().await;
    let node4 = cluster.node(4);
    let body = serde_json::json!({"node_id": 4, "raft_addr": node4.raft_addr, "api_addr": node4.api_addr});
    let _: serde_json::Value =
        cluster.api(leader).post("/v1/cluster/learners", &body).await.expect("add learner");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let facilities: Vec<serde_json::Value> =
        cluster.api(4).get("/v1/facilities?consistency=stale").await.expect("facilities");
    assert!(facilities.is_empty(), "a foreign node must receive nothing");
    let promote = cluster
        .api(leader)
        .post::<_, serde_json::Value>("/v1/cluster/voters", &serde_json::json!({"node_id": 4}))
        .await;
    assert!(promote.expect_err("cannot promote").to_string().contains("certificate"));

    assert!(cluster.log_of(1).contains("refused peer"), "node 1 must log why it refused the foreign peer");
    assert!(
        cluster.log_of(1).contains("certificate names a different node"),
        "node 1 must log the impersonation"
    );
    assert!(
        cluster.log_of(4).contains("refused peer"),
        "the foreign node refuses the region's certificates too"
    );
    // Its database holds no case, facility or user at all.
    cluster.stop(4);
    let state = yilian_consensus::store::load_state(&cluster.node(4).data_dir()).expect("load node 4");
    assert_eq!(state.region.cases().count(), 0, "a foreign node must receive no case");
    assert_eq!(state.region.facilities().count(), 0);
    assert_eq!(state.region.users().count(), 0);
}
