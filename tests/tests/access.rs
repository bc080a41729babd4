//! Access follows the referral, on a 3-node cluster: staff of another facility are refused with
//! 403 and the refusal is in the audit trail; every read is audited with user, role, facility,
//! source address, purpose and patient key; a specialist's access ends a grace period after the
//! case closes; break-glass needs a reason, opens read-only and is listed for review; ops,
//! auditors, the bureau and admins see no case data; and a full scenario writes no patient
//! name or resident ID into any node's log.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use yilian_referral::{AuditEvent, AuditOutcome, Outcome};

fn status_of(e: &anyhow::Error) -> String {
    e.to_string().split(' ').next().unwrap_or_default().to_owned()
}

/// The whole audit trail as the auditor sees it through node `id`, page by page.
async fn trail(cluster: &TestCluster, id: u64) -> Vec<AuditEvent> {
    let auditor = acting(&cluster.api(id), "auditor:aud").await;
    let mut all: Vec<AuditEvent> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page: Vec<AuditEvent> =
            auditor.get(&format!("/v1/audit?after={after}")).await.expect("audit trail");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// A second township under the county.
async fn second_township(cluster: &TestCluster) {
    let ops = acting(&cluster.api(1), "ops:test").await;
    let f = json!({"id": "TS2", "name": "二镇卫生院", "level": "township", "region": "r", "parent": "CTY"});
    let _: Outcome = ops.post("/v1/facilities", &f).await.expect("facility");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_follows_the_referral_and_every_read_and_refusal_is_audited() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    second_township(&cluster).await;
    let id = submit(&cluster.api(1), "access").await.expect("submit");
    let path = format!("/v1/cases/{id}");

    // The requesting facility reads it, and the read is audited with who, where and why.
    let nurse = acting(&cluster.api(2), NURSE).await;
    let _: Value = nurse.get(&path).await.expect("own facility");
    let events = trail(&cluster, 3).await;
    let read = events
        .iter()
        .rev()
        .find(|e| e.event_type == "case.read" && e.case.as_ref().is_some_and(|c| c.0 == id))
        .expect("the read is in the audit trail");
    assert_eq!(read.actor.id, "nurse-TS");
    assert_eq!(read.actor.facility.as_ref().map(|f| f.0.as_str()), Some("TS"));
    assert_eq!(read.outcome, AuditOutcome::Success);
    assert_eq!(read.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(read.purpose.as_deref(), Some("TREAT"));
    assert!(read.patient.is_some(), "reads carry the pseudonymous patient key");

    // Staff of another facility: 403 with the reason, and the refusal is audited.
    let other = acting(&cluster.api(3), "clinic_staff:nurse@TS2").await;
    let e = other.get::<Value>(&path).await.expect_err("another facility's case");
    assert_eq!(status_of(&e), "403", "{e:#}");
    assert!(e.to_string().contains("belongs to facility `TS`"), "{e:#}");
    let listed: Vec<Value> = other.get("/v1/cases").await.expect("list");
    assert!(listed.is_empty(), "lists show only what the caller may see");
    let fhir = other.get::<Value>(&format!("/fhir/Task/{id}")).await.expect_err("FHIR too");
    assert_eq!(status_of(&fhir), "403");
    let denied: Vec<AuditEvent> = trail(&cluster, 1)
        .await
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Denied && e.actor.id == "nurse-TS2")
        .collect();
    assert!(denied.len() >= 2, "both refusals are audited: {denied:?}");
    assert!(denied[0].case.as_ref().is_some_and(|c| c.0 == id) && denied[0].event_type == "case.read-denied");
    assert!(denied[0].detail.as_deref().is_some_and(|d| d.contains("belongs to facility")));
    // A write by the wrong facility is refused and audited as well.
    let e =
        other.post::<_, Value>(&format!("{path}/cancel"), &json!({"reason": "x"})).await.expect_err("cancel");
    assert_eq!(status_of(&e), "403", "{e:#}");
    wait_for("the refused write in the trail", Duration::from_secs(10), || {
        let cluster = &cluster;
        async move { trail(cluster, 2).await.iter().any(|e| e.event_type == "case.write-denied") }
    })
    .await;

    // Roles that see no case data: refused, each with its reason; their own data works.
    for (spec, own) in [
        ("ops:test", "/v1/facilities"),
        ("auditor:aud", "/v1/audit"),
        ("bureau:stats", "/v1/figures"),
        ("admin:root", "/v1/users"),
    ] {
        let api = if spec == "admin:root" { cluster.api(1) } else { acting(&cluster.api(1), spec).await };
        let e = api.get::<Value>(&path).await.expect_err("no case data");
        assert_eq!(status_of(&e), "403", "{spec}: {e:#}");
        let e = api.get::<Value>("/v1/cases").await.expect_err("no case lists");
        assert_eq!(status_of(&e), "403", "{spec}: {e:#}");
        let _: Value = api.get(own).await.unwrap_or_else(|e| panic!("{spec} reads {own}: {e:#}"));
    }
    let e = nurse.get::<Value>("/v1/audit").await.expect_err("staff do not read the trail");
    assert_eq!(status_of(&e), "403");
    let e = nurse.get::<Value>("/v1/figures").await.expect_err("nor the bureau figures");
    assert_eq!(status_of(&e), "403");

    // The trail still verifies on every node, reads and refusals included.
    for node in 1..=3 {
        let v: Value =
            acting(&cluster.api(node), "auditor:aud").await.get("/v1/audit/verify").await.expect("verify");
        assert!(v["verified"].as_u64().is_some_and(|n| n > 10), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specialist_access_ends_after_close_and_break_glass_needs_a_reason() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    second_township(&cluster).await;
    let ops = acting(&cluster.api(1), "ops:test").await;
    let _: Outcome =
        ops.put("/v1/policies/r", &json!({ "specialist_grace_ms": 3000 })).await.expect("policy");
    let id = submit(&cluster.api(1), "grace").await.expect("submit");
    let path = format!("/v1/cases/{id}");

    // Offered to DR: DR reads it; another specialist does not.
    let dr = acting(&cluster.api(2), "specialist:DR").await;
    let _: Value = dr.get(&path).await.expect("offered to DR");
    let other = acting(&cluster.api(2), "specialist:OTHER").await;
    assert_eq!(status_of(&other.get::<Value>(&path).await.expect_err("not offered")), "403");
    for (action, body) in [
        ("accept", json!({})),
        ("start", json!({})),
        ("report", json!({"text": "normal"})),
        ("complete", json!({})),
    ] {
        let _: Value = dr.post(&format!("{path}/{action}"), &body).await.expect(action);
    }
    // Closed: DR still reads during the grace, but cannot act any more.
    let _: Value = dr.get(&path).await.expect("within the grace");
    let e =
        dr.post::<_, Value>(&format!("{path}/reopen"), &json!({"reason": "x"})).await.expect_err("read-only");
    assert_eq!(status_of(&e), "403", "{e:#}");
    wait_for("the grace to end", Duration::from_secs(15), || {
        let dr = dr.clone();
        let path = path.clone();
        async move {
            dr.get::<Value>(&path)
                .await
                .is_err_and(|e| status_of(&e) == "403" && e.to_string().contains("grace"))
        }
    })
    .await;
    let worklist: Vec<Value> = dr.get("/v1/specialists/DR/worklist").await.expect("worklist");
    assert!(worklist.is_empty());
    let e = other.get::<Value>("/v1/specialists/DR/worklist").await.expect_err("someone else's worklist");
    assert_eq!(status_of(&e), "403");

    // Break-glass: refused without a reason, refused for ops, then read-only and time-boxed.
    let stranger = acting(&cluster.api(3), "clinic_staff:nurse@TS2").await;
    assert_eq!(status_of(&stranger.get::<Value>(&path).await.expect_err("no access yet")), "403");
    let glass = format!("{path}/break-glass");
    let e = stranger.post::<_, Value>(&glass, &json!({"minutes": 30})).await.expect_err("no reason");
    assert_eq!(status_of(&e), "422", "{e:#}");
    assert!(e.to_string().contains("reason"), "{e:#}");
    let e = ops.post::<_, Value>(&glass, &json!({"reason": "curious"})).await.expect_err("ops");
    assert_eq!(status_of(&e), "403", "{e:#}");
    let opened: Value = stranger
        .post(&glass, &json!({"reason": "patient collapsed in our clinic", "minutes": 30}))
        .await
        .expect("break-glass with a reason");
    assert!(opened["break_glass"]["until_ms"].as_u64().is_some(), "{opened}");
    let seen: Value = stranger.get(&path).await.expect("open by break-glass");
    assert_eq!(seen["id"], id.as_str());
    let e = stranger
        .post::<_, Value>(&format!("{path}/reopen"), &json!({"reason": "x"}))
        .await
        .expect_err("write");
    assert_eq!(status_of(&e), "403");

    // Listed for review (auditor), with start and access events in the trail.
    let e = stranger.get::<Value>("/v1/break-glass").await.expect_err("not for staff");
    assert_eq!(status_of(&e), "403");
    let grants: Vec<Value> =
        acting(&cluster.api(1), "auditor:aud").await.get("/v1/break-glass").await.expect("grants");
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["reason"], "patient collapsed in our clinic");
    assert_eq!(grants[0]["actor"]["id"], "nurse-TS2");
    let events = trail(&cluster, 2).await;
    let start = events.iter().find(|e| e.event_type == "case.break-glass-start").expect("start audited");
    assert_eq!(start.purpose.as_deref(), Some("ETREAT"));
    let read = events
        .iter()
        .rev()
        .find(|e| e.event_type == "case.read" && e.actor.id == "nurse-TS2")
        .expect("the break-glass read is audited");
    assert_eq!(read.purpose.as_deref(), Some("ETREAT"));
    let refused: Vec<&AuditEvent> =
        events.iter().filter(|e| e.event_type == "case.break-glass-denied").collect();
    assert_eq!(refused.len(), 2, "both refused break-glass attempts are audited: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_patient_name_or_resident_id_reaches_any_log() {
    const NAME: &str = "欧阳测试者 Ouyang Ceshizhe";
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    second_township(&cluster).await;
    let raw_id = patient_id("log-probe");
    let nurse = acting(&cluster.api(2), NURSE).await;
    let body = json!({
        "patient_id": raw_id, "complaint": format!("{NAME}: chest pain"), "priority": "urgent",
        "specialty": "cardiology",
    });
    let Outcome::Case { case_id, .. } = nurse.post("/v1/cases", &body).await.expect("submit") else {
        panic!("not a case")
    };
    let path = format!("/v1/cases/{case_id}");
    let dr = acting(&cluster.api(3), "specialist:DR").await;
    for (action, body) in [
        ("accept", json!({})),
        ("start", json!({})),
        ("report", json!({"text": format!("{NAME} has sinus rhythm")})),
    ] {
        let _: Value = dr.post(&format!("{path}/{action}"), &body).await.expect(action);
    }
    let bad = json!({"patient_id": raw_id, "complaint": NAME, "priority": "often", "specialty": "x"});
    let _ = nurse.post::<_, Value>("/v1/cases", &bad).await.expect_err("bad priority");
    let stranger = acting(&cluster.api(1), "clinic_staff:nurse@TS2").await;
    let _ = stranger.get::<Value>(&path).await.expect_err("refused");
    let _: Value = stranger
        .post(&format!("{path}/break-glass"), &json!({"reason": format!("{NAME} collapsed")}))
        .await
        .expect("break-glass");
    let _: Value = stranger.get(&path).await.expect("read");
    let _: Value = nurse.get(&format!("/v1/cases?patient_id={raw_id}")).await.expect("search by resident id");
    let _: Value = nurse
        .get(&format!("/fhir/Task?patient:identifier=urn:yilian:resident-id%7C{raw_id}"))
        .await
        .expect("fhir");
    let _: Value = dr.post(&format!("{path}/complete"), &json!({})).await.expect("complete");
    for id in 1..=3 {
        let log = cluster.log_of(id);
        assert!(log.lines().count() > 5, "node {id} logged something");
        for line in log.lines() {
            assert!(
                !line.contains("Ouyang") && !line.contains("欧阳"),
                "node {id} logged a patient name: {line}"
            );
            assert!(!line.contains(&raw_id), "node {id} logged a resident ID: {line}");
        }
    }
}
