//! The DIMSE storage SCP against DCMTK's real `storescu` and `echoscu` on loopback.
//!
//! Needs DCMTK: run `bash tests/dicom/setup.sh` once (it installs the `dcmtk` Debian package).

use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::{open_file, InMemDicomObject, OpenFileOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use yilian_dicom::dimse::{
    serve, DimseError, InstanceSink, ReceivedInstance, Refusal, ScpConfig, StoredReply,
};
use yilian_dicom::sop::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use yilian_dicom::{generate, inspect, Digest, Store, SynthKind, SynthOptions, SynthSummary};

/// Longest any DCMTK run or raw client may take before the test fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// What the test sink filed for one instance.
#[derive(Debug, Clone)]
struct Filed {
    digest: Digest,
    transfer_syntax: String,
    calling_ae: String,
}

/// A sink that does what the node does: validate with `inspect`, check the case's accession
/// number, store content-addressed, remove the temp file.
struct IngestSink {
    store: Arc<Store>,
    accession: Option<String>,
    filed: Arc<Mutex<BTreeMap<String, Filed>>>,
}

impl InstanceSink for IngestSink {
    async fn store(&self, received: ReceivedInstance) -> Result<StoredReply, Refusal> {
        let store = Arc::clone(&self.store);
        let accession = self.accession.clone();
        let filed = Arc::clone(&self.filed);
        tokio::task::spawn_blocking(move || file(&store, accession.as_deref(), &filed, received))
            .await
            .map_err(|e| Refusal::processing_failure(format!("ingest task failed: {e}")))?
    }
}

fn file(
    store: &Store,
    accession: Option<&str>,
    filed: &Mutex<BTreeMap<String, Filed>>,
    received: ReceivedInstance,
) -> Result<StoredReply, Refusal> {
    let info =
        inspect(&received.path).map_err(|e| Refusal::data_set_does_not_match_sop_class(e.to_string()))?;
    assert_eq!(info.sop_instance_uid, received.sop_instance_uid);
    assert_eq!(info.sop_class_uid, received.sop_class_uid);
    assert_eq!(info.transfer_syntax_uid, received.transfer_syntax);
    if let Some(expected) = accession {
        let obj = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(&received.path).unwrap();
        let found = obj.element(tags::ACCESSION_NUMBER).unwrap().to_str().unwrap().trim().to_owned();
        if found != expected {
            return Err(Refusal::not_authorized(format!("accession {found} is not case {expected}")));
        }
    }
    let put = store.put_file(&received.path).map_err(|e| Refusal::out_of_resources(e.to_string()))?;
    std::fs::remove_file(&received.path).unwrap();
    filed.lock().unwrap().insert(
        received.sop_instance_uid,
        Filed {
            digest: put.digest,
            transfer_syntax: received.transfer_syntax,
            calling_ae: received.calling_ae,
        },
    );
    Ok(StoredReply { comment: Some(put.digest.to_hex()) })
}

/// A running SCP on a free loopback port.
struct Scp {
    addr: SocketAddr,
    tmp_dir: PathBuf,
    store: Arc<Store>,
    filed: Arc<Mutex<BTreeMap<String, Filed>>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DimseError>>,
    _dir: tempfile::TempDir,
}

impl Scp {
    async fn start(accession: Option<&str>, configure: impl FnOnce(&mut ScpConfig)) -> Scp {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ScpConfig { tmp_dir: dir.path().join("incoming"), ..ScpConfig::default() };
        configure(&mut cfg);
        let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
        let filed = Arc::new(Mutex::new(BTreeMap::new()));
        let sink = Arc::new(IngestSink {
            store: Arc::clone(&store),
            accession: accession.map(str::to_owned),
            filed: Arc::clone(&filed),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let tmp_dir = cfg.tmp_dir.clone();
        let task = tokio::spawn(serve(listener, cfg, sink, async move {
            let _ = stopped.await;
        }));
        Scp { addr, tmp_dir, store, filed, stop, task, _dir: dir }
    }

    fn filed(&self) -> BTreeMap<String, Filed> {
        self.filed.lock().unwrap().clone()
    }

    /// Temp files left in the receive directory.
    fn leftovers(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.tmp_dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(HANG_GUARD, self.task).await.unwrap().unwrap().unwrap();
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

/// Path of a DCMTK tool, or a failure that says how to install it.
fn dcmtk(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(tool)).find(|p| p.is_file()));
    match found {
        Some(path) => path,
        None => panic!("DCMTK's {tool} is not installed; run `bash tests/dicom/setup.sh` (installs dcmtk)"),
    }
}

/// Run a DCMTK tool; returns its output, stdout and stderr together as text.
async fn run(tool: &str, args: &[&str]) -> (Output, String) {
    let child = Command::new(dcmtk(tool)).args(args).kill_on_drop(true).output();
    let out =
        tokio::time::timeout(HANG_GUARD, child).await.unwrap_or_else(|_| panic!("{tool} hung")).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

/// `storescu` to the SCP with extra options before the files.
async fn storescu(scp: &Scp, options: &[&str], files: &[PathBuf]) -> (Output, String) {
    storescu_to(scp.port(), options, files).await
}

async fn storescu_to(port: String, options: &[&str], files: &[PathBuf]) -> (Output, String) {
    let mut args = vec!["-aet", "TESTSCU", "-aec", "YILIAN"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["127.0.0.1", &port]);
    let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend(names);
    run("storescu", &args).await
}

fn all_files(summary: &SynthSummary) -> Vec<PathBuf> {
    summary.studies.iter().flat_map(|s| s.files.iter().cloned()).collect()
}

fn sop_instance_uid(path: &Path) -> String {
    let obj = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).unwrap();
    obj.element(tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_owned()
}

/// Every original file was filed with the right file meta group, and the stored data set
/// equals the original.
fn assert_stored_unchanged(scp: &Scp, files: &[PathBuf], transfer_syntax: &str) {
    let filed = scp.filed();
    for original in files {
        let uid = sop_instance_uid(original);
        let entry = filed.get(&uid).unwrap_or_else(|| panic!("{} was not stored", original.display()));
        assert_eq!(entry.transfer_syntax, transfer_syntax);
        assert_eq!(entry.calling_ae, "TESTSCU");
        let stored_path = scp.store.locate(&entry.digest).unwrap();
        let stored = open_file(&stored_path).unwrap();
        let source = open_file(original).unwrap();
        assert_eq!(stored.meta().transfer_syntax().trim_end_matches('\0'), transfer_syntax);
        assert_eq!(stored.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), uid);
        assert_eq!(stored.meta().source_application_entity_title().map(str::trim), Some("TESTSCU"));
        assert_same_data_set(&stored, &source, transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN, &uid);
    }
}

/// Two data sets hold the same attributes with the same VRs and values, item by item in
/// sequences. Length encodings may differ: storescu re-encodes sequences with explicit lengths.
/// The byte values must be equal whatever the VR.
fn assert_same_data_set(got: &InMemDicomObject, want: &InMemDicomObject, implicit_vr: bool, at: &str) {
    let tags = |o: &InMemDicomObject| o.iter().map(|e| e.tag()).collect::<Vec<_>>();
    assert_eq!(tags(got), tags(want), "attributes of {at}");
    for (g, w) in got.iter().zip(want.iter()) {
        let here = format!("{at} {}", w.tag());
        match (g.value(), w.value()) {
            // Implicit VR gives Pixel Data the dictionary's VR: OW where the sender wrote OB.
            (Value::Primitive(gv), Value::Primitive(wv)) if g.vr() != w.vr() => {
                assert!(implicit_vr && w.tag() == tags::PIXEL_DATA, "VR of {here}: {} vs {}", g.vr(), w.vr());
                assert!(gv.to_bytes() == wv.to_bytes(), "value of {here} differs");
            }
            (Value::Primitive(g), Value::Primitive(w)) => assert!(g == w, "value of {here} differs"),
            (Value::Sequence(g), Value::Sequence(w)) => {
                assert_eq!(g.items().len(), w.items().len(), "items of {here}");
                for (i, (g, w)) in g.items().iter().zip(w.items()).enumerate() {
                    assert_same_data_set(g, w, implicit_vr, &format!("{here} item {i}"));
                }
            }
            (Value::PixelSequence(g), Value::PixelSequence(w)) => {
                assert!(g.fragments() == w.fragments(), "fragments of {here} differ")
            }
            _ => panic!("{here} has another kind of value"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoscu_is_answered() {
    let scp = Scp::start(None, |_| {}).await;
    let port = scp.port();
    let (out, text) = run("echoscu", &["-aet", "TESTSCU", "-aec", "YILIAN", "127.0.0.1", &port]).await;
    assert!(out.status.success(), "echoscu failed: {text}");
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_called_ae_title_is_rejected() {
    let scp = Scp::start(None, |_| {}).await;
    let port = scp.port();
    let (out, text) = run("echoscu", &["-aet", "TESTSCU", "-aec", "ANY-SCP", "127.0.0.1", &port]).await;
    assert!(!out.status.success(), "echoscu should be rejected: {text}");
    assert!(text.contains("Called AE Title Not Recognized"), "{text}");
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_study_is_stored_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { ct_slices: 8, ..SynthOptions::small(11) };
    let summary = generate(dir.path(), &SynthKind::ALL, &opts).unwrap();
    let files = all_files(&summary);
    assert_eq!(files.len(), 11);
    let scp = Scp::start(None, |_| {}).await;
    let (out, text) = storescu(&scp, &[], &files).await;
    assert!(out.status.success(), "storescu failed: {text}");
    assert_eq!(scp.filed().len(), files.len(), "{text}");
    assert_stored_unchanged(&scp, &files, EXPLICIT_VR_LITTLE_ENDIAN);
    assert!(scp.leftovers().is_empty());
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_associations_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let scp = Scp::start(None, |_| {}).await;
    let mut runs = tokio::task::JoinSet::new();
    let mut sent = Vec::new();
    for seed in 0..4 {
        let out_dir = dir.path().join(seed.to_string());
        let opts = SynthOptions { ct_slices: 8, ..SynthOptions::small(100 + seed) };
        let files = all_files(&generate(&out_dir, &[SynthKind::Ct, SynthKind::Dr], &opts).unwrap());
        sent.extend(files.iter().cloned());
        let port = scp.port();
        runs.spawn(async move { storescu_to(port, &[], &files).await });
    }
    while let Some(done) = runs.join_next().await {
        let (out, text) = done.unwrap();
        assert!(out.status.success(), "storescu failed: {text}");
    }
    assert_eq!(scp.filed().len(), sent.len());
    assert_stored_unchanged(&scp, &sent, EXPLICIT_VR_LITTLE_ENDIAN);
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_vr_proposal_is_negotiated_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &SynthKind::ALL, &SynthOptions::small(12)).unwrap();
    let files = all_files(&summary);
    let scp = Scp::start(None, |_| {}).await;
    let (out, text) = storescu(&scp, &["-xi"], &files).await;
    assert!(out.status.success(), "storescu -xi failed: {text}");
    assert_eq!(scp.filed().len(), files.len(), "{text}");
    assert_stored_unchanged(&scp, &files, IMPLICIT_VR_LITTLE_ENDIAN);
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_refusal_reaches_storescu_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = SynthOptions { accession: Some("OTHER-9".to_owned()), ..SynthOptions::small(13) };
    let wrong_files = all_files(&generate(&dir.path().join("wrong"), &[SynthKind::Dr], &wrong).unwrap());
    let right = SynthOptions { accession: Some("CASE-1".to_owned()), ..SynthOptions::small(14) };
    let right_files = all_files(&generate(&dir.path().join("right"), &[SynthKind::Dr], &right).unwrap());
    let scp = Scp::start(Some("CASE-1"), |_| {}).await;

    // -d makes storescu print the response, Error Comment included.
    let (out, text) = storescu(&scp, &["-d"], &wrong_files).await;
    assert!(!out.status.success(), "storescu did not report the refusal: {text}");
    assert!(text.contains("0x0124: Refused: Not authorized"), "{text}");
    assert!(text.contains("OTHER-9"), "the Error Comment did not reach storescu: {text}");
    assert!(scp.filed().is_empty());
    assert!(scp.store.list().unwrap().is_empty());
    assert!(scp.leftovers().is_empty(), "temp files left: {:?}", scp.leftovers());

    let (out, text) = storescu(&scp, &[], &right_files).await;
    assert!(out.status.success(), "storescu failed: {text}");
    assert_eq!(scp.filed().len(), 1);
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_over_the_size_limit_is_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    // A 16x16 CT slice fits in 8 KiB; a 128x128 DR (32 KiB of pixels) does not.
    let opts = SynthOptions { ct_slices: 1, ct_matrix: 16, ..SynthOptions::small(15) };
    let summary = generate(dir.path(), &[SynthKind::Ct, SynthKind::Dr], &opts).unwrap();
    let (ct, dr) = (summary.studies[0].files.clone(), summary.studies[1].files.clone());
    let scp = Scp::start(None, |cfg| cfg.max_instance_bytes = 8 << 10).await;

    // --no-halt: storescu goes on to the next file after a refusal, on the same association.
    // It then exits 0, so the refusal is read from its output.
    let (_, text) = storescu(&scp, &["-d", "--no-halt"], &[dr.clone(), ct.clone()].concat()).await;
    assert!(
        text.contains("0xa700: Refused: Out of resources"),
        "storescu did not report the refusal: {text}"
    );
    assert!(text.contains("8192-byte limit"), "the Error Comment did not reach storescu: {text}");
    let filed = scp.filed();
    assert!(!filed.contains_key(&sop_instance_uid(&dr[0])), "the oversized instance was stored");
    assert!(
        filed.contains_key(&sop_instance_uid(&ct[0])),
        "the small instance after it was not stored: {text}"
    );
    assert!(scp.leftovers().is_empty(), "temp files left: {:?}", scp.leftovers());
    scp.shutdown().await;
}

/// Connect, send `bytes`, and read until the server closes the connection; returns what it sent.
async fn raw_client(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the server did not drop a client that sent {bytes:?}");
    reply
}

/// An A-ASSOCIATE-RQ header declaring 200 bytes, followed by 200 bytes that are not its fields.
fn associate_rq_with_junk_body() -> Vec<u8> {
    let mut bytes = vec![0x01, 0x00, 0x00, 0x00, 0x00, 200];
    bytes.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_clients_are_dropped_without_disturbing_a_good_association() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { ct_slices: 8, ..SynthOptions::small(16) };
    let files = all_files(&generate(dir.path(), &SynthKind::ALL, &opts).unwrap());
    let scp = Scp::start(None, |_| {}).await;
    let addr = scp.addr;
    let garbage = tokio::spawn(async move {
        let http = raw_client(addr, b"GET / HTTP/1.1\r\nHost: yilian\r\n\r\n").await;
        let junk = raw_client(addr, &associate_rq_with_junk_body()).await;
        // P-DATA before any association, then an unknown PDU type.
        let early = raw_client(addr, &[0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3]).await;
        let unknown = raw_client(addr, &[0x7F, 0, 0, 0, 0, 2, 0xAA, 0xBB]).await;
        (http, junk, early, unknown)
    });
    let (out, text) = storescu(&scp, &[], &files).await;
    let (http, junk, early, unknown) = garbage.await.unwrap();
    assert!(out.status.success(), "storescu failed next to garbage clients: {text}");
    assert_stored_unchanged(&scp, &files, EXPLICIT_VR_LITTLE_ENDIAN);
    // The server answers malformed input with an A-ABORT PDU (type 07H) or just closes.
    for reply in [http, junk, early, unknown] {
        assert!(reply.is_empty() || reply[0] == 0x07, "unexpected reply {reply:?}");
    }
    assert!(scp.leftovers().is_empty());
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_server_rejects_with_local_limit_exceeded_then_recovers() {
    let scp = Scp::start(None, |cfg| cfg.max_associations = 1).await;
    let port = scp.port();
    let echo = ["-aet", "TESTSCU", "-aec", "YILIAN", "127.0.0.1", port.as_str()];
    // A connection that says nothing holds the only association slot.
    let holder = TcpStream::connect(scp.addr).await.unwrap();
    let mut rejected = None;
    for _ in 0..50 {
        let (out, text) = run("echoscu", &echo).await;
        if !out.status.success() {
            rejected = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = rejected.expect("echoscu was never rejected while the only slot was held");
    assert!(text.to_lowercase().contains("local limit exceeded"), "{text}");
    drop(holder);
    let mut recovered = false;
    for _ in 0..50 {
        let (out, _) = run("echoscu", &echo).await;
        if out.status.success() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the slot was not released after the holder left");
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_aborted_after_the_idle_timeout() {
    let scp = Scp::start(None, |cfg| cfg.idle_timeout = Duration::from_millis(300)).await;
    let reply = raw_client(scp.addr, &[]).await;
    assert_eq!(reply.first(), Some(&0x07), "expected an A-ABORT, got {reply:?}");
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_transfer_syntax_proposals_are_negotiated() {
    let dir = tempfile::tempdir().unwrap();
    let files = all_files(&generate(dir.path(), &SynthKind::ALL, &SynthOptions::small(17)).unwrap());
    let scp = Scp::start(None, |_| {}).await;
    // JPEG lossless, deflated (refused: whole data set deflated) or big endian offered next to
    // the uncompressed syntaxes: the uncompressed file goes as Explicit VR Little Endian.
    for option in ["-xs", "-xd", "-xb", "-xe"] {
        let (out, text) = storescu(&scp, &[option], &files).await;
        assert!(out.status.success(), "storescu {option} failed: {text}");
    }
    assert_stored_unchanged(&scp, &files, EXPLICIT_VR_LITTLE_ENDIAN);
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rle_compressed_instance_is_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { ct_slices: 2, ..SynthOptions::small(18) };
    let summary = generate(dir.path(), &[SynthKind::Ct], &opts).unwrap();
    let mut compressed = Vec::new();
    for (i, file) in summary.studies[0].files.iter().enumerate() {
        let out = dir.path().join(format!("rle-{i}.dcm"));
        let (status, text) = run("dcmcrle", &[file.to_str().unwrap(), out.to_str().unwrap()]).await;
        assert!(status.status.success(), "dcmcrle failed: {text}");
        compressed.push(out);
    }
    let scp = Scp::start(None, |_| {}).await;
    // -xr: storescu proposes RLE Lossless (the files' syntax) in a context of its own, and
    // sends the files as they are on it.
    let (out, text) = storescu(&scp, &["-xr", "-R"], &compressed).await;
    assert!(out.status.success(), "storescu failed: {text}");
    assert_stored_unchanged(&scp, &compressed, "1.2.840.10008.1.2.5");
    scp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_sop_class_is_not_negotiated() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &[SynthKind::Dr], &SynthOptions::small(19)).unwrap();
    let file = summary.studies[0].files[0].clone();
    // Relabel the instance as an RT Image, a storage class Yilian does not accept.
    let (out, text) =
        run("dcmodify", &["-nb", "-m", "(0008,0016)=1.2.840.10008.5.1.4.1.1.481.1", file.to_str().unwrap()])
            .await;
    assert!(out.status.success(), "dcmodify failed: {text}");
    let scp = Scp::start(None, |_| {}).await;
    let (out, text) = storescu(&scp, &["-d"], &[file]).await;
    assert!(!out.status.success(), "storescu should fail: {text}");
    assert!(text.contains("Abstract Syntax Not Supported"), "{text}");
    assert!(scp.filed().is_empty());
    assert!(scp.leftovers().is_empty());
    scp.shutdown().await;
}
