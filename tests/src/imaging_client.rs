//! The ways images reach and leave a test node, as a clinic or a reader would use them:
//! `yilian upload` over QUIC, DCMTK `storescu` (DIMSE C-STORE), STOW-RS and WADO-RS.

use crate::harness::{cached_token, node_binary, TestCluster, NURSE};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use yilian_consensus::pki;
use yilian_dicom::web::multipart::parse_content_type;

/// A client certificate for the township clinic's uploader, issued by the cluster's CA:
/// (cert, key).
pub fn uploader_cert(cluster: &TestCluster) -> (PathBuf, PathBuf) {
    let dir = cluster.dir.path().join("uploader");
    let files = pki::issue_client_cert(&cluster.certs(), "ts-uploader", &dir).expect("client cert");
    (files.cert, files.key)
}

/// The `yilian upload` command line for `paths` into case `case` on node `id` as the TS nurse
/// (whose token [`crate::harness::token`] must have made), with `extra` flags.
pub fn upload_cmd(
    cluster: &TestCluster,
    id: u64,
    case: &str,
    paths: &[&Path],
    extra: &[&str],
) -> tokio::process::Command {
    upload_cmd_with(cluster, id, case, paths, extra, uploader_cert(cluster))
}

/// [`upload_cmd`] presenting the certificate and key `(cert, key)`.
pub fn upload_cmd_with(
    cluster: &TestCluster,
    id: u64,
    case: &str,
    paths: &[&Path],
    extra: &[&str],
    (cert, key): (PathBuf, PathBuf),
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(node_binary());
    cmd.arg("upload")
        .args(paths)
        .args(["--case", case, "--api", &cluster.node(id).api_addr])
        .args(["--token", &cached_token(&cluster.node(id).api_addr, NURSE)])
        .arg("--tls-ca")
        .arg(cluster.certs().join(pki::CA_CERT))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(extra)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Standard output and standard error of a finished command, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// (chunks sent, chunks already held by the node) from the summary line `yilian upload` prints.
pub fn sent_and_held(log: &str) -> Result<(u64, u64), String> {
    let line = log
        .lines()
        .find(|l| l.contains("file(s) stored"))
        .ok_or_else(|| format!("no upload summary: {log}"))?;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers[..] {
        [_, _, sent, held, ..] => Ok((sent, held)),
        _ => Err(format!("unexpected upload summary: {line}")),
    }
}

/// A DCMTK tool, after checking it is installed (tests/dicom/setup.sh installs Debian's dcmtk).
pub fn dcmtk(tool: &str) -> tokio::process::Command {
    let found = std::process::Command::new(tool).arg("--version").output().is_ok();
    assert!(
        found,
        "DCMTK `{tool}` is not installed; run `bash tests/dicom/setup.sh` (installs Debian's dcmtk)"
    );
    let mut cmd = tokio::process::Command::new(tool);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// `storescu` sending `files` over one association to the SCP `YILIAN` on 127.0.0.1:`port`.
pub fn storescu(port: u16, files: &[PathBuf]) -> tokio::process::Command {
    let mut cmd = dcmtk("storescu");
    cmd.args(["-aec", "YILIAN", "127.0.0.1", &port.to_string()]).args(files);
    cmd
}

/// A STOW-RS request body of `parts` (media type, bytes): (Content-Type, body).
pub fn stow_body(parts: &[(&str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "yilian-test-boundary-5f2c";
    let mut body = Vec::new();
    for (media, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {media}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"), body)
}

/// POST a STOW-RS request of `parts` to the node at `addr` (`query` is appended to the path):
/// the status and the answer's text, or an error when the node could not be reached.
pub async fn stow(
    addr: &str,
    query: &str,
    token: Option<&str>,
    parts: &[(&str, Vec<u8>)],
) -> anyhow::Result<(u16, String)> {
    let (content_type, body) = stow_body(parts);
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/dicomweb/studies{query}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// WADO-RS: the stored bytes of one instance from the node at API base URL `base`, taken out
/// of the multipart/related answer; an error for any answer but 200 with one DICOM part.
pub async fn retrieve_instance(
    base: &str,
    token: &str,
    study: &str,
    series: &str,
    sop: &str,
) -> anyhow::Result<Vec<u8>> {
    let url = format!("{base}/dicomweb/studies/{study}/series/{series}/instances/{sop}");
    let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await?;
    let status = resp.status();
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.bytes().await?;
    anyhow::ensure!(status.is_success(), "WADO-RS answered {status}: {}", String::from_utf8_lossy(&body));
    let boundary = parse_content_type(&content_type)?.boundary;
    first_part(&body, &boundary)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow::anyhow!("WADO-RS answer is not one multipart/related part ({content_type})"))
}

/// The body of the first part of a multipart/related `body` with `boundary`.
fn first_part<'a>(body: &'a [u8], boundary: &str) -> Option<&'a [u8]> {
    let open = format!("--{boundary}\r\n");
    let start = find(body, open.as_bytes())? + open.len();
    let head_end = start + find(&body[start..], b"\r\n\r\n")? + 4;
    let close = format!("\r\n--{boundary}");
    let end = head_end + find(&body[head_end..], close.as_bytes())?;
    Some(&body[head_end..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
