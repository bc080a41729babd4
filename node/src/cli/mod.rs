//! Command-line interface of the `yilian` binary.

use crate::api::NodeView;
use crate::client::ApiClient;
use crate::config::NodeConfig;
use crate::{demo, runtime};

mod referral;
mod study;
mod synth;
mod upload;
mod users;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use yilian_consensus::cluster::Member;
use yilian_consensus::{pki, NodeStatus};

/// Yilian (医联): regional telemedicine and referral backbone.
#[derive(Debug, Parser)]
#[command(name = "yilian", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Regional certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Inspect and change cluster membership.
    Cluster(ClusterArgs),
    /// Referral work: cases, worklists, facilities, specialists, transfers, policies, audit, figures.
    #[command(flatten)]
    Referral(referral::ReferralCmd),
    /// Start a local 3-node demo cluster with a seeded region (Ctrl-C stops it; rerun resumes).
    Demo(demo::DemoArgs),
    /// Write synthetic DICOM studies (CT, DR, ultrasound, 12-lead ECG) for demos and tests.
    Synth(synth::SynthArgs),
    /// Upload DICOM files for a case over QUIC: resumable, with progress and a result per file.
    Upload(upload::UploadArgs),
    /// Log in and store the session token for the other commands.
    Login(users::LoginArgs),
    /// End every session of the logged-in user and forget the stored token.
    Logout(Target),
    /// User accounts (admin).
    User(users::UserArgs),
    /// API tokens for integrations (admin).
    Token(users::TokenArgs),
}

#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Create a regional CA (ca.crt, ca.key) and the region's patient-key secret in --dir.
    Init {
        /// Directory for the CA files.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Region name written into the CA certificate.
        #[arg(long, default_value = "region")]
        region: String,
    },
    /// Issue a certificate for a node, signed by the CA in --dir.
    Issue {
        /// Directory holding ca.crt and ca.key.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The node's id (never reuse the id of a removed node).
        #[arg(long)]
        node_id: u64,
        /// The node's QUIC address (IP:port), written into the certificate.
        #[arg(long)]
        addr: String,
        /// Where to write node-<id>.crt/.key (default: --dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Issue a client certificate (e.g. for a clinic's `yilian upload`), signed by the CA in --dir.
    IssueClient {
        /// Directory holding ca.crt and ca.key.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The client's name: lowercase letters, digits and '-', e.g. ts-lijia-uploader.
        #[arg(long)]
        name: String,
        /// Where to write <name>.crt/.key (default: --dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// Run a node until Ctrl-C or SIGTERM.
    Run {
        /// Path to node.toml (see deploy/node.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Which node to talk to, and as whom.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// HTTP API address of any node.
    #[arg(long, env = "YILIAN_API", default_value = "127.0.0.1:7201", global = true)]
    pub(crate) api: String,
    /// Bearer token to send (a session token or an API token); default: the stored login.
    #[arg(long, env = "YILIAN_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Where `yilian login` stores the session token (default ~/.yilian/token).
    #[arg(long, env = "YILIAN_TOKEN_FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// The regional CA certificate: talk HTTPS to nodes with `[api] tls = true`, trusting only it.
    #[arg(long, env = "YILIAN_CA", global = true)]
    pub(crate) ca: Option<PathBuf>,
}

impl Target {
    /// The token file in force.
    pub(crate) fn token_file(&self) -> PathBuf {
        self.token_file.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
            home.join(".yilian").join("token")
        })
    }

    /// A client for `--api` without credentials (login).
    pub(crate) fn anonymous_client(&self) -> anyhow::Result<ApiClient> {
        self.client_at(&self.api)
    }

    /// A client without credentials for the node at `addr`, over HTTPS when `--ca` is given.
    pub(crate) fn client_at(&self, addr: &str) -> anyhow::Result<ApiClient> {
        match &self.ca {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
                ApiClient::with_ca(addr, &pem)
            }
            None => Ok(ApiClient::new(addr)),
        }
    }

    /// A client for `--api` sending `--token`, `YILIAN_TOKEN` or the stored login.
    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        Ok(self.anonymous_client()?.with_token(Some(self.bearer()?)))
    }

    /// The bearer token to send.
    pub(crate) fn bearer(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let file = self.token_file();
        match std::fs::read_to_string(&file) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            _ => anyhow::bail!(
                "not logged in: run `yilian login --user <name>` first (no token in {}), or pass --token",
                file.display()
            ),
        }
    }
}

