//! Crash consistency for images: a seeded [`Plan`] kills node processes (-9) at random points
//! while images arrive (`yilian upload` over QUIC, DCMTK `storescu`, STOW-RS) and while nodes
//! prefetch studies from each other (the fetching node, or the node it fetches from); the node
//! restarts from its data directory. After every kill, and again once transfers settle:
//!
//! - every file under each store's `objects/` hashes to its name (nothing partial or corrupt is
//!   visible as an object);
//! - the manifest (Raft) names a node as a holder of an instance only if its store has it;
//! - every instance a running node lists (QIDO-RS) is in the manifest, and WADO-RS serves
//!   exactly its bytes;
//! - every STOW-RS instance acknowledged before a kill is in the manifest after it;
//! - uploads resume (the second run sends only the missing chunks), a killed fetcher resumes
//!   from its verified chunks (`yilian_transfer_chunks_resumed`), and no chunk is fetched twice
//!   or an object started over when the source dies;
//! - once settled, every node holds every study, and its store holds exactly the objects the
//!   manifest records it holding.
//!
//! The plan is printed with its seed; [`run`] with the same seed replays it.

mod check;
pub mod plan;

pub use plan::{Phase, Plan, Step};

use crate::harness::{free_port, seed_region, submit_retrying, token, TestCluster, FAST_RAFT, NURSE};
use crate::imaging_client::{output_text, sent_and_held, storescu, stow, upload_cmd};
use check::{held_by, manifests, objects_on_disk, served, READER};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use yilian_dicom::inspect;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};

/// Chunk size of the upload phase, in KiB.
const UPLOAD_CHUNK_KIB: u64 = 256;
/// Chunk size of node-to-node fetches (the fetcher's default).
const FETCH_CHUNK: u64 = 1 << 20;
/// Every node serves the county hospital's readers; fetches are capped so a kill lands mid-way.
const LINK_MBIT: u64 = 32;
/// How long transfers may take to settle after a phase.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
const MIB: u64 = 1 << 20;
/// CT slices (128×128) sent in the DIMSE and STOW phases.
const INGEST_SLICES: u32 = 32;

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plan run.
    pub plan: Plan,
    /// Seconds each step took, until its transfers settled and were checked.
    pub seconds: Vec<f64>,
    /// Kills made.
    pub kills: u32,
    /// Instances ingested, of all studies.
    pub instances: usize,
    /// Chunks killed fetchers resumed from instead of fetching again.
    pub chunks_resumed: u64,
    /// Upload chunks a second run did not send again.
    pub upload_chunks_held: u64,
    /// What went wrong, with the step it went wrong in.
    pub violations: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "image crash seed {}: {:.0} s, {} kill(s), {} instance(s), {} fetch chunk(s) resumed, {} upload chunk(s) kept; {} violation(s)",
            self.plan.seed,
            self.seconds.iter().sum::<f64>(),
            self.kills,
            self.instances,
            self.chunks_resumed,
            self.upload_chunks_held,
            self.violations.len()
        )?;
        for v in &self.violations {
            writeln!(f, "  ✗ {v}")?;
        }
        Ok(())
    }
}

/// Run the plan of `seed` on a fresh three-node cluster and report what it found.
pub async fn run(seed: u64) -> Report {
    let plan = Plan::new(seed);
    println!("{plan}");
    let mut run = Run::start(plan.clone()).await;
    let mut seconds = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let name = format!("step {} ({step})", i + 1);
        let started = Instant::now();
        let outcome = run.step(i as u64, *step, &name).await;
        seconds.push(started.elapsed().as_secs_f64());
        println!("  step {} done in {:.1} s", i + 1, started.elapsed().as_secs_f64());
        if let Err(stop) = outcome {
            run.violation(&name, stop);
            break;
        }
    }
    if run.violations.is_empty() {
        run.verified.values_mut().for_each(BTreeSet::clear);
        let all = run.studies.clone();
        run.check("the end, every object re-hashed", &all, true).await;
    }
    Report {
        seconds,
        plan,
        kills: run.kills,
        instances: run.instances,
        chunks_resumed: run.chunks_resumed,
        upload_chunks_held: run.upload_chunks_held,
        violations: run.violations,
    }
}

