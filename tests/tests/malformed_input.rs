//! Malformed input never crashes a node or exhausts its memory. Seeded mutation fuzzing of the
//! three ways bytes from outside reach Yilian:
//!
//! - **DICOM ingest**: the seed corpus in `dicom/tests/corpus` plus synthetic studies, mutated
//!   (bit flips, boundary bytes, cut, inserted and repeated runs, huge lengths) and inspected;
//!   every mutant is accepted or refused with an error, never a panic;
//! - **wire and disk codec**: real commands and stored entities, encoded, mutated and decoded as
//!   commands, entities and peer requests;
//! - **HTTP API**: the requests in `tests/fuzz/api/*.req` (each first checked to succeed as
//!   written), mutated and sent to a real node with a valid token; no answer may be a server
//!   error other than 503, and the node must still be alive with no panic in its log.
//!
//! Peak memory of the test process may not grow by more than [`MEMORY_GROWTH_LIMIT`].
//!
//! The runs are reproducible: each target prints its seed. `YILIAN_FUZZ_SEED` replays one,
//! `YILIAN_FUZZ_SCALE` multiplies the iterations for a long run, e.g.
//! `YILIAN_FUZZ_SCALE=100 cargo test --release -p yilian-tests --test malformed_input`.

mod support;

use std::path::{Path, PathBuf};
use support::*;
use yilian_consensus::codec::{decode, encode};
use yilian_consensus::network::PeerRequest;
use yilian_dicom::ingest::inspect;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_referral::{Actor, Command, Entity, Region};

/// How much the test process's peak resident memory may grow while fuzzing.
const MEMORY_GROWTH_LIMIT: u64 = 512 * 1024 * 1024;

/// Seed of a target's generator: `YILIAN_FUZZ_SEED`, else a fixed one per target.
fn seed_for(target: &str, default: u64) -> u64 {
    let seed = std::env::var("YILIAN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    println!("{target}: seed {seed} (replay with YILIAN_FUZZ_SEED={seed})");
    seed
}

/// `base` iterations times `YILIAN_FUZZ_SCALE` (default 1).
fn iterations(base: usize) -> usize {
    let scale = std::env::var("YILIAN_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    base * scale
}

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Mutate `seed` with one to four random edits.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    const BOUNDARY: [u8; 8] = [0x00, 0xFF, 0x7F, 0x80, b'"', b'{', b'[', b'\\'];
    let mut m = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        if m.is_empty() {
            m.push(rng.u8(..));
            continue;
        }
        let at = rng.usize(..m.len());
        match rng.u8(..8) {
            0 => m[at] ^= 1 << rng.u8(..8),
            1 => m[at] = BOUNDARY[rng.usize(..BOUNDARY.len())],
            2 => m.truncate(at),
            3 => {
                let end = (at + rng.usize(1..64)).min(m.len());
                m.drain(at..end);
            }
            4 => {
                let run: Vec<u8> = (0..rng.usize(1..32)).map(|_| rng.u8(..)).collect();
                m.splice(at..at, run);
            }
            5 => {
                let end = (at + rng.usize(1..256)).min(m.len());
                let copy = m[at..end].to_vec();
                m.splice(at..at, copy);
            }
            6 => {
                // A length field (or any 4 bytes) set to something huge.
                let end = (at + 4).min(m.len());
                for b in &mut m[at..end] {
                    *b = 0xFF;
                }
            }
            _ => {
                // A digit run in text replaced by an out-of-range number.
                if let Some(d) = m[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + d;
                    let end = start + m[start..].iter().take_while(|b| b.is_ascii_digit()).count();
                    m.splice(start..end, b"184467440737095516160000".iter().copied());
                }
            }
        }
    }
    m
}

