//! Test harness: real `yilian` node processes on loopback with real certificates, QUIC and redb.
//! Shared by the integration tests and the benchmark runner.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use yilian_consensus::pki;
use yilian_node::api::NodeView;
use yilian_node::bootstrap;
use yilian_node::client::ApiClient;
use yilian_node::patient_key::with_check_character;
use yilian_referral::{Case, Outcome};

use crate::netfault::Network;

/// Name of the node binary cargo builds next to the tests and benchmarks of this package.
const NODE_BIN_NAME: &str = "yilian-under-test";

/// Path of the node binary: `$YILIAN_NODE_BIN` if set, else `yilian-under-test` in the target
/// directory of the running test or benchmark executable (cargo builds it beside them).
pub fn node_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("YILIAN_NODE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(NODE_BIN_NAME)
}

/// Raft settings tuned for fast tests on loopback.
pub const FAST_RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 800\nelection_timeout_max_ms = 1600\n";

/// One node process.
pub struct TestNode {
    /// Node id.
    pub id: u64,
    /// QUIC address.
    pub raft_addr: String,
    /// HTTP address.
    pub api_addr: String,
    /// Config file.
    pub config: PathBuf,
    /// Log file (stderr + stdout).
    pub log: PathBuf,
    child: Option<Child>,
}

/// A set of node processes sharing one CA under a temporary directory.
pub struct TestCluster {
    /// Root of certificates, configs, data and logs.
    pub dir: TempDir,
    /// Nodes by id.
    pub nodes: BTreeMap<u64, TestNode>,
    raft_toml: String,
    node_toml: BTreeMap<u64, String>,
    creds: Arc<Credentials>,
    https: bool,
    net: Option<Network>,
}

/// Password of every user the harness creates.
pub const TEST_PASSWORD: &str = "test-password-123";

/// The users and session tokens of one test cluster, shared by all its nodes' API addresses.
#[derive(Default)]
pub struct Credentials {
    admin: Mutex<Option<String>>,
    tokens: Mutex<HashMap<String, String>>,
    nodes: Mutex<Vec<String>>,
}

/// Credentials by node API base URL, so [`acting`] can find a cluster from a client.
fn registry() -> &'static Mutex<HashMap<String, Arc<Credentials>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Credentials>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn credentials_of(api: &ApiClient) -> Arc<Credentials> {
    registry()
        .lock()
        .expect("registry")
        .get(api.base())
        .cloned()
        .unwrap_or_else(|| panic!("{} belongs to no test cluster", api.base()))
}

/// (login, role, facility) of an actor spec `role:id[@facility]`; staff log in as `id-facility`
/// so the same name at two facilities makes two users. Specialists log in as their id.
fn parse_spec(spec: &str) -> (String, String, Option<String>) {
    let (role, rest) = spec.split_once(':').unwrap_or_else(|| panic!("actor spec `{spec}` lacks a role"));
    match rest.split_once('@') {
        Some((id, f)) => (format!("{id}-{f}"), role.to_owned(), Some(f.to_owned())),
        None => (rest.to_owned(), role.to_owned(), None),
    }
}

/// The session token of actor `spec` on the cluster `api` belongs to: the user is created
/// (by the admin) on first use and logged in; later calls reuse the token.
pub async fn token(api: &ApiClient, spec: &str) -> String {
    let creds = credentials_of(api);
    if let Some(t) = creds.tokens.lock().expect("tokens").get(spec) {
        return t.clone();
    }
    let admin =
        api.clone().with_token(Some(creds.admin.lock().expect("admin").clone().expect("admin token")));
    let (id, role, facility) = parse_spec(spec);
    let body = json!({ "id": id, "role": role, "facility": facility, "password": TEST_PASSWORD });
    if let Err(e) = admin.post::<_, Value>("/v1/users", &body).await {
        assert!(e.to_string().contains("already registered"), "creating user {spec}: {e:#}");
    }
    // Make every running node apply the new user before its token is used there.
    let nodes = creds.nodes.lock().expect("nodes").clone();
    for node in nodes {
        let _ = tokio::time::timeout(Duration::from_secs(3), admin.at(&node).get::<Value>("/v1/users")).await;
    }
    let session =
        bootstrap::login(api, &id, TEST_PASSWORD).await.unwrap_or_else(|e| panic!("login {spec}: {e:#}"));
    creds.tokens.lock().expect("tokens").insert(spec.to_owned(), session.token.clone());
    session.token
}

/// The token of `spec` if [`token`] already logged it in on the cluster of node `api_addr`.
pub fn cached_token(api_addr: &str, spec: &str) -> String {
    let creds = credentials_of(&ApiClient::new(api_addr));
    let token = creds.tokens.lock().expect("tokens").get(spec).cloned();
    token.unwrap_or_else(|| panic!("log `{spec}` in with `token` first"))
}

