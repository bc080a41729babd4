//! Chunked, verified, resumable transfer over real QUIC on loopback with mutual TLS from an
//! in-process CA, real stores in temp dirs and real synthetic DICOM files.

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use yilian_dicom::transfer::chunking::hash_file_chunks;
use yilian_dicom::transfer::protocol::{exchange, BeginUpload, UploadRequest, UploadResponse};
use yilian_dicom::transfer::{
    serve_fetch_connection, serve_upload_connection, upload_file_with, ChunkList, ChunkSource, Connector,
    FetchConfig, FetchCounters, FetchEvent, FetchJob, Fetcher, ReceiveWindow, SourceError, SourceId,
    StoreChunkSource, UploadError, UploadLimits, UploadMeta, UploadOptions, UploadReceiver, UploadSink,
    ALPN_DICOM, PRIORITY_ROUTINE, PRIORITY_STAT,
};
use yilian_dicom::{generate, Digest, Store, SynthKind, SynthOptions};

const CHUNK: u32 = 64 << 10;
const SERVER_NAME: &str = "node-1.yilian";
/// Upper bound for any wait in these tests; only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- TLS and endpoints

struct Tls {
    server: quinn::ServerConfig,
    client: quinn::ClientConfig,
}

/// A test CA and one node certificate (server and client auth), as quinn mTLS configs.
fn tls() -> Tls {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![SERVER_NAME.to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let roots = Arc::new(roots);
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let private = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), private())
        .unwrap();
    server.alpn_protocols = vec![ALPN_DICOM.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, private())
        .unwrap();
    client.alpn_protocols = vec![ALPN_DICOM.to_vec()];
    Tls {
        server: quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server).unwrap())),
        client: quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).unwrap())),
    }
}

/// A serving node: accepts connections (or refuses them while `down`) and serves each with `serve`.
struct TestServer {
    endpoint: quinn::Endpoint,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<quinn::Connection>>>,
}

impl TestServer {
    fn start<F, Fut>(tls: &Tls, serve: F) -> TestServer
    where
        F: Fn(quinn::Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let endpoint = quinn::Endpoint::server(tls.server.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<quinn::Connection>>> = Arc::default();
        let (ep, d, c) = (endpoint.clone(), down.clone(), conns.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                if d.load(Ordering::SeqCst) {
                    incoming.refuse();
                    continue;
                }
                let Ok(conn) = incoming.await else { continue };
                c.lock().unwrap().push(conn.clone());
                tokio::spawn(serve(conn));
            }
        });
        TestServer { endpoint, down, conns }
    }

    fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap()
    }

    /// Close every open connection and refuse new ones until `restore`.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.close(0u32.into(), b"cut by test");
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn fetch_server<S: ChunkSource>(tls: &Tls, source: Arc<S>) -> TestServer {
    TestServer::start(tls, move |conn| serve_fetch_connection(conn, source.clone()))
}

fn client_endpoint(tls: &Tls) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls.client.clone());
    endpoint
}

struct TestConnector {
    endpoint: quinn::Endpoint,
    addrs: HashMap<SourceId, SocketAddr>,
}

impl Connector for TestConnector {
    async fn connect(&self, source: &SourceId) -> Result<quinn::Connection, String> {
        let addr = self.addrs.get(source).ok_or_else(|| format!("unknown source {source}"))?;
        self.endpoint.connect(*addr, SERVER_NAME).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())
    }
}

fn connector(tls: &Tls, sources: &[(&str, &TestServer)]) -> Arc<TestConnector> {
    let addrs = sources.iter().map(|(name, server)| (SourceId((*name).into()), server.addr())).collect();
    Arc::new(TestConnector { endpoint: client_endpoint(tls), addrs })
}

// ---------------------------------------------------------------- chunk sources for faults

/// Serves a store, but only as many chunks as `gate` has permits (then stalls), and flips one
/// byte of one chunk the first time it is served.
struct FaultySource {
    inner: StoreChunkSource,
    gate: Arc<Semaphore>,
    corrupt: Option<(Digest, u32)>,
    corrupted: AtomicBool,
    served: AtomicU64,
}

impl FaultySource {
    fn new(store: Arc<Store>, gate: usize, corrupt: Option<(Digest, u32)>) -> Arc<Self> {
        Arc::new(FaultySource {
            inner: StoreChunkSource::new(store, 16),
            gate: Arc::new(Semaphore::new(gate)),
            corrupt,
            corrupted: AtomicBool::new(false),
            served: AtomicU64::new(0),
        })
    }