#[derive(Debug, Args)]
struct ClusterArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: ClusterCmd,
}

#[derive(Debug, Subcommand)]
enum ClusterCmd {
    /// Form a new cluster from running, pristine nodes (given by API address; --api is ignored)
    /// and create its first admin user, whose generated password is written (mode 0600) to
    /// admin.password next to the region's auth secret.
    Init {
        /// API addresses of the initial members; the first receives the request.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// The region's auth.secret (written by `yilian ca init`).
        #[arg(long, default_value = "certs/auth.secret")]
        auth_secret: PathBuf,
    },
    /// Leader, term, members, learners and last applied index per node.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a running node (given by its API address) as a learner.
    AddLearner {
        /// The new node's API address.
        #[arg(long = "node")]
        node: String,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner's id.
        #[arg(long)]
        node_id: u64,
    },
    /// Remove a member; its id is retired forever.
    Remove {
        /// The member's id.
        #[arg(long)]
        node_id: u64,
    },
}

impl Cli {
    /// Whether this invocation runs once and exits (everything but `node run` and `demo`).
    pub fn is_one_shot(&self) -> bool {
        !matches!(self.command, Top::Node(_) | Top::Demo(_))
    }
}

/// Parse the command line and run it.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Top::Ca(CaCmd::Init { dir, region }) => {
            let cert = pki::init_ca(&dir, &region)?;
            println!("CA created: {} (keep {} secret)", cert.display(), dir.join(pki::CA_KEY).display());
            println!(
                "patient-key secret: {} (copy it to every node of the region; keep it secret)",
                dir.join(pki::PATIENT_SECRET).display()
            );
            println!(
                "auth secret: {} (signs login sessions; copy it to every node of the region; keep it secret)",
                dir.join(pki::AUTH_SECRET).display()
            );
        }
        Top::Ca(CaCmd::Issue { dir, node_id, addr, out }) => {
            let files = pki::issue_node_cert(&dir, node_id, &addr, out.as_deref().unwrap_or(&dir))?;
            println!("issued node {node_id}: {} and {}", files.cert.display(), files.key.display());
        }
        Top::Ca(CaCmd::IssueClient { dir, name, out }) => {
            let files = pki::issue_client_cert(&dir, &name, out.as_deref().unwrap_or(&dir))?;
            println!("issued client {name}: {} and {}", files.cert.display(), files.key.display());
        }
        Top::Node(NodeCmd::Run { config }) => runtime::run(NodeConfig::load(&config)?).await?,
        Top::Cluster(c) => cluster(&c.target, c.command).await?,
        Top::Login(args) => users::login(args).await?,
        Top::Logout(target) => users::logout(target).await?,
        Top::User(args) => users::user(args).await?,
        Top::Token(args) => users::token(args).await?,
        Top::Referral(cmd) => referral::run(cmd).await?,
        Top::Demo(args) => demo::run(args).await?,
        Top::Synth(args) => synth::run(args).await?,
        Top::Upload(args) => upload::run(args).await?,
    }
    Ok(())
}

