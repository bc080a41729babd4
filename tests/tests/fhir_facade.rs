//! The FHIR R4 facade on a 3-node cluster: a ServiceRequest POSTed to a follower becomes a case,
//! its Task and ServiceRequest read back from another node follow the lifecycle driven through
//! the normal API, searches filter by status, owner and priority, errors are OperationOutcomes,
//! and every JSON answered validates as FHIR R4 4.0.1 with the `fhir.resources` models
//! (tests/fhir/validate_fhir.py, installed by tests/fhir/setup.sh). The raw resident ID is never
//! answered.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use support::python_peer::FHIR_VALIDATOR;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close` (the harness client hides status and headers),
/// sent with the session token of `actor` (logged in beforehand), or with none.
async fn http(addr: &str, method: &str, path: &str, actor: Option<&str>, body: Option<&Value>) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = actor {
        req.push_str(&format!("Authorization: Bearer {}\r\n", cached_token(addr, a)));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/fhir+json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, rest) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Answer { status, headers, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Every FHIR answer, kept for the validator and the resident-ID check.
struct Collected {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    bodies: Vec<String>,
}

impl Collected {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir"), files: Vec::new(), bodies: Vec::new() }
    }

    /// Keep `answer` (which must be FHIR JSON) under `name`, and return its JSON.
    fn keep(&mut self, name: &str, answer: &Answer) -> Value {
        let ct = answer.header("content-type").unwrap_or("");
        assert!(ct.starts_with("application/fhir+json"), "{name}: content type `{ct}`: {}", answer.body);
        let path = self.dir.path().join(format!("{:02}-{name}.json", self.files.len()));
        std::fs::write(&path, &answer.body).expect("write answer");
        self.files.push(path);
        self.bodies.push(answer.body.clone());
        answer.json()
    }
}

fn service_request(patient: &str, priority: &str, status: &str, complaint: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "status": status,
        "intent": "order",
        "priority": priority,
        "subject": { "identifier": { "system": "urn:yilian:resident-id", "value": patient } },
        "requester": { "reference": "Organization/TS" },
        "code": { "text": complaint },
        "category": [{ "coding": [{ "system": "urn:yilian:specialty", "code": "cardiology" }] }],
        "orderDetail": [{
            "coding": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "ECG" }],
        }],
    })
}