/// Small synthetic studies of every kind plus the refusal corpus: the DICOM seeds.
fn dicom_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let opts = SynthOptions {
        ct_slices: 1,
        ct_matrix: 16,
        ecg_seconds: 1,
        us_columns: 64,
        us_rows: 64,
        us_frames: 2,
        ..SynthOptions::small(5)
    };
    let summary = generate(dir, &SynthKind::ALL, &opts).expect("synthetic studies");
    let mut seeds: Vec<Vec<u8>> = summary
        .studies
        .iter()
        .flat_map(|s| &s.files)
        .map(|f| std::fs::read(f).expect("read synth"))
        .collect();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dicom/tests/corpus");
    for entry in std::fs::read_dir(&corpus).expect("dicom/tests/corpus") {
        seeds.push(std::fs::read(entry.expect("entry").path()).expect("read corpus file"));
    }
    seeds
}

#[test]
fn mutated_dicom_files_are_refused_or_accepted_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeds = dicom_seeds(dir.path());
    let mut rng = fastrand::Rng::with_seed(seed_for("dicom", 0x00D1_C04D));
    let before = peak_rss();
    let path = dir.path().join("mutant.dcm");
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..iterations(1500) {
        let seed = &seeds[i % seeds.len()];
        let mutant = mutate(&mut rng, seed);
        std::fs::write(&path, &mutant).expect("write mutant");
        match std::panic::catch_unwind(|| inspect(&path)) {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => {
                let keep = dir.path().join("panicked.dcm");
                std::fs::copy(&path, &keep).expect("keep mutant");
                panic!(
                    "inspect panicked on mutant {i} of seed {} (kept at {})",
                    i % seeds.len(),
                    keep.display()
                );
            }
        }
    }
    println!("dicom: {accepted} accepted, {refused} refused");
    assert!(refused > accepted / 4, "mutations are mostly refused ({refused} refused, {accepted} accepted)");
    assert!(peak_rss() < before + MEMORY_GROWTH_LIMIT, "memory grew from {before} to {}", peak_rss());
}

/// Encoded commands and stored entities of a small real region: the codec seeds.
fn codec_seeds() -> Vec<Vec<u8>> {
    let mut region = Region::default();
    let mut seeds = Vec::new();
    let ops = Actor::ops("fuzz");
    let commands = [
        serde_json::json!({"register_facility": {"id": "CTY", "name": "县医院", "level": "county", "region": "r", "parent": null}}),
        serde_json::json!({"register_facility": {"id": "TS", "name": "镇卫生院", "level": "township", "region": "r", "parent": "CTY"}}),
        serde_json::json!({"register_specialist": {"id": "DR", "name": "医生", "facility": "CTY", "specialty": "cardiology", "modalities": ["ECG"], "cap": 5, "on_shift": true}}),
    ];
    for (i, change) in commands.into_iter().enumerate() {
        let change = serde_json::from_value(change).expect("change");
        let command = Command::new(ops.clone(), change);
        let applied = region.apply(1_000 + i as u64, &command);
        applied.result.expect("seed command applies");
        seeds.push(encode(&command).expect("encode command"));
        for key in &applied.touched {
            if let Some(entity) = region.entity(key) {
                seeds.push(encode(&entity).expect("encode entity"));
            }
        }
    }
    seeds
}

#[test]
fn mutated_codec_bytes_are_refused_never_a_panic() {
    let seeds = codec_seeds();
    let mut rng = fastrand::Rng::with_seed(seed_for("codec", 0xC0DEC));
    let before = peak_rss();
    let mut refused = 0;
    for i in 0..iterations(5000) {
        let mutant = mutate(&mut rng, &seeds[i % seeds.len()]);
        let result = std::panic::catch_unwind(|| {
            let c = decode::<Command>(&mutant).is_err();
            let e = decode::<Entity>(&mutant).is_err();
            let p = decode::<PeerRequest>(&mutant).is_err();
            c && e && p
        });
        match result {
            Ok(all_refused) => refused += usize::from(all_refused),
            Err(_) => panic!("decoding panicked on mutant {i}: {mutant:02x?}"),
        }
    }
    println!("codec: {refused} mutants refused by every decoder");
    assert!(refused > 0);
    assert!(peak_rss() < before + MEMORY_GROWTH_LIMIT, "memory grew from {before} to {}", peak_rss());
}