    fn open_gate(&self) {
        self.gate.add_permits(1 << 20);
    }
}

impl ChunkSource for FaultySource {
    async fn chunk_list(&self, digest: Digest, chunk_size: u32) -> Result<ChunkList, SourceError> {
        self.inner.chunk_list(digest, chunk_size).await
    }

    async fn chunk(&self, digest: Digest, chunk_size: u32, index: u32) -> Result<Vec<u8>, SourceError> {
        self.gate.acquire().await.unwrap().forget();
        let mut bytes = self.inner.chunk(digest, chunk_size, index).await?;
        if self.corrupt == Some((digest, index)) && !self.corrupted.swap(true, Ordering::SeqCst) {
            bytes[100] ^= 0x55;
        }
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(bytes)
    }
}

// ---------------------------------------------------------------- data and helpers

/// A study of 4 small CT slices and one 1024² DR (2 MiB), stored in `store`; returns the manifest.
fn study(dir: &Path, store: &Store, seed: u64, ct_slices: u32, ct_matrix: u16) -> Vec<(Digest, u64)> {
    let opts = SynthOptions { ct_slices, ct_matrix, dr_matrix: 1024, ..SynthOptions::small(seed) };
    let summary = generate(dir, &[SynthKind::Ct, SynthKind::Dr], &opts).unwrap();
    let files: Vec<PathBuf> = summary.studies.iter().flat_map(|s| s.files.clone()).collect();
    files
        .iter()
        .map(|f| {
            let put = store.put_file(f).unwrap();
            (put.digest, put.size)
        })
        .collect()
}

/// Objects larger than one chunk: the ones fetched by chunk list.
fn multi_chunk(objects: &[(Digest, u64)]) -> u64 {
    objects.iter().filter(|(_, size)| *size > u64::from(CHUNK)).count() as u64
}

fn total_chunks(objects: &[(Digest, u64)]) -> u64 {
    objects.iter().map(|(_, size)| size.div_ceil(u64::from(CHUNK))).sum()
}

fn config() -> FetchConfig {
    FetchConfig {
        chunk_size: CHUNK,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        ..FetchConfig::default()
    }
}

fn job(id: &str, priority: u8, objects: &[(Digest, u64)], sources: &[&str]) -> FetchJob {
    FetchJob {
        id: id.into(),
        priority,
        objects: objects.to_vec(),
        sources: sources.iter().map(|s| SourceId((*s).into())).collect(),
    }
}

/// Wait for `cond`, polling; panics after [`PATIENCE`] (something is broken, not slow).
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let poll = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, poll).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"));
}

/// Collect events until every job in `jobs` completed or failed.
async fn events_until_done(rx: &mut mpsc::UnboundedReceiver<FetchEvent>, jobs: &[&str]) -> Vec<FetchEvent> {
    let mut events = Vec::new();
    let collect = async {
        let mut open: Vec<String> = jobs.iter().map(|j| (*j).to_owned()).collect();
        while !open.is_empty() {
            let event = rx.recv().await.expect("event channel open");
            if let FetchEvent::JobComplete { job } | FetchEvent::JobFailed { job, .. } = &event {
                open.retain(|j| j != job);
            }
            events.push(event);
        }
    };
    tokio::time::timeout(PATIENCE, collect).await.expect("jobs did not finish");
    events
}

fn completed(events: &[FetchEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            FetchEvent::JobComplete { job } => Some(job.clone()),
            _ => None,
        })
        .collect()
}

/// Every object is in `dst`, verifies, and is byte-identical to the copy in `src`.
fn assert_identical(src: &Store, dst: &Store, objects: &[(Digest, u64)]) {
    for (digest, size) in objects {
        assert_eq!(dst.verify(digest).unwrap(), *size);
        let a = std::fs::read(src.path_of(digest)).unwrap();
        let b = std::fs::read(dst.path_of(digest)).unwrap();
        assert!(a == b, "object {digest} differs");
    }
}

struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    src: Arc<Store>,
    dst: Arc<Store>,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let src = Arc::new(Store::open(root.join("src-store")).unwrap());
    let dst = Arc::new(Store::open(root.join("dst-store")).unwrap());
    Node { _dir: dir, root, src, dst }
}

