//! Authentication on a 3-node cluster: every endpoint but the health checks and login needs a
//! bearer token; forged, expired and revoked session tokens and revoked API tokens get 401 on
//! every node; only admins manage users; the bootstrap token dies once users exist; failed logins
//! back off; the CLI logs in and stores its token with mode 0600.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use yilian_consensus::cluster::now_ms;
use yilian_node::api::{CreatedToken, Session};
use yilian_node::auth::{Claims, SessionKey};
use yilian_node::bootstrap;
use yilian_referral::Role;

/// The HTTP status in a client error message, e.g. 401.
fn status_of(e: &anyhow::Error) -> String {
    e.to_string().split(' ').next().unwrap_or_default().to_owned()
}

async fn refused_with(api: &yilian_node::client::ApiClient, path: &str, status: &str) -> String {
    let e = api.get::<Value>(path).await.expect_err(&format!("{path} must be refused"));
    assert_eq!(status_of(&e), status, "{path}: {e:#}");
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_on_every_node() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    let id = submit(&cluster.api(1), "auth").await.expect("submit");
    let case_path = format!("/v1/cases/{id}");

    // No token: 401 everywhere except the health checks.
    let anonymous = cluster.api(2).with_token(None);
    for path in [case_path.as_str(), "/v1/node", "/v1/figures", "/metrics", "/v1/audit", "/fhir/metadata"] {
        let msg = refused_with(&anonymous, path, "401").await;
        assert!(msg.contains("yilian login") || msg.contains("Bearer"), "{path}: {msg}");
    }
    assert_eq!(anonymous.get_text("/livez").await.expect("livez"), "ok");
    assert_eq!(anonymous.get_text("/readyz").await.expect("readyz"), "ready");

    // A forged token: signed with another secret, or a valid signature over other claims.
    let nurse_token = token(&cluster.api(1), NURSE).await;
    let now = now_ms();
    let claims = |user: &str, role: Role, exp_ms: u64| Claims {
        user: user.into(),
        role,
        facility: None,
        iat_ms: now,
        exp_ms,
    };
    let other_region = tempfile::tempdir().expect("tempdir");
    yilian_consensus::pki::init_auth_secret(other_region.path()).expect("secret");
    let foreign_key =
        SessionKey::load(&other_region.path().join(yilian_consensus::pki::AUTH_SECRET)).expect("key");
    let forged = foreign_key.mint(&claims("admin", Role::Admin, now + 60_000));
    let msg = refused_with(&anonymous.clone().with_token(Some(forged)), &case_path, "401").await;
    assert!(msg.contains("signature"), "{msg}");
    let (_, signature) = nurse_token.rsplit_once('.').expect("signature");
    let (admin_claims, _) = foreign_key
        .mint(&claims("admin", Role::Admin, now + 60_000))
        .rsplit_once('.')
        .map(|(c, s)| (c.to_owned(), s.to_owned()))
        .expect("claims");
    let spliced = format!("{admin_claims}.{signature}");
    refused_with(&anonymous.clone().with_token(Some(spliced)), "/v1/users", "401").await;

    // An expired token, properly signed with the region's secret.
    let region_key = SessionKey::load(&cluster.auth_secret()).expect("region key");
    let expired = region_key.mint(&claims("nurse-TS", Role::ClinicStaff, now - 1));
    let msg = refused_with(&anonymous.clone().with_token(Some(expired)), &case_path, "401").await;
    assert!(msg.contains("expired"), "{msg}");

    // The bootstrap token (region secret, admin, no such user) is refused once users exist.
    let boot = bootstrap::bootstrap_token(&cluster.auth_secret()).expect("bootstrap token");
    for id in 1..=3 {
        refused_with(&cluster.api(id).with_token(Some(boot.clone())), "/v1/users", "401").await;
    }

    // Logging out revokes the session on every node.
    let session: Session = bootstrap::login(&cluster.api(3), "nurse-TS", TEST_PASSWORD).await.expect("login");
    let nurse3 = cluster.api(3).with_token(Some(session.token.clone()));
    let _: Value = nurse3.get(&case_path).await.expect("a fresh session works");
    let _: Value = nurse3.post("/v1/logout", &json!({})).await.expect("logout");
    for id in 1..=3 {
        let revoked = cluster.api(id).with_token(Some(session.token.clone()));
        wait_for("the revocation to reach every node", Duration::from_secs(10), || {
            let revoked = revoked.clone();
            let path = case_path.clone();
            async move { revoked.get::<Value>(&path).await.is_err_and(|e| status_of(&e) == "401") }
        })
        .await;
    }

    // API tokens: created by an admin, act as their user, stop working when revoked.
    let ops = acting(&cluster.api(1), "ops:test").await;
    let e = ops
        .post::<_, Value>("/v1/tokens", &json!({"user": "nurse-TS", "label": "x"}))
        .await
        .expect_err("ops");
    assert_eq!(status_of(&e), "403", "{e:#}");
    let created: CreatedToken = cluster
        .api(1)
        .post("/v1/tokens", &json!({"user": "nurse-TS", "label": "lab system"}))
        .await
        .expect("token");
    let integration = cluster.api(2).with_token(Some(created.token.clone()));
    wait_for("the API token to reach node 2", Duration::from_secs(10), || {
        let integration = integration.clone();
        let path = case_path.clone();
        async move { integration.get::<Value>(&path).await.is_ok() }
    })
    .await;
    let _: Value = cluster.api(1).delete(&format!("/v1/tokens/{}", created.id)).await.expect("revoke");
    wait_for("the API token revocation to reach node 2", Duration::from_secs(10), || {
        let integration = integration.clone();
        let path = case_path.clone();
        async move { integration.get::<Value>(&path).await.is_err_and(|e| status_of(&e) == "401") }
    })
    .await;

    // Disabling a user ends their sessions too.
    let dr = acting(&cluster.api(1), "specialist:DR").await;
    let _: Value = dr.get("/v1/specialists/DR/worklist").await.expect("worklist");
    let _: Value = cluster.api(1).post("/v1/users/DR/disable", &json!({})).await.expect("disable");
    let dr2 = cluster.api(2).with_token(dr.token().map(str::to_owned));
    wait_for("the disabled user to be refused", Duration::from_secs(10), || {
        let dr2 = dr2.clone();
        async move { dr2.get::<Value>("/v1/specialists/DR/worklist").await.is_err_and(|e| status_of(&e) == "401") }
    })
    .await;
    let e = bootstrap::login(&cluster.api(2), "DR", TEST_PASSWORD).await.expect_err("disabled");
    assert_eq!(status_of(&e), "401");

    // Only admins create users; passwords are never answered back.
    let clerk = acting(&cluster.api(1), "clinic_staff:clerk@TS").await;
    let body = json!({"id": "mallory", "role": "admin", "password": "0123456789ab"});
    let e = clerk.post::<_, Value>("/v1/users", &body).await.expect_err("not an admin");
    assert_eq!(status_of(&e), "403", "{e:#}");
    let users: Value = cluster.api(1).get("/v1/users").await.expect("users");
    assert!(!users.to_string().contains("argon2"), "password hashes must not be listed: {users}");
    for id in 1..=3 {
        assert!(!cluster.log_of(id).contains(TEST_PASSWORD), "a password reached node {id}'s log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_back_off_and_the_cli_stores_its_token_privately() {
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    cluster.wait_leader(&[1, 2, 3]).await;
    seed_region(&cluster.api(1)).await;
    token(&cluster.api(1), NURSE).await;

    let api = cluster.api(2).with_token(None);
    for _ in 0..5 {
        let e = bootstrap::login(&api, "nurse-TS", "wrong-password").await.expect_err("wrong password");
        assert_eq!(status_of(&e), "401", "{e:#}");
    }
    let e = bootstrap::login(&api, "nurse-TS", TEST_PASSWORD).await.expect_err("backing off");
    assert_eq!(status_of(&e), "429", "after five failures even the right password waits: {e:#}");
    assert!(e.to_string().contains("wait"), "{e:#}");
    // The count is kept per node, user and address: node 3 has seen no failure.
    bootstrap::login(&cluster.api(3), "nurse-TS", TEST_PASSWORD)
        .await
        .expect("another node keeps its own count");

    // Oversized bodies are refused before they are read: 413, for login and for the API.
    let huge = json!({ "user": "nurse-TS", "password": "x".repeat(2 * 1024 * 1024) });
    let e =
        bootstrap::login(&cluster.api(1), "nurse-TS", &"x".repeat(2 * 1024 * 1024)).await.expect_err("huge");
    assert_eq!(status_of(&e), "413", "{e:#}");
    let nurse = acting(&cluster.api(1), NURSE).await;
    let e = nurse.post::<_, Value>("/v1/cases", &huge).await.expect_err("huge body");
    assert_eq!(status_of(&e), "413", "{e:#}");

    // The CLI: login with --password-stdin writes a 0600 token file the other commands use.
    let token_file = cluster.dir.path().join("cli-token");
    let mut child = std::process::Command::new(node_binary())
        .args(["login", "--user", "nurse-TS", "--password-stdin", "--api", &cluster.node(1).api_addr])
        .env("YILIAN_TOKEN_FILE", &token_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run login");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(format!("{TEST_PASSWORD}\n").as_bytes()).expect("password");
    let out = child.wait_with_output().expect("login output");
    assert!(out.status.success(), "login failed: {}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).expect("token file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file must be private");
    }
    let list = std::process::Command::new(node_binary())
        .args(["case", "list", "--api", &cluster.node(2).api_addr])
        .env("YILIAN_TOKEN_FILE", &token_file)
        .env_remove("YILIAN_TOKEN")
        .output()
        .expect("case list");
    assert!(
        list.status.success(),
        "case list with the stored token: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let none = std::process::Command::new(node_binary())
        .args(["case", "list", "--api", &cluster.node(2).api_addr])
        .env("YILIAN_TOKEN_FILE", cluster.dir.path().join("absent"))
        .env_remove("YILIAN_TOKEN")
        .output()
        .expect("case list");
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("yilian login"));
}
