//! The checker catches a real broken run. A variant that serves reads from the local state
//! machine without confirming leadership (`?consistency=stale`, standing in for a read path
//! that forgot its ReadIndex) is run against a leader cut off by the fault-injecting relays:
//! the majority elects a new leader and acknowledges a write, and the old leader still answers
//! the old state. The checker must reject that history with a minimal sub-history of the write
//! and the stale read, and must accept the history of the real, linearizable read path under
//! the same partition.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use yilian_referral::{CaseAction, TaskStatus};
use yilian_tests::harness::*;
use yilian_tests::jepsen::workload::state_of;
use yilian_tests::linearizable::{check, Actor, Op, OpKind, Outcome};

/// Record one HTTP read of `case` at `addr` as an operation (None when it returned no state).
async fn read(
    http: &reqwest::Client,
    addr: &str,
    case: &str,
    query: &str,
    token: &str,
    start: Instant,
) -> Option<Op> {
    let invoke_us = start.elapsed().as_micros() as u64;
    let answer = http
        .get(format!("http://{addr}/v1/cases/{case}{query}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    let state = state_of(&answer.error_for_status().ok()?.json::<Value>().await.ok()?)?;
    Some(Op {
        client: 9,
        case: case.to_owned(),
        kind: OpKind::Read(state),
        outcome: Outcome::Ok,
        invoke_us,
        complete_us: start.elapsed().as_micros() as u64,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_from_a_partitioned_old_leader_are_rejected_by_the_checker() {
    let cluster = TestCluster::start_behind_relays(3, FAST_RAFT, 0xBAD_1EAD).await;
    let old = cluster.wait_leader(&[1, 2, 3]).await;
    let api = cluster.api(old);
    seed_region(&api).await;
    let case = submit_retrying(&api, "stale-read").await;
    let nurse_token = token(&api, NURSE).await;
    let reader_token = token(&api, "specialist:DR").await;
    let http = reqwest::Client::new();
    let start = Instant::now();
    let old_addr = cluster.node(old).api_addr.clone();
    let first = read(&http, &old_addr, &case, "", &nurse_token, start).await.expect("initial read");
    let OpKind::Read(initial) = first.kind.clone() else { unreachable!() };
    assert_eq!(initial.status, TaskStatus::Requested);
    let initial = BTreeMap::from([(case.clone(), initial)]);

    // Cut the leader off; the majority moves on and acknowledges the reader's accept.
    cluster.net().isolate(old);
    let majority: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
    let mut history = vec![first];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let via = &cluster.node(majority[history.len() % 2]).api_addr;
        let invoke_us = start.elapsed().as_micros() as u64;
        let answer = http
            .post(format!("http://{via}/v1/cases/{case}/accept"))
            .bearer_auth(&reader_token)
            .json(&json!({}))
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        let outcome = match &answer {
            Ok(r) if r.status().is_success() => Outcome::Ok,
            Ok(r) if r.status().is_client_error() => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        history.push(Op {
            client: 1,
            case: case.clone(),
            kind: OpKind::Act { action: CaseAction::Accept, by: Actor::Reader("DR".into()) },
            outcome,
            invoke_us,
            complete_us: start.elapsed().as_micros() as u64,
        });
        if outcome == Outcome::Ok {
            break;
        }
        assert!(Instant::now() < deadline, "the majority never acknowledged the accept: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // After the acknowledgement, both read paths ask the old leader; the partition heals while
    // they wait (their audit record needs the cluster).
    let stale = tokio::spawn({
        let (http, addr, case, t) = (http.clone(), old_addr.clone(), case.clone(), nurse_token.clone());
        async move { read(&http, &addr, &case, "?consistency=stale", &t, start).await }
    });
    let linearizable = tokio::spawn({
        let (http, addr, case, t) = (http.clone(), old_addr.clone(), case.clone(), nurse_token.clone());
        async move { read(&http, &addr, &case, "", &t, start).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.net().heal();
    let stale = stale.await.expect("stale read task").expect("the stale read answers once healed");
    let linearizable = linearizable.await.expect("linearizable read task");

    // The real read path: linearizable whether it answered or not.
    let mut correct = history.clone();
    correct.extend(linearizable);
    if let Err(v) = check(&correct, &initial) {
        panic!("the linearizable read path broke linearizability:\n{}", v[0]);
    }

    // The broken variant: the old leader served the state from before the acknowledged accept.
    let OpKind::Read(seen) = &stale.kind else { unreachable!() };
    assert_eq!(seen.status, TaskStatus::Requested, "the isolated old leader should still hold the old state");
    let mut broken = history.clone();
    broken.push(stale.clone());
    let violations = check(&broken, &initial).expect_err("the checker must reject the stale read");
    println!("rejected as expected:\n{}", violations[0]);
    let minimal = &violations[0].minimal;
    assert_eq!(minimal.len(), 2, "{}", violations[0]);
    assert!(minimal.iter().any(|o| o.outcome == Outcome::Ok && matches!(o.kind, OpKind::Act { .. })));
    assert!(minimal.iter().any(|o| o.invoke_us == stale.invoke_us));
}
