//! Forming a region from nothing: the first admin, and logging in.
//!
//! Before any user exists, a node accepts an admin token signed with the region's `auth.secret`
//! (whoever holds that file controls the region anyway). `yilian cluster init` mints such a
//! token, forms the cluster and creates the `admin` user, whose generated password it writes
//! next to the secret with mode 0600. From then on such tokens are refused and everyone logs in.

use crate::api::Session;
use crate::auth::{Claims, SessionKey};
use crate::client::ApiClient;
use anyhow::{bail, Context};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yilian_consensus::cluster::now_ms;
use yilian_referral::{Outcome, Role};

/// Login name of the first admin.
pub const ADMIN_USER: &str = "admin";
/// The user a bootstrap token names; no account may take this name, so the token is refused as
/// soon as any user exists.
pub const BOOTSTRAP_USER: &str = "bootstrap";
/// File (next to `auth.secret`) holding the first admin's generated password.
pub const ADMIN_PASSWORD_FILE: &str = "admin.password";
/// How long a bootstrap token is valid.
const BOOTSTRAP_TTL_MS: u64 = 10 * 60 * 1000;
/// How long to wait for the new cluster to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(60);

/// A short-lived admin token signed with the region secret in `secret_file`; accepted only by
/// nodes whose user table is empty.
pub fn bootstrap_token(secret_file: &Path) -> anyhow::Result<String> {
    let key = SessionKey::load(secret_file)?;
    let now = now_ms();
    let claims = Claims {
        user: BOOTSTRAP_USER.into(),
        role: Role::Admin,
        facility: None,
        iat_ms: now,
        exp_ms: now + BOOTSTRAP_TTL_MS,
    };
    Ok(key.mint(&claims))
}

/// The admin password file that belongs to `secret_file`.
pub fn admin_password_file(secret_file: &Path) -> PathBuf {
    secret_file.with_file_name(ADMIN_PASSWORD_FILE)
}

/// Create the `admin` user through `api` (which carries a bootstrap token), with the password
/// in `password_file`, generating and writing it (mode 0600) if the file does not exist.
/// Waits for a leader; an admin that already exists is left alone. Returns the password.
pub async fn create_first_admin(api: &ApiClient, password_file: &Path) -> anyhow::Result<String> {
    let password = match std::fs::read_to_string(password_file) {
        Ok(p) => p.trim().to_owned(),
        Err(_) => {
            let mut bytes = [0u8; 18];
            getrandom::getrandom(&mut bytes).context("reading random bytes")?;
            let p = crate::auth::hex(&bytes);
            write_private(password_file, &format!("{p}\n"))?;
            p
        }
    };
    let body = json!({ "id": ADMIN_USER, "role": "admin", "password": password });
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        match api.post::<_, Outcome>("/v1/users", &body).await {
            Ok(_) => return Ok(password),
            Err(e) if e.to_string().contains("already registered") => return Ok(password),
            Err(e) if e.to_string().contains("401") => {
                bail!("the cluster already has users, so the bootstrap token is refused; log in as an admin instead ({e})")
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "waiting for the cluster to accept the first admin");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.context("creating the first admin")),
        }
    }
}

/// Log in as `user` with `password` and return the session.
pub async fn login(api: &ApiClient, user: &str, password: &str) -> anyhow::Result<Session> {
    api.post("/v1/login", &json!({ "user": user, "password": password })).await
}

/// Write `contents` to `path` readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