/// One request of the API corpus: `METHOD PATH AS`, a blank line, the body.
struct SeedRequest {
    name: String,
    method: reqwest::Method,
    path: String,
    who: String,
    body: String,
}

fn api_corpus() -> Vec<SeedRequest> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/api");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("tests/fuzz/api").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read request");
            let (head, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
            let mut words = head.split_whitespace();
            let (method, path, who) = (words.next(), words.next(), words.next());
            let (Some(method), Some(path), Some(who)) = (method, path, who) else {
                panic!("{}: first line must be `METHOD PATH AS`", f.display())
            };
            SeedRequest {
                name: f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                method: method.parse().expect("HTTP method"),
                path: path.to_owned(),
                who: who.to_owned(),
                body: body.trim().to_owned(),
            }
        })
        .collect()
}

/// The bearer token a corpus request is sent with.
async fn token_for(cluster: &TestCluster, who: &str) -> Option<String> {
    match who {
        "anonymous" => None,
        "admin" => Some(cluster.admin_token()),
        spec => Some(token(&cluster.api(1), spec).await),
    }
}

/// Send `body` (bytes) to `path` on node 1; the status and the answer.
async fn send(cluster: &TestCluster, seed: &SeedRequest, path: &str, body: Vec<u8>) -> Option<(u16, String)> {
    let url = format!("http://{}{path}", cluster.node(1).api_addr);
    let mut req = reqwest::Client::new().request(seed.method.clone(), &url);
    if let Some(t) = token_for(cluster, &seed.who).await {
        req = req.bearer_auth(t);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json").body(body);
    }
    // A mutant that is not even a valid URL never leaves the client.
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_api_requests_get_client_errors_never_a_crash() {
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    cluster.wait_leader(&[1]).await;
    let api = cluster.api(1);
    seed_region(&api).await;
    let corpus = api_corpus();
    let fill = |text: &str, case: &str, tag: &str| {
        text.replace("{CASE}", case).replace("{PATIENT}", &patient_id(tag))
    };

    // Every seed is a request that works as written.
    for (i, seed) in corpus.iter().enumerate() {
        let case = submit_retrying(&api, &format!("fuzz-seed-{i}")).await;
        let status = send(
            &cluster,
            seed,
            &fill(&seed.path, &case, &seed.name),
            fill(&seed.body, &case, &seed.name).into_bytes(),
        )
        .await;
        assert!(
            status.as_ref().is_some_and(|(s, _)| (200..300).contains(s)),
            "seed {} should succeed as written, got {status:?}",
            seed.name
        );
    }

    let case = submit_retrying(&api, "fuzz-target").await;
    let mut rng = fastrand::Rng::with_seed(seed_for("api", 0xA91));
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..iterations(300) {
        let seed = &corpus[i % corpus.len()];
        let tag = format!("fuzz-{i}");
        let (path, body) = if seed.body.is_empty() {
            let path = String::from_utf8_lossy(&mutate(&mut rng, fill(&seed.path, &case, &tag).as_bytes()))
                .into_owned();
            (path, Vec::new())
        } else {
            (fill(&seed.path, &case, &tag), mutate(&mut rng, fill(&seed.body, &case, &tag).as_bytes()))
        };
        let Some((status, answer)) = send(&cluster, seed, &path, body.clone()).await else { continue };
        *statuses.entry(status).or_default() += 1;
        assert!(
            status < 500 || status == 503,
            "mutant {i} of {} got {status} ({answer}): {} {path}\n{}\nnode log:\n{}",
            seed.name,
            seed.method,
            String::from_utf8_lossy(&body),
            cluster.log_of(1)
        );
    }
    println!("api: answers by status {statuses:?}");
    let live = reqwest::get(format!("http://{}/livez", cluster.node(1).api_addr)).await.expect("livez");
    assert_eq!(live.status().as_u16(), 200, "the node is still alive");
    assert!(!cluster.log_of(1).contains("panicked"), "no panic in the node log:\n{}", cluster.log_of(1));
}
