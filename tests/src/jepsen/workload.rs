//! Concurrent clients: each picks a random operation (submit, assign, accept, start, hold,
//! resume, report, cancel or a linearizable read) on a random case through a random member, and
//! records its invocation and outcome with monotonic times.

use crate::linearizable::{Actor, CaseState, Op, OpKind, Outcome};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use yilian_referral::{CaseAction, SpecialistId, TaskStatus};

/// The readers cases are offered to.
pub const READERS: [&str; 2] = ["DR", "DR2"];
/// Most operations recorded per case (the checker handles up to 128).
const MAX_OPS_PER_CASE: usize = 100;

/// A submit and how it ended; `tag` is in the complaint, so the case can be found later.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Unique tag.
    pub tag: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything the clients recorded.
#[derive(Debug, Default)]
pub struct History {
    /// Operations on the cases under test.
    pub ops: Vec<Op>,
    /// Submits.
    pub submits: Vec<Submitted>,
}

/// What the clients share: where to send requests, with which tokens, and where to record.
pub struct Shared {
    /// API addresses of the current members.
    pub nodes: RwLock<Vec<String>>,
    /// Session token per actor spec.
    pub tokens: HashMap<String, String>,
    /// The cases under test.
    pub cases: Vec<String>,
    /// Time zero of the history.
    pub start: Instant,
    /// The record.
    pub history: Mutex<History>,
    /// Set when the nemesis is done: clients stop.
    pub done: AtomicBool,
    /// How long a client waits before calling an operation unknown.
    pub timeout: Duration,
    /// Operations recorded per case.
    per_case: Mutex<HashMap<String, usize>>,
}

impl Shared {
    /// Shared state for clients over `nodes` and `cases`.
    pub fn new(
        nodes: Vec<String>,
        tokens: HashMap<String, String>,
        cases: Vec<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            nodes: RwLock::new(nodes),
            tokens,
            cases,
            start: Instant::now(),
            history: Mutex::new(History::default()),
            done: AtomicBool::new(false),
            timeout,
            per_case: Mutex::new(HashMap::new()),
        }
    }

    /// Microseconds since time zero.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn token(&self, spec: &str) -> &str {
        self.tokens.get(spec).map(String::as_str).unwrap_or_default()
    }

    /// Reserve a slot in `case`'s history; false when it is full.
    fn reserve(&self, case: &str) -> bool {
        let mut map = self.per_case.lock().expect("per-case counts");
        let n = map.entry(case.to_owned()).or_default();
        *n += 1;
        *n <= MAX_OPS_PER_CASE
    }
}

/// The actor spec (see `harness::acting`) of a model actor.
pub fn spec_of(actor: &Actor) -> String {
    match actor {
        Actor::Reader(id) => format!("specialist:{id}"),
        Actor::Requester => crate::harness::NURSE.to_owned(),
        Actor::Ops => "ops:test".to_owned(),
    }
}

/// Classify an HTTP exchange: refused (4xx, or the connection was refused so nothing was sent),
/// ok, or unknown (timeout, connection lost, 5xx).
fn outcome_of(answer: &Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match answer {
        Ok(r) if r.status().is_success() => Outcome::Ok,
        Ok(r) if r.status().is_client_error() => Outcome::Failed,
        Err(e) if e.is_connect() => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

/// The model state in a case read through the API.
pub fn state_of(case: &Value) -> Option<CaseState> {
    let status: TaskStatus = serde_json::from_value(case["status"].clone()).ok()?;
    let owner = case["owner"].as_str().map(str::to_owned);
    let reports = case["reports"].as_array().map_or(0, Vec::len);
    Some(CaseState { status, owner, reports })
}

/// A random lifecycle action, who does it, and its request body.
fn pick_action(rng: &mut fastrand::Rng) -> (CaseAction, Actor, Value) {
    let reader = Actor::Reader(READERS[rng.usize(..READERS.len())].to_owned());
    match rng.u8(..20) {
        0..=3 => (CaseAction::Accept, reader, json!({})),
        4..=6 => (CaseAction::Start, reader, json!({})),
        7..=8 => (CaseAction::Hold, reader, json!({"reason": "waiting for labs"})),
        9..=11 => (CaseAction::Resume, reader, json!({})),
        12..=14 => {
            (CaseAction::Report { text: "sinus rhythm".into() }, reader, json!({"text": "sinus rhythm"}))
        }
        15..=17 => {
            let to = READERS[rng.usize(..READERS.len())];
            (CaseAction::Assign { to: SpecialistId(to.into()) }, Actor::Ops, json!({"to": to}))
        }
        _ => (CaseAction::Cancel, Actor::Requester, json!({"reason": "patient transferred"})),
    }
}

/// One client: operations until the nemesis is done or `budget` operations were made.
pub async fn client(shared: Arc<Shared>, id: usize, seed: u64, budget: usize) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let http = reqwest::Client::new();
    for n in 0..budget {
        if shared.done.load(Ordering::Relaxed) {
            return;
        }
        let node = {
            let nodes = shared.nodes.read().expect("nodes");
            nodes[rng.usize(..nodes.len())].clone()
        };
        let roll = rng.u8(..100);
        if roll < 8 {
            submit(&shared, &http, &node, format!("c{id}-{n}-{}", rng.u32(..))).await;
            continue;
        }
        let case = shared.cases[rng.usize(..shared.cases.len())].clone();
        if !shared.reserve(&case) {
            continue;
        }
        let invoke_us = shared.now_us();
        let (kind, outcome) = if roll < 45 {
            let url = format!("http://{node}/v1/cases/{case}");
            let answer = http
                .get(&url)
                .bearer_auth(shared.token(crate::harness::NURSE))
                .timeout(shared.timeout)
                .send()
                .await;
            let Ok(resp) = answer else { continue };
            if !resp.status().is_success() {
                continue;
            }
            let Some(state) = resp.json::<Value>().await.ok().as_ref().and_then(state_of) else { continue };
            (OpKind::Read(state), Outcome::Ok)
        } else {
            let (action, by, body) = pick_action(&mut rng);
            let url = format!("http://{node}/v1/cases/{case}/{}", action.name());
            let answer = http
                .post(&url)
                .bearer_auth(shared.token(&spec_of(&by)))
                .json(&body)
                .timeout(shared.timeout)
                .send()
                .await;
            (OpKind::Act { action, by }, outcome_of(&answer))
        };
        let op = Op { client: id, case, kind, outcome, invoke_us, complete_us: shared.now_us() };
        shared.history.lock().expect("history").ops.push(op);
    }
}

async fn submit(shared: &Shared, http: &reqwest::Client, node: &str, tag: String) {
    let body = json!({
        "patient_id": crate::harness::patient_id(&tag), "complaint": format!("complaint {tag}"),
        "priority": "urgent", "specialty": "cardiology",
    });
    let answer = http
        .post(format!("http://{node}/v1/cases"))
        .bearer_auth(shared.token(crate::harness::NURSE))
        .json(&body)
        .timeout(shared.timeout)
        .send()
        .await;
    let outcome = outcome_of(&answer);
    shared.history.lock().expect("history").submits.push(Submitted { tag, outcome });
}
