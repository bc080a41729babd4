//! kill -9 every node in the middle of a write burst: after restart, every acknowledged write
//! is still there with its content.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_kill9_mid_burst_keeps_every_acked_write() {
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    token(&cluster.api(1), NURSE).await;

    let acked = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let api = cluster.api(1 + w % 3);
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let tag = format!("w{w}-{i}");
                match submit(&api, &tag).await {
                    Ok(id) => {
                        acked.lock().expect("lock").insert(id, format!("complaint {tag}"));
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in 1..=3 {
        cluster.kill9(id);
    }
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 10, "the burst should have acknowledged writes before the crash");

    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_alive().await;
    cluster.wait_leader(&[1, 2, 3]).await;
    for id in 1..=3 {
        let nurse = acting(&cluster.api(id), NURSE).await;
        let cases: Vec<yilian_referral::Case> = nurse.get("/v1/cases").await.expect("read");
        let present = by_id(&cases);
        for (case, complaint) in &acked {
            assert_eq!(present.get(case), Some(complaint), "node {id} lost acknowledged case {case}");
        }
    }
}