// ---------------------------------------------------------------- fetch tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_of_a_study_is_byte_identical_and_skips_a_source_without_it() {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, 1, 4, 64);
    let tls = tls();
    let empty = Arc::new(Store::open(n.root.join("empty-store")).unwrap());
    let lacking = fetch_server(&tls, Arc::new(StoreChunkSource::new(empty, 16)));
    let holding = fetch_server(&tls, Arc::new(StoreChunkSource::new(n.src.clone(), 16)));
    let conn = connector(&tls, &[("lacking", &lacking), ("holding", &holding)]);
    let (fetcher, mut rx) =
        Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, config()).await.unwrap();
    fetcher.submit(job("study-1", PRIORITY_ROUTINE, &objects, &["lacking", "holding"])).await.unwrap();

    let events = events_until_done(&mut rx, &["study-1"]).await;
    assert_eq!(completed(&events), vec!["study-1"]);
    let stored = events.iter().filter(|e| matches!(e, FetchEvent::ObjectStored { .. })).count();
    assert_eq!(stored, objects.len());
    assert_identical(&n.src, &n.dst, &objects);
    let c = fetcher.counters();
    assert_eq!(c.chunks_fetched, total_chunks(&objects));
    assert_eq!(c.objects_stored, objects.len() as u64);
    assert_eq!(c.chunk_lists_fetched, multi_chunk(&objects), "single-chunk objects need no chunk list");
    assert!(multi_chunk(&objects) < objects.len() as u64, "the study has single-chunk objects too");
    assert!(fetcher.progress("study-1").is_none(), "a complete job is forgotten");
    fetcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_held_by_no_source_fails_the_job_clearly() {
    let n = node();
    let tls = tls();
    let empty = fetch_server(&tls, Arc::new(StoreChunkSource::new(n.src.clone(), 16)));
    let conn = connector(&tls, &[("empty", &empty)]);
    let (fetcher, mut rx) =
        Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, config()).await.unwrap();
    let missing = [(Digest::of_bytes(b"nobody has this"), 1000)];
    fetcher.submit(job("lost", PRIORITY_ROUTINE, &missing, &["empty"])).await.unwrap();
    let events = events_until_done(&mut rx, &["lost"]).await;
    match events.last() {
        Some(FetchEvent::JobFailed { error, .. }) => {
            assert!(error.contains("not held by this node"), "{error}");
            assert!(error.contains("submit the job again"), "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    fetcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_resumes_without_refetching_verified_chunks() {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, 2, 4, 64);
    let tls = tls();
    let source = FaultySource::new(n.src.clone(), 8, None);
    let server = fetch_server(&tls, source.clone());
    let conn = connector(&tls, &[("a", &server)]);
    let (fetcher, mut rx) =
        Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, config()).await.unwrap();
    fetcher.submit(job("study-2", PRIORITY_ROUTINE, &objects, &["a"])).await.unwrap();

    wait_until("8 verified chunks", || fetcher.counters().chunks_fetched == 8).await;
    server.cut();
    wait_until("a refused reconnect", || fetcher.counters().connect_failures >= 1).await;
    let partway = fetcher.progress("study-2").unwrap();
    assert!(partway.bytes_done > 0 && partway.bytes_done < partway.bytes_total);
    server.restore();
    source.open_gate();

    let events = events_until_done(&mut rx, &["study-2"]).await;
    assert_eq!(completed(&events), vec!["study-2"]);
    assert_identical(&n.src, &n.dst, &objects);
    let c = fetcher.counters();
    assert_eq!(c.chunks_fetched, total_chunks(&objects), "no verified chunk was fetched twice");
    assert_eq!(c.objects_restarted, 0, "no object was restarted");
    assert_eq!(
        c.chunk_lists_fetched,
        multi_chunk(&objects),
        "one chunk list per object of several chunks, none fetched again (a single-chunk object is fetched whole)"
    );
    assert!(c.connects >= 2 && c.request_failures >= 1, "{c:?}");
    fetcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_receiver_resumes_from_the_last_verified_chunk() {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, 3, 4, 64);
    let total = total_chunks(&objects);
    let tls = tls();
    let source = FaultySource::new(n.src.clone(), 8, None);
    let server = fetch_server(&tls, source.clone());
    let state = n.root.join("fetch");
    let (fetcher, _rx) =
        Fetcher::open(&state, n.dst.clone(), connector(&tls, &[("a", &server)]), config()).await.unwrap();
    fetcher.submit(job("study-3", PRIORITY_ROUTINE, &objects, &["a"])).await.unwrap();
    wait_until("8 verified chunks", || fetcher.counters().chunks_fetched == 8).await;
    fetcher.shutdown().await;
    let already_stored: Vec<_> = objects.iter().copied().filter(|(d, _)| n.dst.contains(d)).collect();
    let partial_chunks = 8 - total_chunks(&already_stored);

    source.open_gate();
    let (fetcher, mut rx) =
        Fetcher::open(&state, n.dst.clone(), connector(&tls, &[("a", &server)]), config()).await.unwrap();
    assert_eq!(fetcher.jobs(), vec!["study-3"]);
    let events = events_until_done(&mut rx, &["study-3"]).await;
    assert_eq!(completed(&events), vec!["study-3"]);
    assert_identical(&n.src, &n.dst, &objects);
    let c = fetcher.counters();
    assert!(partial_chunks > 0);
    assert_eq!(c.chunks_resumed, partial_chunks, "verified chunks of unfinished objects were kept");
    assert_eq!(c.chunks_fetched, total - 8, "only the chunks not verified before the restart were fetched");
    fetcher.shutdown().await;
    let (fetcher, _rx) =
        Fetcher::open(&state, n.dst.clone(), connector(&tls, &[("a", &server)]), config()).await.unwrap();
    assert!(fetcher.jobs().is_empty(), "a completed job does not come back");
    fetcher.shutdown().await;
}

/// Fetch a study whose source corrupts chunk `index` of the object `pick` chooses, once: the bad
/// chunk is caught by its hash, discarded and fetched again, and the study arrives intact.
async fn one_bad_chunk_is_caught_and_fetched_again(
    seed: u64,
    pick: fn(&[(Digest, u64)]) -> Digest,
    index: u32,
) -> FetchCounters {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, seed, 4, 64);
    let target = pick(&objects);
    let tls = tls();
    let source = FaultySource::new(n.src.clone(), 1 << 20, Some((target, index)));
    let server = fetch_server(&tls, source.clone());
    let conn = connector(&tls, &[("a", &server)]);
    let (fetcher, mut rx) =
        Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, config()).await.unwrap();
    let id = format!("study-{seed}");
    fetcher.submit(job(&id, PRIORITY_ROUTINE, &objects, &["a"])).await.unwrap();
    let events = events_until_done(&mut rx, &[&id]).await;
    assert_eq!(completed(&events), vec![id]);
    assert_identical(&n.src, &n.dst, &objects);
    let c = fetcher.counters();
    assert_eq!(c.chunks_corrupt, 1);
    assert_eq!(c.chunks_fetched, total_chunks(&objects));
    assert_eq!(
        source.served.load(Ordering::SeqCst),
        total_chunks(&objects) + 1,
        "the bad chunk was served again"
    );
    fetcher.shutdown().await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_chunk_is_detected_and_fetched_again() {
    let largest = |objects: &[(Digest, u64)]| objects.iter().max_by_key(|(_, size)| *size).unwrap().0;
    one_bad_chunk_is_caught_and_fetched_again(4, largest, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_single_chunk_object_is_detected_and_fetched_again() {
    let smallest = |objects: &[(Digest, u64)]| objects.iter().min_by_key(|(_, size)| *size).unwrap().0;
    let c = one_bad_chunk_is_caught_and_fetched_again(7, smallest, 0).await;
    assert_eq!(c.objects_restarted, 0, "a bad single-chunk answer is only that chunk fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_job_overtakes_a_running_routine_job() {
    let n = node();
    let routine = study(&n.root.join("routine"), &n.src, 5, 16, 256);
    let stat = study(&n.root.join("stat"), &n.src, 6, 2, 64);
    let stat: Vec<_> = stat.into_iter().filter(|(_, size)| *size < u64::from(CHUNK)).collect();
    let tls = tls();
    let server = fetch_server(&tls, Arc::new(StoreChunkSource::new(n.src.clone(), 16)));
    let conn = connector(&tls, &[("a", &server)]);
    let cfg = FetchConfig { streams_per_link: 1, ..config() };
    let (fetcher, mut rx) = Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, cfg).await.unwrap();
    fetcher.submit(job("routine", PRIORITY_ROUTINE, &routine, &["a"])).await.unwrap();
    wait_until("routine under way", || fetcher.counters().chunks_fetched >= 3).await;
    fetcher.submit(job("stat", PRIORITY_STAT, &stat, &["a"])).await.unwrap();

    let events = events_until_done(&mut rx, &["routine", "stat"]).await;
    assert_eq!(completed(&events), vec!["stat", "routine"]);
    assert_identical(&n.src, &n.dst, &routine);
    assert_identical(&n.src, &n.dst, &stat);
    fetcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_paces_every_chunk() {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, 7, 4, 64);
    let tls = tls();
    let server = fetch_server(&tls, Arc::new(StoreChunkSource::new(n.src.clone(), 16)));
    let conn = connector(&tls, &[("a", &server)]);
    let cfg = FetchConfig { bandwidth_per_source: Some(1 << 20), ..config() };
    let (fetcher, mut rx) = Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, cfg).await.unwrap();
    fetcher.submit(job("capped", PRIORITY_ROUTINE, &objects, &["a"])).await.unwrap();
    let events = events_until_done(&mut rx, &["capped"]).await;
    assert_eq!(completed(&events), vec!["capped"]);
    assert_identical(&n.src, &n.dst, &objects);
    let c = fetcher.counters();
    let bytes: u64 = objects.iter().map(|(_, s)| s).sum();
    assert_eq!(c.bytes_fetched, bytes);
    assert_eq!(c.throttled_bytes, bytes, "every chunk went through the token bucket");
    assert!(c.throttle_waits > 0, "the cap made requests wait: {c:?}");
    assert!(c.throttle_wait_micros > 0);
    fetcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_receive_window_fetches_every_object_whole() {
    let n = node();
    let objects = study(&n.root.join("synth"), &n.src, 8, 8, 256);
    let tls = tls();
    let server = fetch_server(&tls, Arc::new(StoreChunkSource::new(n.src.clone(), 16)));
    let conn = connector(&tls, &[("a", &server)]);
    // A queueing target far below loopback noise makes the window shrink as well as grow.
    let window = ReceiveWindow { max: 1 << 20, queue_target: Duration::from_micros(1) };
    let cfg = FetchConfig { receive_window: Some(window), ..config() };
    let (fetcher, mut rx) = Fetcher::open(&n.root.join("fetch"), n.dst.clone(), conn, cfg).await.unwrap();
    fetcher.submit(job("adaptive", PRIORITY_ROUTINE, &objects, &["a"])).await.unwrap();
    let events = events_until_done(&mut rx, &["adaptive"]).await;
    assert_eq!(completed(&events), vec!["adaptive"]);
    assert_identical(&n.src, &n.dst, &objects);
    assert_eq!(fetcher.counters().chunks_corrupt, 0);
    fetcher.shutdown().await;
}

// ---------------------------------------------------------------- upload tests

/// Stores accepted files in a store, as the node does after validating them.
struct StoreSink {
    store: Arc<Store>,
}

impl UploadSink for StoreSink {
    async fn accept(&self, file: PathBuf, digest: Digest, meta: UploadMeta) -> Result<String, String> {
        let put = self.store.put_file(&file).map_err(|e| e.to_string())?;
        assert_eq!(put.digest, digest);
        Ok(format!("stored {} for case {}", put.digest, meta.case_id))
    }
}

struct UploadNode {
    n: Node,
    receiver: Arc<UploadReceiver>,
    server: TestServer,
    client: quinn::Endpoint,
    file: PathBuf,
}

fn upload_node(limits: UploadLimits) -> UploadNode {
    let n = node();
    let opts = SynthOptions { dr_matrix: 1024, ..SynthOptions::small(8) };
    let summary = generate(&n.root.join("synth"), &[SynthKind::Dr], &opts).unwrap();
    let file = summary.studies[0].files[0].clone();
    let tls = tls();
    let receiver = Arc::new(UploadReceiver::open(&n.root.join("uploads"), limits).unwrap());
    let sink = Arc::new(StoreSink { store: n.dst.clone() });
    let r = receiver.clone();
    let server = TestServer::start(&tls, move |conn| serve_upload_connection(conn, r.clone(), sink.clone()));
    UploadNode { n, receiver, server, client: client_endpoint(&tls), file }
}

impl UploadNode {
    async fn connect(&self) -> quinn::Connection {
        self.client.connect(self.server.addr(), SERVER_NAME).unwrap().await.unwrap()
    }
}

fn meta() -> UploadMeta {
    UploadMeta { case_id: "case-42".into(), actor: "clinic-7".into(), token: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_upload_resumes_sending_only_missing_chunks() {
    let u = upload_node(UploadLimits::default());
    let size = std::fs::metadata(&u.file).unwrap().len();
    let chunks = size.div_ceil(u64::from(CHUNK)) as u32;
    assert!(chunks > 16);

    // First run: one chunk at a time, connection dropped once 8 chunks are acknowledged.
    let conn = u.connect().await;
    let cut = conn.clone();
    let one = UploadOptions { chunk_size: CHUNK, streams: 1, ..UploadOptions::default() };
    let first = upload_file_with(&conn, &u.file, meta(), &one, |acked| {
        if acked >= 8 * u64::from(CHUNK) {
            cut.close(0u32.into(), b"interrupted by test");
        }
    })
    .await;
    assert!(matches!(first, Err(UploadError::Connection { .. })), "{first:?}");
    assert_eq!(u.receiver.counters().chunks_accepted, 8);

    // Second run: only the missing chunks are sent, several at once.
    let conn = u.connect().await;
    let acked = Arc::new(AtomicU64::new(0));
    let seen = acked.clone();
    let four = UploadOptions { chunk_size: CHUNK, streams: 4, ..UploadOptions::default() };
    let outcome = upload_file_with(&conn, &u.file, meta(), &four, move |a| seen.store(a, Ordering::SeqCst))
        .await
        .unwrap();
    assert_eq!((outcome.chunks_skipped, outcome.chunks_sent, outcome.chunks_total), (8, chunks - 8, chunks));
    assert_eq!(acked.load(Ordering::SeqCst), size);
    let c = u.receiver.counters();
    assert_eq!(c.chunks_accepted, u64::from(chunks), "no chunk was received twice");
    assert_eq!(c.files_accepted, 1);
    assert!(outcome.message.contains("case-42"), "{}", outcome.message);
    assert_eq!(u.n.dst.verify(&outcome.digest).unwrap(), size);
    assert_eq!(std::fs::read(u.n.dst.path_of(&outcome.digest)).unwrap(), std::fs::read(&u.file).unwrap());

    // Third run: the node already has this file for this case.
    let again = upload_file_with(&conn, &u.file, meta(), &four, |_| {}).await.unwrap();
    assert!(again.already_stored && again.chunks_sent == 0);
    assert_eq!(u.receiver.counters().chunks_accepted, u64::from(chunks));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_chunk_with_wrong_hash_is_refused() {
    let u = upload_node(UploadLimits::default());
    let (digest, size, hashes) = hash_file_chunks(&u.file, CHUNK).unwrap();
    let conn = u.connect().await;
    let begin = UploadRequest::Begin(BeginUpload {
        digest,
        size,
        chunk_size: CHUNK,
        chunk_hashes: hashes,
        meta: meta(),
    });
    let have: UploadResponse = exchange(&conn, &begin, 1 << 20).await.unwrap();
    assert!(matches!(have, UploadResponse::Have { .. }), "{have:?}");

    let mut bytes = std::fs::read(&u.file).unwrap()[..CHUNK as usize].to_vec();
    bytes[7] ^= 1;
    let bad = UploadRequest::Chunk { digest, index: 0, bytes: bytes.clone() };
    match exchange::<_, UploadResponse>(&conn, &bad, 1 << 20).await.unwrap() {
        UploadResponse::Refused { reason } => assert!(reason.contains("does not match the hash"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    bytes[7] ^= 1;
    let good = UploadRequest::Chunk { digest, index: 0, bytes };
    let answer: UploadResponse = exchange(&conn, &good, 1 << 20).await.unwrap();
    assert!(matches!(answer, UploadResponse::ChunkAccepted), "{answer:?}");
    let finish: UploadResponse = exchange(&conn, &UploadRequest::Finish { digest }, 1 << 20).await.unwrap();
    assert!(
        matches!(finish, UploadResponse::Refused { ref reason } if reason.contains("still missing")),
        "{finish:?}"
    );
    let c = u.receiver.counters();
    assert_eq!((c.chunks_refused, c.chunks_accepted, c.files_accepted), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_upload_is_refused_before_any_chunk() {
    let u = upload_node(UploadLimits { max_file_size: 100_000, ..UploadLimits::default() });
    let conn = u.connect().await;
    let opts = UploadOptions { chunk_size: CHUNK, streams: 2, ..UploadOptions::default() };
    match upload_file_with(&conn, &u.file, meta(), &opts, |_| {}).await {
        Err(UploadError::Refused { reason }) => assert!(reason.contains("100000-byte limit"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let c = u.receiver.counters();
    assert_eq!((c.begins, c.chunks_accepted), (1, 0));
}