/// Ids of the resources in a searchset Bundle, checking `total`.
fn bundle_ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    let ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert_eq!(bundle["total"].as_u64(), Some(ids.len() as u64), "{bundle}");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_facade_serves_valid_r4_over_a_cluster() {
    let python = FHIR_VALIDATOR.require();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    for spec in [NURSE, "clinic_staff:x@CTY"] {
        token(&cluster.api(1), spec).await;
    }
    let follower = if leader == 1 { 2 } else { 1 };
    let other = (1..=3).find(|n| *n != follower && *n != leader).unwrap_or(leader);
    let f = cluster.node(follower).api_addr.clone();
    let o = cluster.node(other).api_addr.clone();
    let mut kept = Collected::new();

    let meta = http(&f, "GET", "/fhir/metadata", Some(NURSE), None).await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    let cs = kept.keep("capability-statement", &meta);
    assert_eq!(cs["fhirVersion"], "4.0.1");

    // Create through a follower.
    let patients = [patient_id("fhir-1"), patient_id("fhir-2"), patient_id("fhir-3")];
    let body = service_request(&patients[0], "urgent", "active", "chest pain for 2 h");
    let created = http(&f, "POST", "/fhir/ServiceRequest", Some(NURSE), Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sr = kept.keep("created-service-request", &created);
    let id = sr["id"].as_str().expect("id").to_owned();
    assert_eq!(created.header("location"), Some(format!("/fhir/ServiceRequest/{id}").as_str()));
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["subject"]["identifier"]["system"], "urn:yilian:patient-key");
    assert_eq!(sr["orderDetail"][0]["coding"][0]["code"], "ECG");
    let key = sr["subject"]["identifier"]["value"].as_str().expect("key").to_owned();

    // A draft STAT case and a routine one for the searches.
    let draft = http(
        &f,
        "POST",
        "/fhir/ServiceRequest",
        Some(NURSE),
        Some(&service_request(&patients[1], "stat", "draft", "syncope")),
    )
    .await;
    assert_eq!(draft.status, 201, "{}", draft.body);
    let draft_id = kept.keep("draft-service-request", &draft)["id"].as_str().expect("id").to_owned();
    let routine = http(
        &o,
        "POST",
        "/fhir/ServiceRequest",
        Some(NURSE),
        Some(&service_request(&patients[2], "routine", "active", "palpitations")),
    )
    .await;
    assert_eq!(routine.status, 201, "{}", routine.body);
    let routine_id = kept.keep("routine-service-request", &routine)["id"].as_str().expect("id").to_owned();

    // Read back from another node.
    let t = http(&o, "GET", &format!("/fhir/Task/{id}"), Some(NURSE), None).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let t = kept.keep("task-requested", &t);
    assert_eq!(t["status"], "requested");
    assert_eq!(t["owner"]["reference"], "Practitioner/DR");
    assert_eq!(t["businessStatus"]["text"], "offered to DR");
    assert_eq!(t["focus"]["reference"], format!("ServiceRequest/{id}"));
    assert_eq!(t["for"]["identifier"]["value"], key.as_str());
    assert!(t["restriction"]["period"]["end"].as_str().is_some_and(|s| s.ends_with('Z')), "{t}");
    let sr_read = http(&o, "GET", &format!("/fhir/ServiceRequest/{id}"), Some(NURSE), None).await;
    assert_eq!(sr_read.status, 200);
    let sr_read = kept.keep("service-request-read", &sr_read);
    assert_eq!(sr_read["code"]["text"], "chest pain for 2 h");
    assert_eq!(sr_read["performer"][0]["reference"], "Practitioner/DR");

    // Drive the lifecycle through the normal API.
    let dr = acting(&cluster.api(follower), "specialist:DR").await;
    for (action, body) in [
        ("accept", json!({})),
        ("start", json!({})),
        ("report", json!({ "text": "sinus rhythm, no ST change" })),
    ] {
        let _: Value = dr.post(&format!("/v1/cases/{id}/{action}"), &body).await.expect(action);
    }
    let t = http(&o, "GET", &format!("/fhir/Task/{id}"), Some(NURSE), None).await;
    let t = kept.keep("task-reported", &t);
    assert_eq!(t["status"], "in-progress");
    assert_eq!(t["businessStatus"]["text"], "reported by DR");
    assert_eq!(t["output"][0]["valueString"], "sinus rhythm, no ST change");
    let _: Value = dr.post(&format!("/v1/cases/{id}/complete"), &json!({})).await.expect("complete");
    let sr_done = http(&o, "GET", &format!("/fhir/ServiceRequest/{id}"), Some(NURSE), None).await;
    assert_eq!(kept.keep("service-request-completed", &sr_done)["status"], "completed");

    // Searches.
    let searches: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "task-completed-dr-urgent",
            "/fhir/Task?status=completed&owner=Practitioner/DR&priority=urgent".into(),
            vec![id.as_str()],
        ),
        ("task-draft", "/fhir/Task?status=draft".into(), vec![draft_id.as_str()]),
        ("task-owner-bare", "/fhir/Task?owner=DR".into(), vec![id.as_str(), routine_id.as_str()]),
        ("task-stat", "/fhir/Task?priority=stat".into(), vec![draft_id.as_str()]),
        (
            "task-any-of",
            "/fhir/Task?status=requested,completed".into(),
            vec![id.as_str(), routine_id.as_str()],
        ),
        ("task-none", "/fhir/Task?status=failed".into(), vec![]),
        (
            "task-patient",
            format!("/fhir/Task?patient:identifier=urn:yilian:resident-id%7C{}", patients[0]),
            vec![id.as_str()],
        ),
        ("sr-completed", "/fhir/ServiceRequest?status=completed".into(), vec![id.as_str()]),
        (
            "sr-requester",
            "/fhir/ServiceRequest?requester=Organization/TS".into(),
            vec![id.as_str(), draft_id.as_str(), routine_id.as_str()],
        ),
        (
            "sr-routine-stale",
            "/fhir/ServiceRequest?priority=routine&consistency=stale".into(),
            vec![routine_id.as_str()],
        ),
    ];
    for (name, path, expected) in searches {
        let answer = http(&f, "GET", &path, Some(NURSE), None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let bundle = kept.keep(name, &answer);
        let mut ids = bundle_ids(&bundle);
        ids.sort();
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(ids, expected, "{path}: {bundle}");
    }

    // Errors are OperationOutcomes with the right status.
    let bad_id = with_bad_check(&patients[0]);
    let task_path = format!("/fhir/Task/{id}");
    let changed = |key: &str, value: Value| {
        let mut b = body.clone();
        b[key] = value;
        Some(b)
    };
    let post = "/fhir/ServiceRequest";
    let errors = vec![
        Refusal { name: "oo-unknown-task", method: "GET", path: "/fhir/Task/C99999999", status: 404, ..GET },
        Refusal { name: "oo-unknown-param", path: "/fhir/Task?name=x", status: 400, ..GET },
        Refusal { name: "oo-bad-status", path: "/fhir/ServiceRequest?status=requested", status: 400, ..GET },
        Refusal {
            name: "oo-no-token",
            method: "POST",
            path: post,
            actor: None,
            body: Some(body.clone()),
            status: 401,
        },
        Refusal {
            name: "oo-bad-resident-id",
            method: "POST",
            path: post,
            actor: Some(NURSE),
            body: Some(service_request(&bad_id, "urgent", "active", "x")),
            status: 422,
        },
        Refusal {
            name: "oo-intent-plan",
            method: "POST",
            path: post,
            actor: Some(NURSE),
            body: changed("intent", json!("plan")),
            status: 422,
        },
        Refusal {
            name: "oo-unknown-element",
            method: "POST",
            path: post,
            actor: Some(NURSE),
            body: changed("bodySite", json!([{ "text": "chest" }])),
            status: 422,
        },
        Refusal {
            name: "oo-other-facility",
            method: "POST",
            path: post,
            actor: Some("clinic_staff:x@CTY"),
            body: Some(body.clone()),
            status: 403,
        },
        Refusal { name: "oo-unknown-resource", path: "/fhir/Patient/1", status: 404, ..GET },
        Refusal { name: "oo-method", method: "DELETE", path: &task_path, status: 405, ..GET },
    ];
    for r in errors {
        let answer = http(&f, r.method, r.path, r.actor, r.body.as_ref()).await;
        assert_eq!(answer.status, r.status, "{} {}: {}", r.method, r.path, answer.body);
        let oo = kept.keep(r.name, &answer);
        assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
        assert!(oo["issue"][0]["diagnostics"].as_str().is_some_and(|d| !d.is_empty()), "{oo}");
    }
    let nurse = acting(&cluster.api(other), NURSE).await;
    let cases: Vec<yilian_referral::Case> = nurse.get("/v1/cases").await.expect("cases");
    assert_eq!(cases.len(), 3, "refused requests create no case");

    // The raw resident ID never leaves the node.
    for body in &kept.bodies {
        for raw in patients.iter().chain([&bad_id]) {
            assert!(!body.contains(raw.as_str()), "a response echoes the resident ID: {body}");
        }
    }

    // Every answer validates as FHIR R4 4.0.1.
    let out =
        Command::new(&python).arg(FHIR_VALIDATOR.script()).args(&kept.files).output().expect("run validator");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{report}");
    assert!(out.status.success(), "FHIR R4 validation failed:\n{report}");
    assert!(report.contains(&format!("{} valid, 0 invalid", kept.files.len())), "{report}");
}

/// A request the facade must refuse with an OperationOutcome.
struct Refusal<'a> {
    name: &'a str,
    method: &'a str,
    path: &'a str,
    actor: Option<&'a str>,
    body: Option<Value>,
    status: u16,
}

/// Defaults for [`Refusal`]: a GET by the TS nurse.
const GET: Refusal<'static> =
    Refusal { name: "", method: "GET", path: "", actor: Some(NURSE), body: None, status: 0 };

/// `id` with a wrong check character.
fn with_bad_check(id: &str) -> String {
    let (body, check) = id.split_at(17);
    let wrong = if check == "0" { "1" } else { "0" };
    format!("{body}{wrong}")
}
