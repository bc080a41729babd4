//! The referral workflow end to end through the `yilian` CLI against a 3-node cluster: submit,
//! worklist, the lifecycle, capacity checks before a down-referral, an at-capacity rejection,
//! a device outage reroute, shifts, policy and audit, with clear errors for bad input.

mod support;

use serde_json::json;
use support::*;
use yilian_referral::{Case, Outcome, Transfer, TransferStatus};

/// Run the CLI against node `api` with the session token of `actor` (logged in beforehand);
/// returns (success, stdout + stderr).
fn cli(api: &str, actor: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(node_binary())
        .args(args)
        .args(["--api", api, "--token", &cached_token(api, actor)])
        .output()
        .expect("run the yilian CLI");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ok(api: &str, actor: &str, args: &[&str]) -> String {
    let (success, text) = cli(api, actor, args);
    assert!(success, "`yilian {}` failed: {text}", args.join(" "));
    text
}

fn fails(api: &str, actor: &str, args: &[&str], expect: &[&str]) {
    let (success, text) = cli(api, actor, args);
    assert!(!success, "`yilian {}` should fail: {text}", args.join(" "));
    for e in expect {
        assert!(text.contains(e), "error for `yilian {}` lacks `{e}`: {text}", args.join(" "));
    }
}

/// Two townships under the county, with locations, devices and rehab capacity.
async fn seed(api: &yilian_node::client::ApiClient) {
    seed_region(api).await;
    let ops = acting(api, "ops:test").await;
    for (id, lat, devices) in [("TS2", 30_010_000, json!(["US", "DR"])), ("TS3", 30_200_000, json!(["US"]))] {
        let f = json!({
            "id": id, "name": id, "level": "township", "region": "r", "parent": "CTY",
            "location": { "lat_e6": lat, "lon_e6": 120_000_000 }, "devices": devices,
        });
        let _: Outcome = ops.post("/v1/facilities", &f).await.expect("facility");
    }
    let rad = json!({
        "id": "RAD", "name": "放射科医生", "facility": "CTY", "specialty": "radiology",
        "modalities": ["US", "DR"], "cap": 5, "on_shift": false,
    });
    let _: Outcome = ops.post("/v1/specialists", &rad).await.expect("specialist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_workflow_through_the_cli() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed(&cluster.api(1)).await;
    for spec in [
        NURSE,
        "specialist:DR",
        "specialist:OTHER",
        "specialist:RAD",
        "clinic_staff:head@TS",
        "clinic_staff:head@TS2",
        "clinic_staff:head@TS3",
        "ops:test",
        "auditor:aud",
        "bureau:stats",
    ] {
        token(&cluster.api(1), spec).await;
    }
    let (a1, a2, a3) = (&cluster.node(1).api_addr, &cluster.node(2).api_addr, &cluster.node(3).api_addr);
    let pid = patient_id("cli-patient");

    // Submit through a follower; it is routed to the county cardiologist.
    let out = ok(
        a2,
        NURSE,
        &["case", "submit", "--patient-id", &pid, "--complaint", "palpitations", "--specialty", "cardiology"],
    );
    assert!(out.contains("C00000001 requested owner=DR"), "{out}");
    assert!(ok(a3, "specialist:DR", &["worklist", "DR"]).contains("C00000001"));
    fails(
        a1,
        NURSE,
        &["case", "submit", "--patient-id", "123", "--complaint", "x", "--specialty", "cardiology"],
        &["422", "patient_id"],
    );
    fails(
        a1,
        "specialist:DR",
        &["case", "act", "C00000001", "complete"],
        &["409", "owner-completes-reported"],
    );
    fails(a1, "specialist:OTHER", &["case", "act", "C00000001", "accept"], &["403", "owner-accepts-offer"]);
    fails(a1, "specialist:DR", &["case", "act", "C00000001", "report"], &["needs `text`"]);
    for (action, extra) in
        [("accept", vec![]), ("start", vec![]), ("report", vec!["--text", "sinus tachycardia"])]
    {
        let mut args = vec!["case", "act", "C00000001", action];
        args.extend(extra);
        ok(a3, "specialist:DR", &args);
    }
    assert!(ok(a1, "specialist:DR", &["case", "act", "C00000001", "complete"]).contains("completed"));
    assert!(ok(a2, NURSE, &["case", "list", "--status", "completed"]).contains("C00000001"));

    // Down-referral: a township without capacity is refused with the nearest alternative.
    ok(a1, "clinic_staff:head@TS", &["facility", "capacity", "TS", "rehab-cardiac", "no"]);
    ok(a1, "clinic_staff:head@TS2", &["facility", "capacity", "TS2", "rehab-cardiac", "yes"]);
    ok(a1, "clinic_staff:head@TS3", &["facility", "capacity", "TS3", "rehab-cardiac", "waitlist:10"]);
    fails(a1, "clinic_staff:head@TS2", &["facility", "capacity", "TS", "rehab-cardiac", "yes"], &["403"]);
    let search = ok(a2, "ops:test", &["facility", "search", "rehab-cardiac", "--near", "TS"]);
    let search: serde_json::Value = serde_json::from_str(&search).expect("JSON answer");
    let options: Vec<&str> = search["options"]
        .as_array()
        .expect("options")
        .iter()
        .filter_map(|o| o["facility"].as_str())
        .collect();
    assert_eq!(options, ["TS2", "TS3"], "only facilities that can take the patient, nearest first");
    let down = ["--case", "C00000001", "--direction", "down", "--service", "rehab-cardiac", "--from", "CTY"];
    let mut to_ts = vec!["transfer", "request", "--to", "TS"];
    to_ts.extend(down);
    fails(a2, "specialist:DR", &to_ts, &["409", "TS2"]);
    let mut to_ts3 = vec!["transfer", "request", "--to", "TS3", "--follow-up", "ECG review:14"];
    to_ts3.extend(down);
    assert!(ok(a2, "specialist:DR", &to_ts3).contains("T00000001 requested"));
    let rejected =
        ok(a3, "clinic_staff:head@TS3", &["transfer", "act", "T00000001", "reject", "--at-capacity"]);
    assert!(rejected.contains("rejected") && rejected.contains("TS2"), "{rejected}");
    let mut to_ts2 = vec!["transfer", "request", "--to", "TS2"];
    to_ts2.extend(down);
    ok(a2, "specialist:DR", &to_ts2);
    ok(a1, "clinic_staff:head@TS2", &["transfer", "act", "T00000002", "accept"]);
    ok(a1, "clinic_staff:head@TS2", &["transfer", "act", "T00000002", "complete"]);
    let transfers: Vec<Transfer> =
        acting(&cluster.api(3), NURSE).await.get("/v1/transfers?case=C00000001").await.expect("transfers");
    let statuses: Vec<_> = transfers.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [TransferStatus::Rejected, TransferStatus::Completed]);
    assert_eq!(transfers[1].follow_up.len(), 0);
    assert_eq!(transfers[0].follow_up[0].what, "ECG review");

    // Device outage: an open ultrasound case at TS moves its exam to the nearest working US.
    let ops = acting(&cluster.api(1), "ops:test").await;
    let _: Outcome =
        ops.put("/v1/facilities/TS/devices/US", &json!({ "in_service": true })).await.expect("device");
    let us_case = json!({
        "patient_id": patient_id("us-patient"), "complaint": "RUQ pain", "priority": "routine",
        "specialty": "radiology", "modality": "US",
    });
    let created: Outcome =
        acting(&cluster.api(2), NURSE).await.post("/v1/cases", &us_case).await.expect("submit");
    assert!(matches!(created, Outcome::Case { unrouted: true, .. }), "RAD is off shift: {created:?}");
    assert!(ok(a1, NURSE, &["case", "list", "--unrouted"]).contains("C00000002"));
    fails(a1, NURSE, &["facility", "device", "TS", "US", "down"], &["reason"]);
    let moved = ok(a1, NURSE, &["facility", "device", "TS", "US", "down", "--reason", "probe broken"]);
    assert!(moved.contains("C00000002"), "{moved}");
    let case: Case = acting(&cluster.api(3), NURSE).await.get("/v1/cases/C00000002").await.expect("case");
    assert_eq!(case.exam_facility.0, "TS2");
    assert!(ok(a2, "specialist:RAD", &["specialist", "shift", "RAD", "on"]).contains("C00000002"));
    let case: Case = acting(&cluster.api(1), NURSE).await.get("/v1/cases/C00000002").await.expect("case");
    assert_eq!(case.owner.as_ref().map(|o| o.0.as_str()), Some("RAD"));

    // Up-referral with a requested admission slot; a malformed slot is refused before sending.
    let up = ["transfer", "request", "--case", "C00000002", "--direction", "up", "--to", "CTY"];
    let mut bad_slot = up.to_vec();
    bad_slot.extend(["--service", "general-ward", "--slot", "tomorrow morning"]);
    fails(a1, NURSE, &bad_slot, &["RFC 3339"]);
    let mut with_slot = up.to_vec();
    with_slot.extend(["--service", "general-ward", "--slot", "2026-11-25T09:00:00+08:00"]);
    assert!(ok(a1, NURSE, &with_slot).contains("T00000003 requested"));
    let t: Transfer =
        acting(&cluster.api(2), NURSE).await.get("/v1/transfers/T00000003").await.expect("transfer");
    assert_eq!(t.requested_slot_ms, Some(1_795_568_400_000));

    // Policy and audit are readable; a bad policy is refused by name.
    assert!(ok(a3, "ops:test", &["policy", "show", "r"]).contains("stat_auto_ready"));
    let bad = cluster.dir.path().join("bad-policy.json");
    std::fs::write(
        &bad,
        r#"{"sla":{"stat":{"offer_timeout_ms":0,"offer_to_accept_ms":1,"accept_to_report_ms":1}}}"#,
    )
    .expect("write");
    fails(a1, "ops:test", &["policy", "set", "r", "--file", &bad.display().to_string()], &["sla"]);
    let audit = ok(a2, "auditor:aud", &["audit", "list", "--case", "C00000001"]);
    assert!(audit.contains("case.owner-accepts-offer") && audit.contains("transfer.request"), "{audit}");
    assert!(!audit.contains(&pid), "the raw patient ID must never be stored");

    // Bureau figures, as JSON and as Prometheus metrics, from any node.
    let figures: serde_json::Value =
        serde_json::from_str(&ok(a3, "bureau:stats", &["figures"])).expect("JSON");
    assert_eq!(figures["totals"]["cases"], 2, "{figures}");
    assert_eq!(figures["totals"]["unrouted"], 0);
    assert_eq!(figures["referrals"]["cases_with_down"], 1);
    assert_eq!(figures["referrals"]["down_referral_rate"], 0.5);
    assert_eq!(figures["facilities"]["TS"]["submitted"], 2);
    assert_eq!(figures["priorities"]["routine"]["cases"], 2);
    let metrics = ok(a2, "bureau:stats", &["figures", "--prometheus"]);
    for line in
        ["yilian_cases_unrouted 0", "yilian_referral_rate{direction=\"down\"} 0.5", "yilian_raft_term"]
    {
        assert!(metrics.contains(line), "metrics lack `{line}`:\n{metrics}");
    }
    let key = &case.patient.0;
    assert!(
        !metrics.contains(key.as_str()) && !metrics.contains(&pid),
        "metrics must carry no patient identity"
    );
}
