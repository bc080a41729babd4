//! The regional certificate authority: creating it and issuing node certificates.
//!
//! A node certificate names its node as the DNS SAN `node-<id>.yilian` (plus the IP address it
//! listens on). Peers check that name against the member id they expect, so a stolen or
//! mis-issued certificate for node 3 cannot speak as node 1.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT: &str = "ca.crt";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY: &str = "ca.key";
/// File name of the regional patient-key secret written next to the CA.
pub const PATIENT_SECRET: &str = "patient-key.secret";
/// File name of the region's session-signing secret written next to the CA.
pub const AUTH_SECRET: &str = "auth.secret";
/// Bytes of randomness in a region secret.
const SECRET_BYTES: usize = 32;
/// How long a CA certificate is valid.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a node certificate is valid.
const NODE_VALIDITY_DAYS: i64 = 825;

/// The TLS server name a node's certificate carries for node `id`.
pub fn node_dns_name(id: u64) -> String {
    format!("node-{id}.yilian")
}

/// Parse a node id from a DNS name made by [`node_dns_name`].
pub fn node_id_from_dns_name(name: &str) -> Option<u64> {
    name.strip_prefix("node-")?.strip_suffix(".yilian")?.parse().ok()
}

/// The DNS name a client certificate carries for client `name`.
pub fn client_dns_name(name: &str) -> String {
    format!("{name}.clients.yilian")
}

/// Parse a client name from a DNS name made by [`client_dns_name`].
pub fn client_name_from_dns_name(dns: &str) -> Option<&str> {
    dns.strip_suffix(".clients.yilian").filter(|n| valid_client_name(n))
}

/// Client names: 1 to 48 lowercase letters, digits and '-'.
fn valid_client_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Paths of a node certificate and key written by [`issue_node_cert`].
#[derive(Debug, Clone)]
pub struct NodeCertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (mode 0600).
    pub key: PathBuf,
}

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The CA already exists; refusing to overwrite it.
    #[error(
        "a CA already exists in {0}; refusing to overwrite it (use another --dir, or delete it on purpose)"
    )]
    CaExists(PathBuf),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The address given for the node is not usable.
    #[error("invalid --addr `{0}`: expected host:port with an IP host, e.g. 10.0.0.5:7101")]
    BadAddr(String),
    /// The client name is not usable.
    #[error(
        "invalid client name `{0}`: use 1 to 48 lowercase letters, digits and '-', e.g. ts-lijia-uploader"
    )]
    BadClientName(String),
    /// The operating system's random source failed.
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(String),
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

/// Write `contents` to `path` through a temporary file and a rename, so a running node that
/// watches the file never reads half of it (certificate rotation).
fn write(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_file(&tmp, contents, private)?;
    std::fs::rename(&tmp, path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Create a regional CA in `dir` (`ca.crt`, `ca.key`). Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path, region: &str) -> Result<PathBuf, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.to_owned(), source })?;
    let cert_path = dir.join(CA_CERT);
    if cert_path.exists() {
        return Err(PkiError::CaExists(dir.to_owned()));
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, format!("Yilian regional CA ({region})"));
    params.distinguished_name.push(DnType::OrganizationName, "Yilian");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    init_patient_secret(dir)?;
    init_auth_secret(dir)?;
    Ok(cert_path)
}

/// Write the region's patient-key secret (random, hex) to `dir` unless one is already there.
/// Every node of the region must use the same secret so one patient gets one key everywhere.
pub fn init_patient_secret(dir: &Path) -> Result<PathBuf, PkiError> {
    init_secret(&dir.join(PATIENT_SECRET))
}

/// Write the region's session-signing secret (random, hex) to `dir` unless one is already
/// there. Every node of the region uses the same secret, so a login works on any node; whoever
/// holds it can act as any user, so keep it as secret as the CA key.
pub fn init_auth_secret(dir: &Path) -> Result<PathBuf, PkiError> {
    init_secret(&dir.join(AUTH_SECRET))
}

