//! The node configuration file (`node.toml`). Every key is documented in
//! `deploy/node.example.toml`; unknown keys are rejected by name.

mod imaging;

pub use imaging::ImagingSettings;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use yilian_consensus::tls::TlsFiles;
use yilian_consensus::{RaftSettings, TransportSettings};

/// A node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's Raft id (≥ 1; must match its certificate; never reused).
    pub node_id: u64,
    /// Directory for the node's database (`raft.redb`). Relative to the config file.
    pub data_dir: PathBuf,
    /// UDP address for QUIC (Raft and node-to-node traffic), e.g. `127.0.0.1:7101`.
    pub raft_addr: String,
    /// Address (`host:port`) other nodes dial to reach `raft_addr`, when it differs (NAT, a
    /// load balancer, a relay). Default: `raft_addr`.
    #[serde(default)]
    pub advertise_addr: Option<String>,
    /// TCP address for the HTTP API, e.g. `127.0.0.1:7201`.
    pub api_addr: String,
    /// Certificate files (relative to the config file).
    pub tls: TlsFiles,
    /// Raft timing and snapshots.
    #[serde(default)]
    pub raft: RaftSettings,
    /// How the node's QUIC connections send (congestion controller).
    #[serde(default)]
    pub transport: TransportSettings,
    /// Patient pseudonymisation.
    #[serde(default)]
    pub patient: PatientSettings,
    /// DIMSE listener, prefetch and transfer limits.
    #[serde(default)]
    pub imaging: ImagingSettings,
    /// Users and sessions.
    #[serde(default)]
    pub auth: AuthSettings,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiSettings,
}

/// The `[api]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Serve the API over HTTPS with the node's certificate (`tls.cert`/`tls.key`); clients
    /// trust the regional CA. Default false (plain HTTP, for loopback demos and tests).
    #[serde(default)]
    pub tls: bool,
}

/// Default session lifetime.
const DEFAULT_SESSION_MINUTES: u64 = 8 * 60;

fn default_session_minutes() -> u64 {
    DEFAULT_SESSION_MINUTES
}

/// The `[auth]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The region's session-signing secret (the same file on every node). Defaults to
    /// `auth.secret` next to `tls.ca_cert`, where `yilian ca init` writes it.
    pub secret_file: Option<PathBuf>,
    /// How long a login session lasts, in minutes (default 480).
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { secret_file: None, session_minutes: DEFAULT_SESSION_MINUTES }
    }
}

