//! `yilian upload`: send DICOM files to a node over QUIC for a case, chunked and resumable
//! (run it again after an interruption: only the chunks the node lacks are sent), with a
//! progress bar and one result line per file.

use super::Target;
use crate::client::ApiClient;
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yilian_consensus::cluster::Member;
use yilian_consensus::pki::node_dns_name;
use yilian_consensus::tls::{client_only, TlsFiles, ALPN_UPLOAD};
use yilian_consensus::CongestionControl;
use yilian_dicom::transfer::{upload_file_with, UploadError, UploadMeta, UploadOptions};
use yilian_referral::{Case, Outcome};

/// Options of `yilian upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    target: Target,
    /// DICOM files, or directories searched recursively for files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The case the images belong to.
    #[arg(long)]
    case: String,
    /// Declare every study uploaded complete afterwards (`yilian study commit`).
    #[arg(long)]
    commit: bool,
    /// The regional CA certificate the node's QUIC certificate is checked against.
    #[arg(long, env = "YILIAN_TLS_CA", default_value = "certs/ca.crt")]
    tls_ca: PathBuf,
    /// This uploader's certificate, from `yilian ca issue-client`.
    #[arg(long, env = "YILIAN_UPLOAD_CERT")]
    cert: PathBuf,
    /// This uploader's private key.
    #[arg(long, env = "YILIAN_UPLOAD_KEY")]
    key: PathBuf,
    /// Chunk size in KiB (4 to 16384); keep it between runs so an interrupted upload resumes.
    #[arg(long, default_value_t = 1024)]
    chunk_kib: u32,
    /// Chunks sent at once.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Send at most this many kilobits per second (share a weak link); no cap when unset.
    #[arg(long)]
    limit_kbit: Option<u64>,
    /// Congestion controller: `cubic`, or `bbr` where the uplink loses packets (radio, long
    /// rural lines), which keeps its rate through random loss.
    #[arg(long, default_value_t = CongestionControl::Cubic)]
    congestion: CongestionControl,
}

/// Every regular file under `paths`, sorted, each once.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = BTreeSet::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            for entry in
                std::fs::read_dir(&path).with_context(|| format!("cannot list {}", path.display()))?
            {
                pending.push(entry.with_context(|| format!("cannot list {}", path.display()))?.path());
            }
        } else if meta.is_file() {
            files.insert(path);
        }
    }
    Ok(files.into_iter().collect())
}

/// Connect to the node's QUIC upload port, checking its certificate names node `target.node_id`.
async fn connect(
    endpoint: &quinn::Endpoint,
    target: &Member,
    addr: SocketAddr,
) -> anyhow::Result<quinn::Connection> {
    let connecting = endpoint
        .connect(addr, &node_dns_name(target.node_id))
        .with_context(|| format!("cannot connect to node {} at {addr}", target.node_id))?;
    tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "node {} at {addr} did not answer over QUIC within 20 s; check that UDP to it is open",
                target.node_id
            )
        })?
        .with_context(|| {
            format!(
                "node {} at {addr} refused the connection; check that --cert/--key were issued by the \
                 region's CA (`yilian ca issue-client`) and that --tls-ca is the region's CA",
                target.node_id
            )
        })
}

/// What happened to one file.
enum FileResult {
    Stored { study: Option<String>, sent: u32, skipped: u32 },
    Failed,
}

/// Run `yilian upload`.
pub async fn run(args: UploadArgs) -> anyhow::Result<()> {
    let opts = UploadOptions {
        chunk_size: args.chunk_kib.saturating_mul(1024),
        streams: args.streams,
        bandwidth: args.limit_kbit.map(|k| k.saturating_mul(1000) / 8),
    };
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        bail!("no files found under the paths given");
    }
    let token = args.target.bearer()?;
    let api = args.target.client()?;
    let case: Case = api.get(&format!("/v1/cases/{}", args.case)).await.with_context(|| {
        format!("case {} cannot be used; check the case id and that you may work on it", args.case)
    })?;
    let node: Member = api.get("/v1/upload-target").await?;
    let addr = tokio::net::lookup_host(&node.raft_addr).await.ok().and_then(|mut a| a.next()).with_context(
        || format!("node {}'s QUIC address {} does not resolve", node.node_id, node.raft_addr),
    )?;
    let tls = TlsFiles { ca_cert: args.tls_ca.clone(), cert: args.cert.clone(), key: args.key.clone() };
    let client = client_only(&tls, ALPN_UPLOAD, args.congestion)
        .context("loading the uploader certificate; check --tls-ca, --cert and --key")?;
    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0".parse()? } else { "0.0.0.0:0".parse()? };
    let mut endpoint = quinn::Endpoint::client(bind).context("opening a UDP socket")?;
    endpoint.set_default_client_config(client);
    let mut conn = connect(&endpoint, &node, addr).await?;

    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let meta = UploadMeta { case_id: case.id.0.clone(), actor: String::new(), token: Some(token) };
    let mut results = Vec::new();
    let mut done_bytes = 0u64;
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        bar.set_message(file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if conn.close_reason().is_some() {
            conn = connect(&endpoint, &node, addr).await?;
        }
        let base = done_bytes;
        let progress = |acked: u64| bar.set_position(base + acked);
        let result = match upload_file_with(&conn, file, meta.clone(), &opts, progress).await {
            Ok(outcome) => {
                let line = format!(
                    "stored   {}: {} ({} chunk(s) sent, {} already held by the node)",
                    file.display(),
                    outcome.message,
                    outcome.chunks_sent,
                    outcome.chunks_skipped
                );
                bar.suspend(|| println!("{line}"));
                FileResult::Stored {
                    study: study_of(file),
                    sent: outcome.chunks_sent,
                    skipped: outcome.chunks_skipped,
                }
            }
            Err(e) => {
                let what = if matches!(e, UploadError::Connection { .. }) { "failed " } else { "refused" };
                bar.suspend(|| println!("{what}  {}: {e}", file.display()));
                FileResult::Failed
            }
        };
        results.push(result);
        done_bytes += size;
        bar.set_position(done_bytes);
    }
    bar.finish_and_clear();
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    report(&api, &args, &results).await
}

/// The Study Instance UID of a DICOM file, read locally.
fn study_of(file: &Path) -> Option<String> {
    yilian_dicom::inspect(file).ok().map(|info| info.study_instance_uid)
}

/// Print the summary, commit the studies if asked, and fail if any file failed.
async fn report(api: &ApiClient, args: &UploadArgs, results: &[FileResult]) -> anyhow::Result<()> {
    let mut studies = BTreeSet::new();
    let (mut stored, mut failed, mut sent, mut skipped) = (0usize, 0usize, 0u64, 0u64);
    for r in results {
        match r {
            FileResult::Stored { study, sent: s, skipped: k } => {
                stored += 1;
                sent += u64::from(*s);
                skipped += u64::from(*k);
                studies.extend(study.clone());
            }
            FileResult::Failed => failed += 1,
        }
    }
    println!(
        "{stored} file(s) stored, {failed} failed; {sent} chunk(s) sent, {skipped} already held by the node"
    );
    if args.commit && failed == 0 {
        for uid in &studies {
            let _: Outcome = api
                .post(&format!("/v1/studies/{uid}/commit"), &serde_json::json!({}))
                .await
                .with_context(|| format!("committing study {uid}"))?;
            println!("committed study {uid}");
        }
    }
    if failed > 0 {
        let hint = if args.commit { "; nothing was committed" } else { "" };
        bail!("{failed} file(s) were not stored{hint}; fix them or run the same command again to resume");
    }
    Ok(())
}