fn init_secret(path: &Path) -> Result<PathBuf, PkiError> {
    let path = path.to_owned();
    if path.exists() {
        return Ok(path);
    }
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| PkiError::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write(&path, &format!("{hex}\n"), true)?;
    Ok(path)
}

/// Issue a certificate for node `node_id` listening on `addr` (host:port), signed by the CA in
/// `ca_dir`, and write it to `out_dir` as `node-<id>.crt` / `node-<id>.key`.
pub fn issue_node_cert(
    ca_dir: &Path,
    node_id: u64,
    addr: &str,
    out_dir: &Path,
) -> Result<NodeCertFiles, PkiError> {
    let ip: IpAddr = addr
        .rsplit_once(':')
        .and_then(|(host, _)| host.trim_matches(|c| c == '[' || c == ']').parse().ok())
        .ok_or_else(|| PkiError::BadAddr(addr.to_owned()))?;
    let mut params = CertificateParams::new(vec![node_dns_name(node_id)])?;
    params.subject_alt_names.push(SanType::IpAddress(ip));
    params.distinguished_name.push(DnType::CommonName, format!("yilian node {node_id}"));
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    sign_and_write(ca_dir, params, out_dir, &format!("node-{node_id}"))
}

/// Sign `params` (a leaf certificate) with the CA in `ca_dir` and write `<stem>.crt` / `<stem>.key`.
fn sign_and_write(
    ca_dir: &Path,
    mut params: CertificateParams,
    out_dir: &Path,
    stem: &str,
) -> Result<NodeCertFiles, PkiError> {
    let ca_key = KeyPair::from_pem(&read(&ca_dir.join(CA_KEY))?)?;
    let ca_cert = CertificateParams::from_ca_cert_pem(&read(&ca_dir.join(CA_CERT))?)?.self_signed(&ca_key)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, NODE_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    std::fs::create_dir_all(out_dir).map_err(|source| PkiError::Io { path: out_dir.to_owned(), source })?;
    let files =
        NodeCertFiles { cert: out_dir.join(format!("{stem}.crt")), key: out_dir.join(format!("{stem}.key")) };
    write(&files.key, &key.serialize_pem(), true)?;
    write(&files.cert, &cert.pem(), false)?;
    Ok(files)
}

/// Issue a client certificate (e.g. for a clinic's `yilian upload`) named `name`, signed by the
/// CA in `ca_dir`, and write it to `out_dir` as `<name>.crt` / `<name>.key`.
pub fn issue_client_cert(ca_dir: &Path, name: &str, out_dir: &Path) -> Result<NodeCertFiles, PkiError> {
    if !valid_client_name(name) {
        return Err(PkiError::BadClientName(name.to_owned()));
    }
    let mut params = CertificateParams::new(vec![client_dns_name(name)])?;
    params.distinguished_name.push(DnType::CommonName, format!("yilian client {name}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_and_write(ca_dir, params, out_dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_round_trip() {
        assert_eq!(node_id_from_dns_name(&node_dns_name(17)), Some(17));
        assert_eq!(node_id_from_dns_name("node-x.yilian"), None);
        assert_eq!(node_id_from_dns_name("evil.example"), None);
    }

    #[test]
    fn ca_refuses_overwrite_and_issues() {
        let dir = tempfile::tempdir().expect("tempdir");
        init_ca(dir.path(), "test").expect("init");
        assert!(matches!(init_ca(dir.path(), "test"), Err(PkiError::CaExists(_))));
        let files = issue_node_cert(dir.path(), 3, "127.0.0.1:7103", dir.path()).expect("issue");
        assert!(files.cert.exists() && files.key.exists());
        assert!(matches!(issue_node_cert(dir.path(), 3, "localhost", dir.path()), Err(PkiError::BadAddr(_))));
    }
}