/// A run in progress.
struct Run {
    cluster: TestCluster,
    dir: tempfile::TempDir,
    seed: u64,
    dimse_ports: BTreeMap<u64, u16>,
    studies: BTreeSet<String>,
    verified: BTreeMap<u64, BTreeSet<String>>,
    kills: u32,
    instances: usize,
    chunks_resumed: u64,
    upload_chunks_held: u64,
    violations: Vec<String>,
}

/// A file about to be sent: path, Study and SOP Instance UIDs, SHA-256.
struct File {
    path: PathBuf,
    study: String,
    sop: String,
    sha256: String,
}

impl Run {
    async fn start(plan: Plan) -> Run {
        let toml =
            format!("{FAST_RAFT}\n[imaging]\nserves = [\"CTY\"]\nlink_rate_limit_mbit = {LINK_MBIT}\n");
        let mut cluster = TestCluster::empty(&toml);
        let mut dimse_ports = BTreeMap::new();
        for id in 1..=plan::NODES {
            let port = free_port();
            cluster.set_node_toml(id, &format!("dimse_addr = \"127.0.0.1:{port}\"\nae_title = \"YILIAN\"\n"));
            dimse_ports.insert(id, port);
        }
        cluster.form(plan::NODES).await;
        seed_region(&cluster.api(1)).await;
        token(&cluster.api(1), NURSE).await;
        token(&cluster.api(1), READER).await;
        Run {
            cluster,
            dir: tempfile::tempdir().expect("tempdir"),
            seed: plan.seed,
            dimse_ports,
            studies: BTreeSet::new(),
            verified: BTreeMap::new(),
            kills: 0,
            instances: 0,
            chunks_resumed: 0,
            upload_chunks_held: 0,
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, when: &str, what: impl fmt::Display) {
        let line = format!("{when}: {what}");
        eprintln!("image crash seed {}: {line}", self.seed);
        self.violations.push(line);
    }

    /// Run step `index`; an `Err` means the run cannot go on (what it says is a violation).
    async fn step(&mut self, index: u64, step: Step, name: &str) -> Result<(), String> {
        let case =
            submit_retrying(&self.cluster.api(step.ingest), &format!("crash-{}-{index}", self.seed)).await;
        let synth_seed = self.seed.wrapping_mul(16).wrapping_add(index);
        let dir = self.dir.path().join(format!("step-{index}"));
        let studies = match step.phase {
            Phase::Upload => {
                let ct = synthesize(&dir.join("ct"), SynthKind::Ct, &case, synth_seed, |o| o);
                let dr = synthesize(&dir.join("dr"), SynthKind::Dr, &case, synth_seed + 8, |o| {
                    SynthOptions { dr_matrix: 1024, ..o }
                });
                let files: Vec<File> = ct.into_iter().chain(dr).collect();
                self.upload_killed(step, &case, &files, name).await?;
                files
            }
            Phase::Dimse | Phase::Stow => {
                let files = synthesize(&dir, SynthKind::Ct, &case, synth_seed, |o| SynthOptions {
                    ct_slices: INGEST_SLICES,
                    ct_matrix: 128,
                    ..o
                });
                if step.phase == Phase::Dimse {
                    self.dimse_killed(step, &files, name).await?;
                } else {
                    self.stow_killed(step, &files, name).await?;
                }
                files
            }
            Phase::KillFetcher | Phase::KillSource => {
                let files = synthesize(&dir, SynthKind::Dr, &case, synth_seed, |o| SynthOptions {
                    dr_matrix: 2048,
                    ..o
                });
                let expected = self.prefetch_killed(step, &case, &files, name).await?;
                self.instances += files.len();
                self.settle(&studies_of(&files), name).await?;
                return self.check_fetch_counters(step, expected, name).await;
            }
        };
        self.instances += studies.len();
        self.settle(&studies_of(&studies), name).await
    }

    /// Kill node `id` -9 and check what its data directory and the others show.
    async fn kill(&mut self, id: u64, studies: &BTreeSet<String>, name: &str) {
        self.cluster.kill9(id);
        self.kills += 1;
        self.check(&format!("{name}, node {id} just killed"), studies, false).await;
    }

    /// Keep node `id` down for `down_ms`, then start it again from its data directory.
    async fn restart(&mut self, id: u64, down_ms: u64) {
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        self.cluster.restart(id);
        self.cluster.wait_alive().await;
    }

    async fn upload_killed(
        &mut self,
        step: Step,
        case: &str,
        files: &[File],
        name: &str,
    ) -> Result<(), String> {
        let a = step.ingest;
        let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        let chunks: u64 =
            files.iter().map(|f| size_of(&f.path).div_ceil(UPLOAD_CHUNK_KIB << 10).max(1)).sum();
        let accepted = "yilian_upload_chunks_accepted";
        let base = self.cluster.metric(a, accepted).await;
        let chunk_kib = UPLOAD_CHUNK_KIB.to_string();
        let limit = (LINK_MBIT * 1000).to_string();
        let slow = ["--chunk-kib", &chunk_kib, "--streams", "2", "--limit-kbit", &limit];
        let mut first =
            upload_cmd(&self.cluster, a, case, &paths, &slow).spawn().map_err(|e| e.to_string())?;
        let held_at_kill = self.wait_metric(a, accepted, base + step.at).await? - base;
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        self.kill(a, &studies_of(files), name).await;
        let _ = first.start_kill();
        let _ = first.wait().await;
        self.restart(a, step.down_ms).await;

        let chunk = ["--chunk-kib", &chunk_kib, "--commit"];
        let out = retry("the second upload", || upload_cmd(&self.cluster, a, case, &paths, &chunk).output())
            .await?;
        let (sent, held) = sent_and_held(&output_text(&out))?;
        if sent + held != chunks {
            self.violation(name, format!("the second upload sent {sent} and kept {held} chunks of {chunks}"));
        }
        if held < held_at_kill {
            self.violation(
                name,
                format!("the node had accepted {held_at_kill} chunks before the kill but kept only {held}: the upload restarted instead of resuming"),
            );
        }
        self.upload_chunks_held += held;
        Ok(())
    }

    async fn dimse_killed(&mut self, step: Step, files: &[File], name: &str) -> Result<(), String> {
        let a = step.ingest;
        let port = self.dimse_ports[&a];
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        let recorded = "yilian_ingest_instances_recorded";
        let base = self.cluster.metric(a, recorded).await;
        let first = storescu(port, &paths).spawn().map_err(|e| format!("storescu: {e}"))?;
        self.wait_metric(a, recorded, base + step.at).await?;
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        self.kill(a, &studies_of(files), name).await;
        self.restart(a, step.down_ms).await;
        let _ = first.wait_with_output().await;
        retry("storescu after the restart", || storescu(port, &paths).output()).await?;
        Ok(())
    }

    async fn stow_killed(&mut self, step: Step, files: &[File], name: &str) -> Result<(), String> {
        let a = step.ingest;
        let addr = self.cluster.node(a).api_addr.clone();
        let nurse = token(&self.cluster.api(a), NURSE).await;
        let recorded = "yilian_ingest_instances_recorded";
        let base = self.cluster.metric(a, recorded).await;
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let mine: Vec<(String, PathBuf)> =
                    files.iter().skip(c).step_by(4).map(|f| (f.sop.clone(), f.path.clone())).collect();
                let (addr, nurse) = (addr.clone(), nurse.clone());
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for (sop, path) in mine {
                        let bytes = std::fs::read(&path).expect("synthetic file");
                        match stow(&addr, "", Some(&nurse), &[("application/dicom", bytes)]).await {
                            Ok((200, _)) => acked.push(sop),
                            _ => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        self.wait_metric(a, recorded, base + step.at).await?;
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        let studies = studies_of(files);
        self.kill(a, &studies, name).await;
        let mut acked = BTreeSet::new();
        for client in clients {
            acked.extend(client.await.unwrap_or_default());
        }
        let recorded = manifests(&self.cluster, &studies).await?;
        for f in files.iter().filter(|f| acked.contains(&f.sop)) {
            let kept = recorded.values().any(|m| {
                m.instances.get(&f.sop).is_some_and(|i| i.record.sha256 == f.sha256 && i.holders.contains(&a))
            });
            if !kept {
                self.violation(
                    name,
                    format!(
                        "instance {} was acknowledged (200) but is not in the manifest as held by node {a}",
                        f.sop
                    ),
                );
            }
        }
        self.restart(a, step.down_ms).await;
        for f in files {
            let bytes = std::fs::read(&f.path).map_err(|e| e.to_string())?;
            let sent = retry_async("STOW-RS after the restart", || {
                let (addr, nurse, bytes) = (addr.clone(), nurse.clone(), bytes.clone());
                async move {
                    match stow(&addr, "", Some(&nurse), &[("application/dicom", bytes)]).await {
                        Ok((200, _)) => Ok(()),
                        Ok((status, answer)) => Err(format!("{status}: {answer}")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
            sent?;
        }
        Ok(())
    }

    /// Upload a study into the ingest node and kill the victim once the watched fetcher has
    /// fetched `at` MiB of it; what the fetchers' counters must show once it settled.
    async fn prefetch_killed(
        &mut self,
        step: Step,
        case: &str,
        files: &[File],
        name: &str,
    ) -> Result<FetchExpectation, String> {
        let a = step.ingest;
        let fetchers: Vec<u64> = (1..=plan::NODES).filter(|n| *n != a).collect();
        let watched = if step.phase == Phase::KillFetcher { step.victim } else { fetchers[0] };
        let mut before = BTreeMap::new();
        for f in &fetchers {
            before.insert(*f, self.fetch_counters(*f).await);
        }
        let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        retry("the upload", || upload_cmd(&self.cluster, a, case, &paths, &["--commit"]).output()).await?;
        let bytes = "yilian_transfer_bytes_fetched";
        self.wait_metric(watched, bytes, before[&watched].bytes + step.at * MIB).await?;
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        let digests: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
        let partial_at_kill = !self.stores_all(step.victim, &digests);
        self.kill(step.victim, &studies_of(files), name).await;
        self.restart(step.victim, step.down_ms).await;
        let chunks = files.iter().map(|f| size_of(&f.path).div_ceil(FETCH_CHUNK)).sum();
        Ok(FetchExpectation { before, chunks, partial_at_kill })
    }

    /// Once a prefetch phase settled: a killed fetcher resumed from its verified chunks, and a
    /// fetcher whose source was killed fetched no chunk twice; nobody started an object over.
    async fn check_fetch_counters(
        &mut self,
        step: Step,
        expected: FetchExpectation,
        name: &str,
    ) -> Result<(), String> {
        let chunks = expected.chunks;
        for (f, was) in expected.before {
            let now = self.fetch_counters(f).await;
            if f == step.victim {
                self.chunks_resumed += now.resumed;
                if expected.partial_at_kill && (now.resumed == 0 || now.resumed + now.fetched != chunks) {
                    self.violation(name, format!(
                        "node {f} was killed with the study partly fetched; after the restart it resumed {} and fetched {} of {chunks} chunks",
                        now.resumed, now.fetched
                    ));
                }
                if now.restarted > 0 {
                    self.violation(name, format!("node {f} started {} object(s) over after the restart: a chunk it had verified was not", now.restarted));
                }
            } else {
                let (fetched, restarted) = (now.fetched - was.fetched, now.restarted - was.restarted);
                if fetched != chunks || restarted > 0 {
                    self.violation(name, format!(
                        "node {f} fetched {fetched} chunks of a {chunks}-chunk study and started {restarted} object(s) over; it should fetch each chunk once"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Wait until every node holds every instance of `studies`, then check everything.
    async fn settle(&mut self, studies: &BTreeSet<String>, name: &str) -> Result<(), String> {
        self.studies.extend(studies.iter().cloned());
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let found = manifests(&self.cluster, studies).await?;
            let unrecorded = studies.iter().filter(|uid| !found.contains_key(*uid));
            let missing: Vec<String> = unrecorded
                .map(|uid| format!("study {uid} is not recorded"))
                .chain(found.values().flat_map(|m| {
                    (1..=plan::NODES)
                        .filter(|n| !m.held_by(*n))
                        .map(|n| format!("node {n} lacks study {}", m.study_uid))
                }))
                .collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "transfers did not settle within {SETTLE_WITHIN:?}: {}",
                    missing.join("; ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.check(&format!("{name}, settled"), studies, true).await;
        Ok(())
    }

    /// Check every node's store, the manifests of `studies` and what running nodes serve of them.
    async fn check(&mut self, when: &str, studies: &BTreeSet<String>, settled: bool) {
        let everything = match manifests(&self.cluster, &self.studies.union(studies).cloned().collect()).await
        {
            Ok(m) => m,
            Err(e) => return self.violation(when, e),
        };
        for id in 1..=plan::NODES {
            let store = self.cluster.node(id).data_dir().join("objects");
            let verified = self.verified.entry(id).or_default();
            let objects = match objects_on_disk(&store, verified) {
                Ok(objects) => objects,
                Err(e) => {
                    self.violation(when, format!("node {id}: {e}"));
                    continue;
                }
            };
            for problem in objects.values().flatten().cloned().collect::<Vec<_>>() {
                self.violation(when, format!("node {id}: {problem}"));
            }
            let held = held_by(&everything, id);
            for sha in held.iter().filter(|sha| !objects.contains_key(*sha)) {
                self.violation(
                    when,
                    format!("the manifest records node {id} holding {sha}, but its store lacks it"),
                );
            }
            if settled && self.studies.iter().all(|s| everything.contains_key(s)) {
                for name in objects.keys().filter(|n| !held.contains(*n)) {
                    self.violation(
                        when,
                        format!("node {id} stores {name}, which the manifest does not record it holding"),
                    );
                }
            }
            if self.cluster.running().contains(&id) {
                for study in studies.iter().filter_map(|uid| everything.get(uid)) {
                    for problem in served(&self.cluster, id, study, settled).await {
                        self.violation(when, problem);
                    }
                }
            }
        }
    }

    /// Whether node `id`'s store holds every object of `digests`.
    fn stores_all(&self, id: u64, digests: &[String]) -> bool {
        let objects = self.cluster.node(id).data_dir().join("objects").join("objects");
        digests.iter().all(|d| objects.join(&d[..2]).join(d).is_file())
    }

    /// Poll `metric` on node `id` until it reaches `target`; its value then.
    async fn wait_metric(&self, id: u64, metric: &str, target: u64) -> Result<u64, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.cluster.metric(id, metric).await;
            if value >= target {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(format!("node {id}'s {metric} stayed at {value}, below the kill point {target}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn fetch_counters(&self, id: u64) -> FetchCounters {
        FetchCounters {
            bytes: self.cluster.metric(id, "yilian_transfer_bytes_fetched").await,
            fetched: self.cluster.metric(id, "yilian_transfer_chunks_fetched").await,
            resumed: self.cluster.metric(id, "yilian_transfer_chunks_resumed").await,
            restarted: self.cluster.metric(id, "yilian_transfer_objects_restarted").await,
        }
    }
}

/// What the fetchers' counters must show once a prefetch phase settled.
struct FetchExpectation {
    /// Each fetcher's counters before the study was uploaded.
    before: BTreeMap<u64, FetchCounters>,
    /// Chunks of the study.
    chunks: u64,
    /// Whether the victim lacked part of the study when it was killed.
    partial_at_kill: bool,
}

/// A node's fetch counters (since it started).
struct FetchCounters {
    bytes: u64,
    fetched: u64,
    resumed: u64,
    restarted: u64,
}

/// Synthetic files of one `kind` study for `case`, from `SynthOptions::small(seed)` adjusted by
/// `options`.
fn synthesize(
    dir: &Path,
    kind: SynthKind,
    case: &str,
    seed: u64,
    options: impl FnOnce(SynthOptions) -> SynthOptions,
) -> Vec<File> {
    let opts = options(SynthOptions { accession: Some(case.to_owned()), ..SynthOptions::small(seed) });
    let summary = generate(dir, &[kind], &opts).expect("synthetic study");
    summary
        .studies
        .into_iter()
        .flat_map(|s| s.files)
        .map(|path| {
            let info = inspect(&path).expect("synthetic file inspects");
            File {
                path,
                study: info.study_instance_uid,
                sop: info.sop_instance_uid,
                sha256: info.sha256.to_hex(),
            }
        })
        .collect()
}

/// The Study Instance UIDs of `files`.
fn studies_of(files: &[File]) -> BTreeSet<String> {
    files.iter().map(|f| f.study.clone()).collect()
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Run a command until it succeeds (a restarted node may take a moment to accept), at most
/// five times.
async fn retry<F, Fut>(what: &str, mut command: F) -> Result<Output, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Output>>,
{
    retry_async(what, || {
        let run = command();
        async move {
            match run.await {
                Ok(out) if out.status.success() => Ok(out),
                Ok(out) => Err(output_text(&out)),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

/// Try `attempt` until it succeeds, at most five times a second apart.
async fn retry_async<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..5 {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("{what} failed five times; last: {last}"))
}
