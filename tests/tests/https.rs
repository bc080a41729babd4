//! HTTPS on the HTTP API (`[api] tls = true`): a 3-node cluster whose API speaks only TLS with
//! the node certificates; clients that trust the regional CA log in, write and read through
//! any node (the CLI with `--ca`), while plain HTTP and clients trusting another CA get nowhere.

mod support;

use serde_json::Value;
use support::*;
use yilian_consensus::pki;
use yilian_node::client::ApiClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_https_with_the_node_certificate() {
    let cluster = TestCluster::start_https(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    assert!(cluster.api(1).base().starts_with("https://"));
    seed_region(&cluster.api(1)).await;
    let id = submit(&cluster.api(2), "over-tls").await.expect("submit over HTTPS");
    let case: Value =
        acting(&cluster.api(3), NURSE).await.get(&format!("/v1/cases/{id}")).await.expect("read");
    assert_eq!(case["id"], id.as_str());

    let addr = cluster.node(1).api_addr.clone();
    let plain = ApiClient::new(&addr).get_text("/livez").await;
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");
    let other_ca = tempfile::tempdir().expect("tempdir");
    pki::init_ca(other_ca.path(), "elsewhere").expect("other CA");
    let pem = std::fs::read(other_ca.path().join(pki::CA_CERT)).expect("pem");
    let stranger = ApiClient::with_ca(&addr, &pem).expect("client").get_text("/livez").await;
    assert!(stranger.is_err(), "a client trusting another CA must refuse the node: {stranger:?}");

    let token = token(&cluster.api(1), NURSE).await;
    let out = std::process::Command::new(node_binary())
        .args(["case", "list", "--api", &addr, "--ca"])
        .arg(cluster.certs().join(pki::CA_CERT))
        .env("YILIAN_TOKEN", token)
        .output()
        .expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&id), "{text}{}", String::from_utf8_lossy(&out.stderr));
}