/// Ports [`free_port`] has handed out in this process. A port is free only until the node it
/// was picked for binds it, and the kernel may offer it again meanwhile (a benchmark once
/// started two nodes of one cluster on the same port), so none is handed out twice.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A port free for both TCP and UDP on 127.0.0.1, never one handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner()).insert(port)
        {
            return port;
        }
    }
}

impl TestCluster {
    /// Start `count` node processes (ids 1..=count) and form a cluster of all of them.
    pub async fn start(count: u64, raft_toml: &str) -> Self {
        let mut c = Self::empty(raft_toml);
        c.form(count).await;
        c
    }

    /// Spawn nodes 1..=count, form a cluster of all of them and log the first admin in.
    pub async fn form(&mut self, count: u64) {
        for id in 1..=count {
            self.spawn_new(id);
        }
        self.wait_alive().await;
        self.init((1..=count).collect()).await;
        self.bootstrap_admin(1).await;
    }

    /// Config lines for node `id` alone, written after the shared TOML when the node is spawned
    /// (so they belong to the shared TOML's last table, e.g. a per-node `dimse_addr` after an
    /// `[imaging]` table). Call before the node is spawned.
    pub fn set_node_toml(&mut self, id: u64, toml: &str) {
        self.node_toml.insert(id, toml.to_owned());
    }

    /// Like [`TestCluster::start`], with the HTTP API served over HTTPS (`[api] tls = true`);
    /// the harness clients trust the cluster's CA.
    pub async fn start_https(count: u64, raft_toml: &str) -> Self {
        let mut c = Self::empty(raft_toml);
        c.https = true;
        c.form(count).await;
        c
    }

    /// A client without credentials for the API at `addr` (HTTPS trusting the CA when on).
    pub fn client_at(&self, addr: &str) -> ApiClient {
        if self.https {
            let pem = std::fs::read(self.certs().join(pki::CA_CERT)).expect("CA certificate");
            ApiClient::with_ca(addr, &pem).expect("HTTPS client")
        } else {
            ApiClient::new(addr)
        }
    }

    /// The region's auth secret file.
    pub fn auth_secret(&self) -> PathBuf {
        self.certs().join(pki::AUTH_SECRET)
    }

    /// Create the first admin through node `id` and log it in.
    pub async fn bootstrap_admin(&self, id: u64) {
        let secret = self.auth_secret();
        let api = self.client_at(&self.node(id).api_addr);
        let boot =
            api.clone().with_token(Some(bootstrap::bootstrap_token(&secret).expect("bootstrap token")));
        let password = bootstrap::create_first_admin(&boot, &bootstrap::admin_password_file(&secret))
            .await
            .expect("first admin");
        let session = bootstrap::login(&api, bootstrap::ADMIN_USER, &password).await.expect("admin login");
        *self.creds.admin.lock().expect("admin") = Some(session.token);
    }

    /// The admin's session token.
    pub fn admin_token(&self) -> String {
        self.creds.admin.lock().expect("admin").clone().expect("the admin is bootstrapped")
    }

    /// A CA and an empty directory, no nodes.
    pub fn empty(raft_toml: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("yilian-test-").tempdir().expect("tempdir");
        pki::init_ca(&dir.path().join("certs"), "test").expect("ca");
        Self {
            dir,
            nodes: BTreeMap::new(),
            raft_toml: raft_toml.to_owned(),
            node_toml: BTreeMap::new(),
            creds: Default::default(),
            https: false,
            net: None,
        }
    }

    /// Like [`TestCluster::start`], with every node behind a fault-injecting UDP relay of a
    /// [`Network`] seeded with `net_seed`: nodes advertise their relay, so all node-to-node
    /// traffic crosses it (see [`TestCluster::net`]).
    pub async fn start_behind_relays(count: u64, raft_toml: &str, net_seed: u64) -> Self {
        let mut c = Self::empty(raft_toml);
        c.net = Some(Network::new(net_seed));
        c.form(count).await;
        c
    }

    /// The relays in front of the nodes; panics unless started with
    /// [`TestCluster::start_behind_relays`].
    pub fn net(&self) -> &Network {
        self.net.as_ref().expect("the cluster was started behind relays")
    }