/// The `[patient]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientSettings {
    /// The region's patient-key secret (the same file on every node of the region). Defaults to
    /// `patient-key.secret` next to `tls.ca_cert`, where `yilian ca init` writes it.
    pub key_secret_file: Option<PathBuf>,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has a bad key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A key has an unusable value.
    #[error("config file {path}: key `{key}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, dotted (e.g. `raft.heartbeat_ms`).
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl NodeConfig {
    /// Read, parse and check `path`; relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut cfg: NodeConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.data_dir, &mut cfg.tls.ca_cert, &mut cfg.tls.cert, &mut cfg.tls.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let secret = match cfg.patient.key_secret_file.take() {
            Some(p) if p.is_relative() => base.join(p),
            Some(p) => p,
            None => cfg.tls.ca_cert.with_file_name(yilian_consensus::pki::PATIENT_SECRET),
        };
        cfg.patient.key_secret_file = Some(secret);
        let auth_secret = match cfg.auth.secret_file.take() {
            Some(p) if p.is_relative() => base.join(p),
            Some(p) => p,
            None => cfg.tls.ca_cert.with_file_name(yilian_consensus::pki::AUTH_SECRET),
        };
        cfg.auth.secret_file = Some(auth_secret);
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The QUIC address peers dial: `advertise_addr`, else `raft_addr`.
    pub fn advertised_raft_addr(&self) -> &str {
        self.advertise_addr.as_deref().unwrap_or(&self.raft_addr)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |key, reason: &str| ConfigError::Invalid { path: path.to_owned(), key, reason: reason.into() };
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be 1 or greater"));
        }
        if self.raft_addr.parse::<SocketAddr>().is_err() {
            return Err(invalid("raft_addr", "must be IP:port, e.g. 127.0.0.1:7101"));
        }
        if let Some(a) = &self.advertise_addr {
            let port = a.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then_some(port));
            if port.and_then(|p| p.parse::<u16>().ok()).is_none_or(|p| p == 0) {
                return Err(invalid("advertise_addr", "must be host:port, e.g. 203.0.113.7:7101"));
            }
        }
        if self.api_addr.parse::<SocketAddr>().is_err() {
            return Err(invalid("api_addr", "must be IP:port, e.g. 127.0.0.1:7201"));
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0 {
            return Err(invalid("raft.heartbeat_ms", "must be greater than 0"));
        }
        if r.election_timeout_min_ms <= r.heartbeat_ms {
            return Err(invalid("raft.election_timeout_min_ms", "must be greater than raft.heartbeat_ms"));
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                "must be greater than raft.election_timeout_min_ms",
            ));
        }
        if r.max_payload_entries == 0 {
            return Err(invalid("raft.max_payload_entries", "must be greater than 0"));
        }
        if r.snapshot_after_logs == 0 {
            return Err(invalid("raft.snapshot_after_logs", "must be greater than 0"));
        }
        if let Some((key, reason)) = self.imaging.problem() {
            return Err(invalid(key, reason));
        }
        if self.auth.session_minutes == 0 {
            return Err(invalid("auth.session_minutes", "must be greater than 0"));
        }
        for (key, p) in [
            ("tls.ca_cert", &self.tls.ca_cert),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("patient.key_secret_file", &self.patient_secret_file().to_path_buf()),
            ("auth.secret_file", &self.auth_secret_file().to_path_buf()),
        ] {
            if !p.is_file() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key,
                    reason: format!(
                        "{} does not exist; create it with `yilian ca init` / `yilian ca issue`",
                        p.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The session-signing secret file in force.
    pub fn auth_secret_file(&self) -> &Path {
        self.auth.secret_file.as_deref().unwrap_or(Path::new(yilian_consensus::pki::AUTH_SECRET))
    }

    /// The patient-key secret file in force.
    pub fn patient_secret_file(&self) -> &Path {
        self.patient.key_secret_file.as_deref().unwrap_or(Path::new(yilian_consensus::pki::PATIENT_SECRET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        for f in ["ca.crt", "n.crt", "n.key", "patient-key.secret", "auth.secret"] {
            std::fs::write(dir.join(f), "x").expect("write");
        }
        let p = dir.join("node.toml");
        std::fs::write(&p, body).expect("write");
        p
    }

    const GOOD: &str = r#"
node_id = 1
data_dir = "data"
raft_addr = "127.0.0.1:7101"
api_addr = "127.0.0.1:7201"
[tls]
ca_cert = "ca.crt"
cert = "n.crt"
key = "n.key"
"#;

    #[test]
    fn good_config_resolves_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NodeConfig::load(&write(dir.path(), GOOD)).expect("load");
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.raft.heartbeat_ms, RaftSettings::default().heartbeat_ms);
    }

    #[test]
    fn bad_keys_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unknown = NodeConfig::load(&write(dir.path(), &format!("{GOOD}\n[raft]\nheartbeat = 5\n")));
        assert!(unknown.expect_err("unknown key").to_string().contains("heartbeat"));
        let bad = NodeConfig::load(&write(dir.path(), &GOOD.replace("127.0.0.1:7101", "nowhere")));
        assert!(bad.expect_err("bad addr").to_string().contains("raft_addr"));
        let zero = NodeConfig::load(&write(dir.path(), &GOOD.replace("node_id = 1", "node_id = 0")));
        assert!(zero.expect_err("zero id").to_string().contains("node_id"));
    }

    #[test]
    fn fetch_window_defaults_to_4_mib_adapting_from_256_kib_and_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = NodeConfig::load(&write(dir.path(), GOOD)).expect("load");
        assert_eq!(plain.imaging.fetch_window_bytes(), 4096 * 1024);
        assert_eq!(plain.imaging.fetch_window_start_bytes(), 256 * 1024);
        let adaptive = plain.imaging.adaptive_fetch_window().expect("adaptive by default");
        assert_eq!(adaptive.queue_target, std::time::Duration::from_millis(5));
        let fixed = NodeConfig::load(&write(
            dir.path(),
            &format!("{GOOD}\n[imaging]\nfetch_window_kb = 256\nfetch_queue_ms = 0\n"),
        ))
        .expect("load");
        assert!(fixed.imaging.adaptive_fetch_window().is_none());
        assert_eq!(fixed.imaging.fetch_window_start_bytes(), 256 * 1024);
        let text = format!("{GOOD}\n[imaging]\nfetch_queue_ms = 1001\n");
        let err = NodeConfig::load(&write(dir.path(), &text)).expect_err("out of range");
        assert!(err.to_string().contains("fetch_queue_ms"), "{err}");
        let set =
            NodeConfig::load(&write(dir.path(), &format!("{GOOD}\n[imaging]\nfetch_window_kb = 1024\n")))
                .expect("load");
        assert_eq!(set.imaging.fetch_window_bytes(), 1024 * 1024);
        for bad in [0, 8, 65537] {
            let text = format!("{GOOD}\n[imaging]\nfetch_window_kb = {bad}\n");
            let err = NodeConfig::load(&write(dir.path(), &text)).expect_err("out of range");
            assert!(err.to_string().contains("fetch_window_kb"), "{bad}: {err}");
        }
    }

    #[test]
    fn congestion_control_defaults_to_cubic_and_a_wrong_name_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = NodeConfig::load(&write(dir.path(), GOOD)).expect("load");
        assert_eq!(plain.transport.congestion_control, yilian_consensus::CongestionControl::Cubic);
        let bbr = format!("{GOOD}\n[transport]\ncongestion_control = \"bbr\"\n");
        let cfg = NodeConfig::load(&write(dir.path(), &bbr)).expect("load");
        assert_eq!(cfg.transport.congestion_control, yilian_consensus::CongestionControl::Bbr);
        let wrong = NodeConfig::load(&write(dir.path(), &bbr.replace("\"bbr\"", "\"reno\"")));
        let err = wrong.expect_err("unknown controller").to_string();
        assert!(err.contains("reno") && err.contains("bbr"), "{err}");
    }

    #[test]
    fn advertise_addr_defaults_to_raft_addr_and_must_have_a_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = NodeConfig::load(&write(dir.path(), GOOD)).expect("load");
        assert_eq!(plain.advertised_raft_addr(), "127.0.0.1:7101");
        let behind = GOOD.replace("api_addr", "advertise_addr = \"relay.example:7301\"\napi_addr");
        let cfg = NodeConfig::load(&write(dir.path(), &behind)).expect("load");
        assert_eq!(cfg.advertised_raft_addr(), "relay.example:7301");
        for bad in ["relay.example", ":7301", "relay.example:0", "relay.example:port"] {
            let text = GOOD.replace("api_addr", &format!("advertise_addr = \"{bad}\"\napi_addr"));
            let err = NodeConfig::load(&write(dir.path(), &text)).expect_err(bad);
            assert!(err.to_string().contains("advertise_addr"), "{bad}: {err}");
        }
    }
}