async fn cluster(target: &Target, cmd: ClusterCmd) -> anyhow::Result<()> {
    if let ClusterCmd::Init { nodes, auth_secret } = &cmd {
        return init_cluster(target, nodes, auth_secret).await;
    }
    let api = target.client()?;
    match cmd {
        ClusterCmd::Init { .. } => {}
        ClusterCmd::Status { json } => status(&api, json).await?,
        ClusterCmd::AddLearner { node } => {
            let view: NodeView = api.at(&node).get("/v1/node").await?;
            let id = view.identity.node_id;
            let _: NodeStatus = api.post("/v1/cluster/learners", &view.identity).await?;
            println!("node {id} added as learner; when `yilian cluster status` shows it caught up, run `yilian cluster promote --node-id {id}`");
        }
        ClusterCmd::Promote { node_id } => {
            let _: NodeStatus = api.post("/v1/cluster/voters", &json!({ "node_id": node_id })).await?;
            println!("node {node_id} is now a voter");
        }
        ClusterCmd::Remove { node_id } => {
            let _: NodeStatus = api.delete(&format!("/v1/cluster/members/{node_id}")).await?;
            println!("node {node_id} removed; its id is retired and can never be reused");
        }
    }
    Ok(())
}

/// `cluster init`: form the cluster with a bootstrap token and create the first admin.
async fn init_cluster(
    target: &Target,
    nodes: &[String],
    auth_secret: &std::path::Path,
) -> anyhow::Result<()> {
    let token = crate::bootstrap::bootstrap_token(auth_secret)?;
    let mut members = Vec::new();
    for addr in nodes {
        let view: NodeView = target.client_at(addr)?.with_token(Some(token.clone())).get("/v1/node").await?;
        members.push(view.identity);
    }
    let first = target.client_at(&nodes[0])?.with_token(Some(token));
    let _: NodeStatus = first.post("/v1/cluster/init", &json!({ "members": members })).await?;
    println!("cluster initialized with nodes {:?}", members.iter().map(|m| m.node_id).collect::<Vec<_>>());
    let password_file = crate::bootstrap::admin_password_file(auth_secret);
    crate::bootstrap::create_first_admin(&first, &password_file).await?;
    println!(
        "first admin: user `{}`, password in {} (mode 0600); log in with `yilian login --user {} --api {}`",
        crate::bootstrap::ADMIN_USER,
        password_file.display(),
        crate::bootstrap::ADMIN_USER,
        nodes[0]
    );
    Ok(())
}

async fn status(api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    let view: NodeView = api.get("/v1/node").await?;
    let s = &view.status;
    let members: Vec<(&str, &Member)> =
        s.voters.iter().map(|m| ("voter", m)).chain(s.learners.iter().map(|m| ("learner", m))).collect();
    let mut rows = Vec::new();
    for (role, m) in &members {
        let seen = api.at(&m.api_addr).get::<NodeView>("/v1/node").await.ok().map(|v| v.status);
        rows.push((*role, (*m).clone(), seen));
    }
    if as_json {
        let nodes: Vec<_> =
            rows.iter().map(|(role, m, seen)| json!({ "role": role, "member": m, "status": seen })).collect();
        let out =
            json!({ "leader": s.leader, "term": s.term, "nodes": nodes, "retired_nodes": s.retired_nodes });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    println!("leader: {}   term: {}", opt(s.leader), s.term);
    println!(
        "{:<5} {:<8} {:<12} {:<22} {:<22} {:>9} {:>9}",
        "NODE", "ROLE", "STATE", "RAFT ADDR", "API ADDR", "LAST LOG", "APPLIED"
    );
    for (role, m, seen) in rows {
        let (state, last, applied) = match &seen {
            Some(st) => (st.state.clone(), opt(st.last_log_index), opt(st.last_applied)),
            None => ("unreachable".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<5} {:<8} {:<12} {:<22} {:<22} {:>9} {:>9}",
            m.node_id, role, state, m.raft_addr, m.api_addr, last, applied
        );
    }
    if !s.retired_nodes.is_empty() {
        println!("retired node ids (never reuse): {:?}", s.retired_nodes);
    }
    Ok(())
}