    /// The CA directory.
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Issue a certificate for a new node `id` from `ca_dir`, write its config and start it.
    pub fn spawn_new_with_ca(&mut self, id: u64, ca_dir: &Path) {
        let port = free_port();
        let raft_addr = format!("127.0.0.1:{port}");
        let api_addr = format!("127.0.0.1:{}", free_port());
        let node_dir = self.dir.path().join(format!("node-{id}-{port}"));
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let files = pki::issue_node_cert(ca_dir, id, &raft_addr, &node_dir).expect("issue");
        let config = node_dir.join("node.toml");
        let advertise = match &self.net {
            Some(net) => {
                let relay = net.add_node(id, raft_addr.parse().expect("raft addr")).expect("relay");
                format!("advertise_addr = \"{relay}\"\n")
            }
            None => String::new(),
        };
        let toml = format!(
            "node_id = {id}\ndata_dir = \"data\"\nraft_addr = \"{raft_addr}\"\n{advertise}api_addr = \"{api_addr}\"\n\
             [tls]\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n[auth]\nsecret_file = \"{}\"\n[api]\ntls = {}\n{}\n{}",
            ca_dir.join(pki::CA_CERT).display(),
            files.cert.display(),
            files.key.display(),
            self.auth_secret().display(),
            self.https,
            self.raft_toml,
            self.node_toml.get(&id).map_or("", String::as_str)
        );
        let base = self.client_at(&api_addr).base().to_owned();
        registry().lock().expect("registry").insert(base, self.creds.clone());
        self.creds.nodes.lock().expect("nodes").push(api_addr.clone());
        std::fs::write(&config, toml).expect("config");
        let mut node =
            TestNode { id, raft_addr, api_addr, config, log: node_dir.join("node.log"), child: None };
        node.launch();
        self.nodes.insert(id, node);
    }

    /// Start a new node `id` with a certificate from this cluster's CA.
    pub fn spawn_new(&mut self, id: u64) {
        let certs = self.certs();
        self.spawn_new_with_ca(id, &certs);
    }

    /// HTTP client for node `id`, logged in as the admin once there is one.
    pub fn api(&self, id: u64) -> ApiClient {
        let admin = self.creds.admin.lock().expect("admin").clone();
        self.client_at(&self.node(id).api_addr).with_token(admin)
    }

    /// HTTP client for node `id` acting as `spec` (see [`acting`]).
    pub async fn api_as(&self, id: u64, spec: &str) -> ApiClient {
        acting(&self.api(id), spec).await
    }

