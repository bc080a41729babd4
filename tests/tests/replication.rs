//! A 3-node cluster elects a leader and replicates submitted cases to every node; the API
//! forwards follower writes, serves linearizable follower reads and rejects bad input.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_replicate_cases() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;

    let mut expected = std::collections::BTreeMap::new();
    for i in 0..30u64 {
        let via = 1 + i % 3;
        let api = cluster.api(via);
        let id = submit(&api, &format!("r{i}")).await.expect("submit through any node");
        // Linearizable read on the node that took the write (often a follower) sees it at once.
        let nurse = acting(&api, NURSE).await;
        let case: yilian_referral::Case =
            nurse.get(&format!("/v1/cases/{id}")).await.expect("read own write");
        assert_eq!(case.complaint, format!("complaint r{i}"));
        expected.insert(id, format!("complaint r{i}"));
    }
    for id in 1..=3 {
        wait_for_cases(&format!("node {id} to hold all 30 cases"), &cluster.api(id), &expected).await;
    }
    let view = cluster.view(leader).await.expect("leader view");
    assert_eq!(view.status.state, "Leader");
    assert_eq!(view.status.voters.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    let follower_api = cluster.api(2);

    let nurse = acting(&follower_api, NURSE).await;
    let bad_json = nurse.post::<_, serde_json::Value>("/v1/cases", &serde_json::json!({"origin": 5})).await;
    assert!(bad_json.as_ref().expect_err("bad body").to_string().contains("422"), "{bad_json:?}");
    let anonymous = follower_api.clone().with_token(None);
    let no_token = anonymous.post::<_, serde_json::Value>("/v1/cases", &serde_json::json!({})).await;
    let msg = no_token.expect_err("no token").to_string();
    assert!(msg.contains("401") && msg.contains("Authorization: Bearer"), "{msg}");
    let unknown = nurse.get::<serde_json::Value>("/v1/cases/C99999999").await;
    let msg = unknown.expect_err("unknown case").to_string();
    assert!(msg.contains("404") && msg.contains("C99999999"), "{msg}");
    let case = |origin: &str, patient: &str| {
        serde_json::json!({
            "origin": origin, "patient_id": patient, "complaint": "c", "priority": "stat",
            "specialty": "cardiology",
        })
    };
    let staff_of_nowhere = serde_json::json!({
        "id": "x", "role": "clinic_staff", "facility": "NOPE", "password": TEST_PASSWORD,
    });
    let bad_facility = follower_api.post::<_, serde_json::Value>("/v1/users", &staff_of_nowhere).await;
    let msg = bad_facility.expect_err("unknown facility").to_string();
    assert!(msg.contains("404") && msg.contains("NOPE"), "{msg}");
    let bad_origin = nurse.post::<_, serde_json::Value>("/v1/cases", &case("NOPE", &patient_id("p"))).await;
    let msg = bad_origin.expect_err("another facility's origin").to_string();
    assert!(msg.contains("403") && msg.contains("NOPE"), "{msg}");
    let bad_patient = nurse.post::<_, serde_json::Value>("/v1/cases", &case("TS", "12345")).await;
    let msg = bad_patient.expect_err("bad patient id").to_string();
    assert!(msg.contains("422") && msg.contains("patient_id"), "{msg}");
    let wrong_state = acting(&follower_api, "specialist:DR")
        .await
        .post::<_, serde_json::Value>("/v1/cases/C00000001/accept", &serde_json::json!({}))
        .await;
    assert!(wrong_state.expect_err("no such case").to_string().contains("404"));
    let id = submit(&follower_api, "x").await.expect("submit");
    let start_unaccepted = acting(&follower_api, "specialist:DR")
        .await
        .post::<_, serde_json::Value>(&format!("/v1/cases/{id}/start"), &serde_json::json!({}))
        .await;
    let msg = start_unaccepted.expect_err("not accepted").to_string();
    assert!(msg.contains("409") && msg.contains("owner-starts"), "{msg}");
    let not_owner = acting(&follower_api, "specialist:OTHER")
        .await
        .post::<_, serde_json::Value>(&format!("/v1/cases/{id}/accept"), &serde_json::json!({}))
        .await;
    let msg = not_owner.expect_err("not the owner").to_string();
    assert!(msg.contains("403") && msg.contains("owner-accepts-offer"), "{msg}");
    let bad_consistency = nurse.get::<serde_json::Value>("/v1/cases?consistency=sometimes").await;
    assert!(bad_consistency.expect_err("bad query").to_string().contains("400"));
}
