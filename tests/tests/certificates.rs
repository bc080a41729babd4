//! Certificate revocation and rotation on a real cluster: removing a node revokes its
//! certificate (a replicated deny list) and every node refuses it at the QUIC handshake, while
//! a valid certificate still gets through; a node given a new certificate by `yilian ca issue`
//! loads it without a restart and the cluster keeps working over new connections.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;
use yilian_consensus::network::{PeerRequest, PeerResponse, Transport};
use yilian_consensus::pki;
use yilian_consensus::tls::{self, TlsFiles, ALPN_RAFT};
use yilian_node::api::NodeView;

/// A bare QUIC endpoint presenting the given certificate files.
fn endpoint(ca_dir: &Path, cert: &Path, key: &Path) -> Transport {
    let files = TlsFiles { ca_cert: ca_dir.join(pki::CA_CERT), cert: cert.to_owned(), key: key.to_owned() };
    let quic = tls::load(&files, &[ALPN_RAFT]).expect("tls");
    Transport::bind("127.0.0.1:0".parse::<SocketAddr>().expect("addr"), quic).expect("bind")
}

fn vote_from(candidate: u64) -> PeerRequest {
    PeerRequest::Vote(openraft::raft::VoteRequest::new(openraft::Vote::new(1, candidate), None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_certificate_is_refused_at_the_handshake() {
    let mut cluster = TestCluster::start(4, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3, 4]).await;
    seed_region(&cluster.api(1)).await;
    let victim = (1..=4).find(|id| *id != leader).expect("a follower");
    let survivor = (1..=4).find(|id| *id != leader && *id != victim).expect("another follower");
    let node_dir = cluster.node(victim).config.parent().expect("dir").to_owned();
    let (cert, key) =
        (node_dir.join(format!("node-{victim}.crt")), node_dir.join(format!("node-{victim}.key")));
    let victim_fp = tls::fingerprint_of_file(&cert).expect("fingerprint");
    let survivor_raft = cluster.node(survivor).raft_addr.clone();

    // Before removal the victim's certificate completes the handshake and gets an answer.
    let before = endpoint(&cluster.certs(), &cert, &key);
    let answer = before.call(survivor, &survivor_raft, &vote_from(victim), Duration::from_secs(5)).await;
    assert!(matches!(answer, Ok(PeerResponse::Vote(_))), "{answer:?}");

    let _: serde_json::Value =
        cluster.api(leader).delete(&format!("/v1/cluster/members/{victim}")).await.expect("remove");
    for id in (1..=4).filter(|id| *id != victim) {
        let api = cluster.api(id);
        let fp = victim_fp.clone();
        wait_for(&format!("node {id} to hold the revocation"), Duration::from_secs(10), || {
            let api = api.clone();
            let fp = fp.clone();
            async move {
                api.get::<NodeView>("/v1/node")
                    .await
                    .is_ok_and(|v| v.status.revoked_certificates.contains(&fp))
            }
        })
        .await;
    }

    // After: the same certificate cannot complete a handshake with any remaining node.
    for id in (1..=4).filter(|id| *id != victim) {
        let fresh = endpoint(&cluster.certs(), &cert, &key);
        let refused =
            fresh.call(id, &cluster.node(id).raft_addr, &vote_from(victim), Duration::from_secs(5)).await;
        assert!(refused.is_err(), "node {id} must refuse the revoked certificate: {refused:?}");
    }
    wait_for("the refusal to be logged", Duration::from_secs(10), || {
        let log = cluster.log_of(survivor);
        async move { log.contains("refused peer") && log.contains("revoked") }
    })
    .await;

    // A valid certificate of an id never used still completes the handshake.
    let spare = cluster.dir.path().join("spare");
    let files = pki::issue_node_cert(&cluster.certs(), 9, "127.0.0.1:1", &spare).expect("issue");
    let valid = endpoint(&cluster.certs(), &files.cert, &files.key);
    let answer = valid.call(survivor, &survivor_raft, &vote_from(9), Duration::from_secs(5)).await;
    assert!(matches!(answer, Ok(PeerResponse::Vote(_))), "{answer:?}");

    // The cluster carries on without the removed node.
    cluster.stop(victim);
    submit(&cluster.api(survivor), "after-revocation").await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_loaded_without_a_restart() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    let node = cluster.node(1);
    let dir = node.config.parent().expect("dir").to_owned();
    let raft_addr = node.raft_addr.clone();
    let old: NodeView = cluster.api(1).get("/v1/node").await.expect("view");

    // `yilian ca issue` for the same node id, into the files the node runs with.
    let out = std::process::Command::new(node_binary())
        .args(["ca", "issue", "--dir"])
        .arg(cluster.certs())
        .args(["--node-id", "1", "--addr", &raft_addr, "--out"])
        .arg(&dir)
        .output()
        .expect("ca issue");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_fp = tls::fingerprint_of_file(&dir.join("node-1.crt")).expect("fingerprint");
    assert_ne!(new_fp, old.status.certificate);
    let api = cluster.api(1);
    wait_for("node 1 to load its new certificate", Duration::from_secs(15), || {
        let api = api.clone();
        let fp = new_fp.clone();
        async move { api.get::<NodeView>("/v1/node").await.is_ok_and(|v| v.status.certificate == fp) }
    })
    .await;
    assert!(cluster.log_of(1).contains("reloaded node certificate"));

    // New connections use it: node 2 restarts (fresh connections both ways) and catches up.
    cluster.kill9(2);
    let before = submit_retrying(&cluster.api(1), "while-2-is-down").await;
    cluster.restart(2);
    let api2 = cluster.api(2);
    wait_for("node 2 to catch up over new connections", Duration::from_secs(30), || {
        let api2 = api2.clone();
        let id = before.clone();
        async move { cases_stale(&api2).await.is_ok_and(|c| c.iter().any(|c| c.id.0 == id)) }
    })
    .await;
    submit(&cluster.api(2), "after-rotation").await.expect("write through node 2");
}