    /// The node with `id`.
    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Ids of nodes whose process is running.
    pub fn running(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    /// Wait until every running node answers HTTP.
    pub async fn wait_alive(&self) {
        for id in self.running() {
            let api = self.api(id);
            wait_for(&format!("node {id} to answer HTTP"), Duration::from_secs(30), || {
                let api = api.clone();
                async move { api.get_text("/livez").await.is_ok() }
            })
            .await;
        }
    }

    /// Form a cluster of `ids` (all running and pristine), sending the request to the first.
    pub async fn init(&self, ids: Vec<u64>) {
        let token = bootstrap::bootstrap_token(&self.auth_secret()).expect("bootstrap token");
        let boot = |id: u64| self.client_at(&self.node(id).api_addr).with_token(Some(token.clone()));
        let mut members = Vec::new();
        for id in &ids {
            let view: NodeView = boot(*id).get("/v1/node").await.expect("node view");
            members.push(view.identity);
        }
        let _: Value =
            boot(ids[0]).post("/v1/cluster/init", &json!({ "members": members })).await.expect("init");
    }

    /// `GET /v1/node` on `id`.
    pub async fn view(&self, id: u64) -> anyhow::Result<NodeView> {
        self.api(id).get("/v1/node").await
    }

    /// Wait until all running nodes among `among` agree on one leader, and return it.
    pub async fn wait_leader(&self, among: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut leaders = Vec::new();
            for id in among {
                if let Ok(v) = self.view(*id).await {
                    leaders.push((v.status.leader, v.status.state == "Leader", v.identity.node_id));
                }
            }
            if leaders.len() == among.len() {
                let first = leaders[0].0;
                let all_agree = first.is_some() && leaders.iter().all(|(l, _, _)| *l == first);
                let leader_claims = leaders.iter().any(|(_, is_leader, id)| *is_leader && Some(*id) == first);
                if all_agree && leader_claims {
                    return first.unwrap_or(0);
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader among {among:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill9(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut child) = node.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM node `id` and wait for it to exit.
    pub fn stop(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut child) = node.child.take() {
            // SAFETY: kill(2) on a child we spawned.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            child.wait().expect("reap");
        }
    }

    /// One gauge or counter from node `id`'s `/metrics` (0 when absent or unreadable).
    pub async fn metric(&self, id: u64, name: &str) -> u64 {
        let body = self.api(id).get_text("/metrics").await.unwrap_or_default();
        body.lines()
            .filter_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .find_map(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Freeze node `id` (SIGSTOP): it holds its sockets but answers nothing until resumed.
    pub fn pause(&self, id: u64) {
        self.signal(id, libc::SIGSTOP);
    }

    /// Let a paused node `id` run again (SIGCONT).
    pub fn resume(&self, id: u64) {
        self.signal(id, libc::SIGCONT);
    }

    fn signal(&self, id: u64, signal: i32) {
        if let Some(child) = &self.node(id).child {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Start node `id` again from its data directory.
    pub fn restart(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").launch();
    }

    /// Log output of node `id` so far.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }
}

/// The node processes' log filter: `$YILIAN_NODE_LOG` when set (e.g. `debug` for the write
/// path's per-hop timings and quinn's packet handling), else info with openraft's elections and
/// replication.
fn node_log_filter() -> String {
    std::env::var("YILIAN_NODE_LOG").unwrap_or_else(|_| "info,openraft=info".into())
}

impl TestNode {
    /// The process id of the running node process, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.parent().map(|p| p.join("data")).unwrap_or_default()
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(node_binary())
            .args(["node", "run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", node_log_filter())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.child = Some(child);
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            for node in self.nodes.values() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last log lines of node {} ----", node.id);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Poll `check` until it returns true, failing the test after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `api` logged in as the user described by `spec` (`role:id[@facility]`, e.g. `ops:test`,
/// `specialist:DR`, `clinic_staff:nurse@TS`), created with [`TEST_PASSWORD`] on first use.
pub async fn acting(api: &ApiClient, spec: &str) -> ApiClient {
    let token = token(api, spec).await;
    api.clone().with_token(Some(token))
}

/// The township clinic's nurse in [`seed_region`].
pub const NURSE: &str = "clinic_staff:nurse@TS";

/// Register a small region: provincial, county, township, one on-shift cardiologist at the county.
pub async fn seed_region(api: &ApiClient) {
    let ops = acting(api, "ops:test").await;
    let facilities = [
        json!({"id": "PROV", "name": "省医院", "level": "provincial", "region": "r", "parent": null}),
        json!({"id": "CTY", "name": "县医院", "level": "county", "region": "r", "parent": "PROV"}),
        json!({"id": "TS", "name": "镇卫生院", "level": "township", "region": "r", "parent": "CTY"}),
    ];
    for f in facilities {
        let _: Outcome = ops.post("/v1/facilities", &f).await.expect("facility");
    }
    let dr = json!({
        "id": "DR", "name": "医生", "facility": "CTY", "specialty": "cardiology",
        "modalities": ["ECG"], "cap": 1000, "on_shift": true,
    });
    let _: Outcome = ops.post("/v1/specialists", &dr).await.expect("specialist");
}

/// A valid resident ID derived from `tag` (same tag, same ID).
pub fn patient_id(tag: &str) -> String {
    let n = tag.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 100_000_000_000;
    with_check_character(&format!("110101{n:011}")).expect("17 digits")
}

/// Submit a case whose complaint carries `tag`; returns the case id.
pub async fn submit(api: &ApiClient, tag: &str) -> anyhow::Result<String> {
    let body = json!({
        "patient_id": patient_id(tag), "complaint": format!("complaint {tag}"),
        "priority": "urgent", "specialty": "cardiology",
    });
    match acting(api, NURSE).await.post::<_, Outcome>("/v1/cases", &body).await? {
        Outcome::Case { case_id, .. } => Ok(case_id.0),
        other => anyhow::bail!("unexpected outcome {other:?}"),
    }
}

/// Submit with retries while the cluster has no leader (503); other errors fail the test.
pub async fn submit_retrying(api: &ApiClient, tag: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match submit(api, tag).await {
            Ok(id) => return id,
            Err(e) if Instant::now() < deadline && e.to_string().contains("503") => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("submit {tag} failed: {e:#}"),
        }
    }
}

/// The TS nurse's cases as node `api` has applied them (stale read, no leader involved).
pub async fn cases_stale(api: &ApiClient) -> anyhow::Result<Vec<Case>> {
    acting(api, NURSE).await.get("/v1/cases?consistency=stale").await
}

/// Case id → complaint map.
pub fn by_id(cases: &[Case]) -> BTreeMap<String, String> {
    cases.iter().map(|c| (c.id.0.clone(), c.complaint.clone())).collect()
}

/// Wait until node `api` has applied exactly the cases in `expected` (id → complaint).
pub async fn wait_for_cases(what: &str, api: &ApiClient, expected: &BTreeMap<String, String>) {
    wait_for(what, Duration::from_secs(30), || {
        let api = api.clone();
        let expected = expected.clone();
        async move { cases_stale(&api).await.map(|c| by_id(&c) == expected).unwrap_or(false) }
    })
    .await;
}
