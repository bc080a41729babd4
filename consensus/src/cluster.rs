//! A running cluster member: Raft, its storage, and its QUIC endpoint, plus the leader-routing
//! logic every client operation goes through.

use crate::congestion::TransportSettings;
use crate::error::ClusterError;
use crate::forward_batch::{forward_one, ForwardBatcher, Forwarded};
use crate::network::transport::PeerHandler;
use crate::network::{
    BulkHandler, ForwardRequest, ForwardResponse, NetworkFactory, PeerRequest, PeerResponse, Transport,
};
use crate::store::{self, SharedState, StoreOpenError};
use crate::tls::{self, DenyList, TlsError, TlsFiles, NODE_ALPNS};
use crate::types::{NodeId, NodeInfo, Request, Response, YilianRaft};
use crate::write_batch::{Answer, WriteBatcher, WriteFailure};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tracing::Instrument;
use yilian_referral::{Command, DomainError, Outcome};

/// How long a client operation keeps looking for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Pause between attempts while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How far behind the leader a learner may be and still be promoted.
const MAX_PROMOTE_LAG: u64 = 1000;
/// How often the leader looks for passed SLA and offer deadlines.
const DEADLINE_CHECK: Duration = Duration::from_millis(200);
/// How often a node looks for a new certificate in its files (rotation without downtime).
const CERTIFICATE_CHECK: Duration = Duration::from_secs(2);

/// Raft timing and snapshot settings: the `[raft]` table of the node's config file, where every
/// key is optional. The defaults suit nodes on one LAN or metro network (round trips of a few
/// ms); across a WAN raise them (see `deploy/node.example.toml`). In openraft 0.9 a follower
/// that has seen a leader waits `election_timeout_max_ms` (the leader lease) plus a random
/// `election_timeout_min_ms..election_timeout_max_ms` without heartbeats before it stands for
/// election, so a dead leader is replaced after 1.5-2.5 x the election timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    /// Leader heartbeat interval; in openraft 0.9 also the RPC timeout.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max_ms: u64,
    /// Timeout for sending one snapshot chunk.
    pub install_snapshot_timeout_ms: u64,
    /// Most log entries sent in one AppendEntries (an entry holds up to 64 KiB of grouped
    /// writes, so this bounds one message to about 4 MiB at the default).
    pub max_payload_entries: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind the last snapshot (for lagging followers).
    pub logs_kept_after_snapshot: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            install_snapshot_timeout_ms: 10_000,
            max_payload_entries: 64,
            snapshot_after_logs: 5000,
            logs_kept_after_snapshot: 1000,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened.
    #[error(transparent)]
    Store(#[from] StoreOpenError),
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The QUIC endpoint could not bind.
    #[error("cannot listen on raft_addr {addr}: {source}; is the port in use?")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// raft_addr is not an IP:port.
    #[error("raft_addr `{0}` is not an IP:port such as 127.0.0.1:7101")]
    BadAddr(String),
    /// openraft rejected the settings or failed to start.
    #[error("raft failed to start: {0}")]
    Raft(String),
}

/// One member's entry in [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub node_id: NodeId,
    /// QUIC address.
    pub raft_addr: String,
    /// HTTP API address.
    pub api_addr: String,
}

/// What a node knows about itself and the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node.
    pub node_id: NodeId,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Leader this node knows of.
    pub leader: Option<NodeId>,
    /// Last log index in this node's log.
    pub last_log_index: Option<u64>,
    /// Last index applied to this node's state machine.
    pub last_applied: Option<u64>,
    /// Last index covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// Last index purged from this node's log.
    pub purged_index: Option<u64>,
    /// Voting members.
    pub voters: Vec<Member>,
    /// Non-voting members.
    pub learners: Vec<Member>,
    /// On the leader: the highest index known replicated to each member.
    pub replication: Option<BTreeMap<NodeId, Option<u64>>>,
    /// Node ids that were removed and can never be reused.
    pub retired_nodes: Vec<NodeId>,
    /// SHA-256 fingerprint of the certificate this node presents now.
    pub certificate: String,
    /// Fingerprints of certificates refused at the handshake (those of removed nodes).
    pub revoked_certificates: Vec<String>,
}

/// The replicated deny list: certificates of removed nodes, and any certificate naming a
/// removed node id, are refused at the QUIC handshake on both sides.
struct RevocationList {
    state: SharedState,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationList")
    }
}

impl DenyList for RevocationList {
    fn refusal(&self, cert: &CertificateDer<'_>) -> Option<String> {
        let state = self.state.read();
        let fp = tls::fingerprint(cert);
        if state.revoked_certificates.contains(&fp) {
            return Some(format!("certificate {fp} was revoked (its node was removed from the cluster)"));
        }
        match tls::node_id_of(cert) {
            Ok(id) if state.retired_nodes.contains(&id) => {
                Some(format!("certificate is for node {id}, which was removed from the cluster"))
            }
            _ => None,
        }
    }
}

/// Result of trying an operation on this node as leader.
enum Local {
    NotLeader(Option<(NodeId, NodeInfo)>),
    Failed(ClusterError),
}

/// A running cluster member.
pub struct ClusterNode {
    id: NodeId,
    info: NodeInfo,
    raft: YilianRaft,
    writes: WriteBatcher,
    forwards: ForwardBatcher,
    state: SharedState,
    transport: Arc<Transport>,
    rpc_timeout: Duration,
    stopping: AtomicBool,
    tls_files: TlsFiles,
    transport_settings: TransportSettings,
    certificate: std::sync::Mutex<String>,
}

impl ClusterNode {
    /// Open storage under `data_dir`, bind the QUIC endpoint on `listen_addr` and start Raft.
    /// `info.raft_addr` is the address peers dial (usually `listen_addr`; differs behind NAT,
    /// a load balancer or a proxy).
    pub async fn start(
        id: NodeId,
        info: NodeInfo,
        listen_addr: &str,
        data_dir: &Path,
        tls_files: &TlsFiles,
        settings: &RaftSettings,
        transport_settings: &TransportSettings,
    ) -> Result<Arc<Self>, StartError> {
        let opened = store::open(data_dir)?;
        let state = opened.state_machine.shared();
        let quic = tls::load_with_deny_list(
            tls_files,
            &NODE_ALPNS,
            Arc::new(RevocationList { state: state.clone() }),
            transport_settings.congestion_control,
        )?;
        let certificate = tls::fingerprint_of_file(&tls_files.cert)?;
        let addr: SocketAddr =
            listen_addr.parse().map_err(|_| StartError::BadAddr(listen_addr.to_owned()))?;
        let transport = Arc::new(
            Transport::bind(addr, quic)
                .map_err(|source| StartError::Bind { addr: listen_addr.to_owned(), source })?,
        );
        let config = openraft::Config {
            cluster_name: "yilian".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            install_snapshot_timeout: settings.install_snapshot_timeout_ms,
            max_payload_entries: settings.max_payload_entries,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_after_logs),
            max_in_snapshot_log_to_keep: settings.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = YilianRaft::new(
            id,
            Arc::new(config),
            NetworkFactory::new(transport.clone()),
            opened.log,
            opened.state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let rpc_timeout = Duration::from_millis(settings.install_snapshot_timeout_ms.max(5000));
        let node = Arc::new(Self {
            id,
            info,
            writes: WriteBatcher::start(raft.clone()),
            forwards: ForwardBatcher::start(transport.clone(), rpc_timeout),
            raft,
            state,
            transport: transport.clone(),
            rpc_timeout,
            stopping: AtomicBool::new(false),
            tls_files: tls_files.clone(),
            transport_settings: *transport_settings,
            certificate: std::sync::Mutex::new(certificate),
        });
        tokio::spawn(
            watch_certificate(Arc::downgrade(&node))
                .instrument(tracing::info_span!("certificate", node_id = id)),
        );
        tokio::spawn(
            run_deadline_timer(Arc::downgrade(&node))
                .instrument(tracing::info_span!("deadlines", node_id = id)),
        );
        let handler = node.clone();
        tokio::spawn(
            async move { transport.serve(handler).await }
                .instrument(tracing::info_span!("quic", node_id = id)),
        );
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's addresses.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Hand image-transfer and upload connections to `handler`.
    pub fn set_bulk_handler(&self, handler: Arc<dyn BulkHandler>) {
        self.transport.set_bulk_handler(handler);
    }

    /// Open an image-transfer connection to cluster member `target`, which may have at most
    /// `receive_window` bytes in flight to this node (the connection's window, which the caller
    /// may adjust later) and `stream_window` on each stream.
    pub async fn connect_bulk(
        &self,
        target: NodeId,
        receive_window: u32,
        stream_window: u32,
    ) -> Result<quinn::Connection, ClusterError> {
        let status = self.status();
        let addr = status
            .voters
            .into_iter()
            .chain(status.learners)
            .find(|m| m.node_id == target)
            .map(|m| m.raft_addr)
            .ok_or_else(|| {
                ClusterError::BadRequest(format!("node {target} is not a member of this cluster"))
            })?;
        self.transport
            .connect_bulk(target, &addr, receive_window, stream_window)
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))
    }

    /// Read access to the replicated state as applied on this node.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// This node's Raft metrics as they change; every applied entry changes `last_applied`, so
    /// a task can wait for new state (`changed().await`) instead of polling [`Self::state`].
    pub fn metrics(&self) -> tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, NodeInfo>> {
        self.raft.metrics()
    }

    /// Form a new cluster from `members` (call on one pristine node).
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeInfo>) -> Result<(), ClusterError> {
        if !members.contains_key(&self.id) {
            return Err(ClusterError::BadRequest(format!(
                "the initial members must include the node receiving the request (node {})",
                self.id
            )));
        }
        self.raft.initialize(members).await.map_err(|e| match e {
            RaftError::APIError(e) => ClusterError::Conflict(format!("cannot initialize: {e}")),
            RaftError::Fatal(e) => ClusterError::Raft(e.to_string()),
        })
    }

    /// Apply a referral command through the leader and return the domain's answer.
    pub async fn write(&self, command: Command) -> Result<Result<Outcome, DomainError>, ClusterError> {
        let started = Instant::now();
        let answer = self.on_leader(ForwardRequest::Write(Arc::new(command))).await;
        tracing::debug!(us = started.elapsed().as_micros() as u64, "write answered");
        match answer? {
            ForwardResponse::Written(answer) => Ok(answer),
            other => Err(unexpected(other)),
        }
    }

    /// Wait until this node's state machine reflects every write committed before the call
    /// (ReadIndex through the leader), so a read after it is linearizable.
    pub async fn linearizable_barrier(&self) -> Result<(), ClusterError> {
        let index = match self.on_leader(ForwardRequest::ReadIndex).await? {
            ForwardResponse::ReadIndex(index) => index,
            other => return Err(unexpected(other)),
        };
        if let Some(index) = index {
            self.raft
                .wait(Some(LEADER_WAIT))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|e| match e {
                    openraft::metrics::WaitError::ShuttingDown => ClusterError::ShuttingDown,
                    openraft::metrics::WaitError::Timeout(..) => {
                        ClusterError::Behind(format!("index {index} not applied within {LEADER_WAIT:?}"))
                    }
                })?;
        }
        Ok(())
    }

    /// Add a learner (routed to the leader). Returns once the membership change is committed;
    /// the learner then catches up in the background (watch `last_applied` in the status).
    pub async fn add_learner(&self, node_id: NodeId, info: NodeInfo) -> Result<(), ClusterError> {
        self.on_leader(ForwardRequest::AddLearner { node_id, info }).await.map(drop)
    }

    /// Make a caught-up learner a voter (routed to the leader).
    pub async fn promote(&self, node_id: NodeId) -> Result<(), ClusterError> {
        self.on_leader(ForwardRequest::Promote { node_id }).await.map(drop)
    }

    /// Remove a member and retire its id forever (routed to the leader).
    pub async fn remove(&self, node_id: NodeId) -> Result<(), ClusterError> {
        self.on_leader(ForwardRequest::Remove { node_id }).await.map(drop)
    }

    /// This node's view of itself and the cluster.
    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let member = |id: NodeId| {
            let n = membership.get_node(&id).cloned().unwrap_or_default();
            Member { node_id: id, raft_addr: n.raft_addr, api_addr: n.api_addr }
        };
        let voters: Vec<Member> = membership.voter_ids().map(member).collect();
        let learners: Vec<Member> = membership.learner_ids().map(member).collect();
        NodeStatus {
            node_id: self.id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters,
            learners,
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect()),
            retired_nodes: self.state.read().retired_nodes.iter().copied().collect(),
            certificate: self.certificate.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            revoked_certificates: self.state.read().revoked_certificates.iter().cloned().collect(),
        }
    }

    /// Stop Raft and close the QUIC endpoint.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        self.transport.close();
    }

    /// On the leader, commit the consequences of every deadline that has passed (offer timeouts,
    /// SLA breaches, escalations) as one `Tick` command, so every replica applies the same
    /// decisions. Followers do nothing: a deadline that passes during a leader change is
    /// committed by the next leader, and the domain fires each consequence only once.
    async fn commit_due_deadlines(&self) {
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            return;
        }
        let due = self.state.read().region.next_deadline().is_some_and(|t| t <= now_ms());
        if !due {
            return;
        }
        match self.execute_local(ForwardRequest::Write(Arc::new(Command::tick()))).await {
            Ok(ForwardResponse::Written(Ok(Outcome::Tick { consequences }))) => {
                tracing::info!(consequences, "committed deadline consequences");
            }
            Ok(other) => tracing::warn!(answer = ?other, "deadline tick got an unexpected answer"),
            Err(Local::NotLeader(_)) => tracing::debug!("lost leadership before committing deadlines"),
            Err(Local::Failed(e)) => tracing::warn!(error = %e, "could not commit deadline consequences"),
        }
    }

    /// Run `request` on the leader: here if this node leads, otherwise over QUIC.
    async fn on_leader(&self, request: ForwardRequest) -> Result<ForwardResponse, ClusterError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let is_write = matches!(request, ForwardRequest::Write(_));
        loop {
            let local = match self.other_leader() {
                Some(leader) => Err(Local::NotLeader(Some(leader))),
                None => self.execute_local(request.clone()).await,
            };
            let retry_reason = match local {
                Ok(response) => return Ok(response),
                Err(Local::Failed(e)) => return Err(e),
                Err(Local::NotLeader(None)) => ClusterError::NoLeader,
                Err(Local::NotLeader(Some((leader, node)))) => {
                    match self.forward(leader, &node, &request).await {
                        Ok(ForwardResponse::Failed(ClusterError::NoLeader)) => ClusterError::NoLeader,
                        Ok(response) => return response_or_error(response),
                        Err(e) if e.nothing_sent() || !is_write => {
                            ClusterError::LeaderUnreachable { leader, reason: e.to_string() }
                        }
                        Err(e) => return Err(ClusterError::OutcomeUnknown(e.to_string())),
                    }
                }
            };
            if Instant::now() >= deadline {
                return Err(retry_reason);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The leader this node's Raft knows of, when that is another node: requests then go
    /// straight to it, without first being refused by this node's Raft.
    fn other_leader(&self) -> Option<(NodeId, NodeInfo)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader.filter(|l| *l != self.id)?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Pass `request` to `leader`: writes through the forwarder, which groups concurrent ones
    /// into one RPC, anything else on its own.
    async fn forward(&self, leader: NodeId, node: &NodeInfo, request: &ForwardRequest) -> Forwarded {
        match request {
            ForwardRequest::Write(command) => {
                self.forwards.forward(leader, &node.raft_addr, command.clone()).await
            }
            other => {
                forward_one(&self.transport, leader, &node.raft_addr, other.clone(), self.rpc_timeout).await
            }
        }
    }

    /// Serve `request` if this node is the leader.
    async fn execute_local(&self, request: ForwardRequest) -> Result<ForwardResponse, Local> {
        match request {
            ForwardRequest::Write(command) => written(self.writes.write(now_ms(), command).await),
            ForwardRequest::Writes(commands) => {
                let answers = self.writes.write_all(now_ms(), commands).await;
                Ok(ForwardResponse::WrittenEach(
                    answers.into_iter().map(|answer| answer_for_follower(written(answer))).collect(),
                ))
            }
            ForwardRequest::ReadIndex => match self.raft.get_read_log_id().await {
                Ok((read, _applied)) => Ok(ForwardResponse::ReadIndex(read.map(|l| l.index))),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                    Err(Local::NotLeader(f.leader_id.zip(f.leader_node)))
                }
                // A leader that could not hear from a quorum this round (followers just
                // restarted, or busy replaying their log) is asked again until the deadline.
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(_))) => {
                    Err(Local::NotLeader(None))
                }
                Err(RaftError::Fatal(_)) => Err(Local::Failed(ClusterError::ShuttingDown)),
            },
            ForwardRequest::AddLearner { node_id, info } => self.add_learner_local(node_id, info).await,
            ForwardRequest::Promote { node_id } => self.promote_local(node_id).await,
            ForwardRequest::Remove { node_id } => self.remove_local(node_id).await,
        }
    }

    fn leader_check(&self) -> Result<(), Local> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return Ok(());
        }
        let leader = m
            .current_leader
            .and_then(|l| m.membership_config.membership().get_node(&l).cloned().map(|n| (l, n)));
        Err(Local::NotLeader(leader))
    }

    async fn add_learner_local(&self, node_id: NodeId, info: NodeInfo) -> Result<ForwardResponse, Local> {
        self.leader_check()?;
        if self.state.read().retired_nodes.contains(&node_id) {
            return Err(conflict(format!(
                "node id {node_id} belonged to a removed node and can never be reused; issue a certificate with a new id"
            )));
        }
        let status = self.status();
        if status.voters.iter().chain(&status.learners).any(|m| m.node_id == node_id) {
            return Err(conflict(format!("node {node_id} is already a member")));
        }
        tracing::info!(node_id, raft_addr = %info.raft_addr, "adding learner");
        self.raft.add_learner(node_id, info, false).await.map_err(client_write_error)?;
        Ok(ForwardResponse::Done)
    }

    async fn promote_local(&self, node_id: NodeId) -> Result<ForwardResponse, Local> {
        self.leader_check()?;
        let status = self.status();
        if status.voters.iter().any(|m| m.node_id == node_id) {
            return Err(conflict(format!("node {node_id} is already a voter")));
        }
        if !status.learners.iter().any(|m| m.node_id == node_id) {
            return Err(conflict(format!(
                "node {node_id} is not a learner; add it with `cluster add-learner` first"
            )));
        }
        let matched = status.replication.as_ref().and_then(|r| r.get(&node_id).copied().flatten());
        let last = status.last_log_index.unwrap_or(0);
        match matched {
            None => {
                return Err(conflict(format!(
                    "learner {node_id} has not replicated anything yet; check that it is running and holds a \
                     certificate from this region's CA"
                )))
            }
            Some(m) if last.saturating_sub(m) > MAX_PROMOTE_LAG => {
                return Err(conflict(format!(
                "learner {node_id} is {} entries behind the leader; wait for it to catch up, then promote",
                last - m
            )))
            }
            Some(_) => {}
        }
        tracing::info!(node_id, "promoting learner to voter");
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        self.raft.change_membership(change, false).await.map_err(client_write_error)?;
        Ok(ForwardResponse::Done)
    }

    async fn remove_local(&self, node_id: NodeId) -> Result<ForwardResponse, Local> {
        self.leader_check()?;
        let status = self.status();
        let is_voter = status.voters.iter().any(|m| m.node_id == node_id);
        let is_learner = status.learners.iter().any(|m| m.node_id == node_id);
        if !is_voter && !is_learner {
            if self.state.read().retired_nodes.contains(&node_id) {
                tracing::info!(node_id, "node already removed");
                return Ok(ForwardResponse::Done);
            }
            return Err(conflict(format!("node {node_id} is not a member of the cluster")));
        }
        if is_voter && status.voters.len() == 1 {
            return Err(conflict("cannot remove the last voter".to_owned()));
        }
        let certificates = self.transport.certificates_seen(node_id);
        tracing::info!(
            node_id,
            certificates = certificates.len(),
            "removing member; its id retires and its certificates are revoked once the new membership applies"
        );
        self.raft
            .client_write(Request::RetireNode { node_id, certificates })
            .await
            .map_err(client_write_error)?;
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        self.raft.change_membership(change, false).await.map_err(client_write_error)?;
        Ok(ForwardResponse::Done)
    }

    fn refuse(&self, peer: NodeId, claimed: Option<NodeId>, what: &str) -> Option<PeerResponse> {
        if self.state.read().retired_nodes.contains(&peer) {
            tracing::warn!(peer, rpc = what, "refused RPC from a removed node");
            return Some(PeerResponse::Refused(format!("node {peer} was removed from the cluster")));
        }
        match claimed {
            Some(c) if c != peer => {
                tracing::warn!(
                    peer,
                    claimed = c,
                    rpc = what,
                    "refused RPC: certificate names a different node than the sender claims"
                );
                Some(PeerResponse::Refused(format!(
                    "certificate is for node {peer} but the {what} claims node {c}"
                )))
            }
            _ => None,
        }
    }
}

impl PeerHandler for ClusterNode {
    async fn handle(&self, peer: NodeId, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::AppendEntries(rpc) => {
                if let Some(r) = self.refuse(peer, rpc.vote.leader_id().voted_for(), "append-entries") {
                    return r;
                }
                let started = Instant::now();
                let last = rpc.entries.last().map(|e| e.log_id.index);
                let answer = self.raft.append_entries(rpc).await;
                tracing::debug!(last, us = started.elapsed().as_micros() as u64, "append-entries handled");
                PeerResponse::AppendEntries(answer)
            }
            PeerRequest::Vote(rpc) => {
                if let Some(r) = self.refuse(peer, rpc.vote.leader_id().voted_for(), "vote request") {
                    return r;
                }
                PeerResponse::Vote(self.raft.vote(rpc).await)
            }
            PeerRequest::InstallSnapshot(rpc) => {
                if let Some(r) = self.refuse(peer, rpc.vote.leader_id().voted_for(), "install-snapshot") {
                    return r;
                }
                PeerResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            PeerRequest::Forward(request) => {
                if let Some(r) = self.refuse(peer, None, "forwarded request") {
                    return r;
                }
                PeerResponse::Forward(answer_for_follower(self.execute_local(request).await))
            }
        }
    }
}

/// What a follower that forwarded a request is told: a node that turned out not to lead says
/// there is no leader, so the follower asks again.
fn answer_for_follower(local: Result<ForwardResponse, Local>) -> ForwardResponse {
    match local {
        Ok(response) => response,
        Err(Local::NotLeader(_)) => ForwardResponse::Failed(ClusterError::NoLeader),
        Err(Local::Failed(e)) => ForwardResponse::Failed(e),
    }
}

/// The leader's [`ForwardResponse`] to a write the batcher answered.
fn written(answer: Answer) -> Result<ForwardResponse, Local> {
    match answer {
        Ok(Response::Referral(answer)) => Ok(ForwardResponse::Written(answer)),
        Ok(other) => Err(Local::Failed(ClusterError::Raft(format!("unexpected answer {other:?}")))),
        Err(WriteFailure::Raft(e)) => Err(client_write_error(*e)),
        Err(WriteFailure::Dropped) => Err(Local::Failed(ClusterError::OutcomeUnknown(
            "the node stopped while the write was being proposed".into(),
        ))),
    }
}

fn conflict(msg: String) -> Local {
    Local::Failed(ClusterError::Conflict(msg))
}

fn unexpected(response: ForwardResponse) -> ClusterError {
    ClusterError::Raft(format!("unexpected answer from leader: {response:?}"))
}

fn response_or_error(response: ForwardResponse) -> Result<ForwardResponse, ClusterError> {
    match response {
        ForwardResponse::Failed(e) => Err(e),
        other => Ok(other),
    }
}

fn client_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> Local {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            Local::NotLeader(f.leader_id.zip(f.leader_node))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => conflict(e.to_string()),
        RaftError::Fatal(e) => Local::Failed(fatal(e)),
    }
}

fn fatal(e: impl Display) -> ClusterError {
    tracing::error!(error = %e, "raft stopped");
    ClusterError::ShuttingDown
}

/// Run `step` every `period` while the node lives and is not stopping.
async fn periodically<F, Fut>(node: Weak<ClusterNode>, period: Duration, mut step: F)
where
    F: FnMut(Arc<ClusterNode>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.stopping.load(Ordering::SeqCst) {
            return;
        }
        step(node).await;
    }
}

/// Load the node's certificate again when its file changes (`yilian ca issue` for the same
/// node id), so new connections use the new certificate without a restart.
async fn watch_certificate(node: Weak<ClusterNode>) {
    periodically(node, CERTIFICATE_CHECK, |node| async move { reload_certificate_if_changed(&node) }).await
}

fn reload_certificate_if_changed(node: &ClusterNode) {
    let Ok(now) = tls::fingerprint_of_file(&node.tls_files.cert) else { return };
    let current = node.certificate.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if now == current {
        return;
    }
    let deny = Arc::new(RevocationList { state: node.state.clone() });
    match tls::load_with_deny_list(
        &node.tls_files,
        &NODE_ALPNS,
        deny,
        node.transport_settings.congestion_control,
    ) {
        Ok(quic) => {
            node.transport.reload(quic);
            *node.certificate.lock().unwrap_or_else(|p| p.into_inner()) = now.clone();
            tracing::info!(fingerprint = %now, "reloaded node certificate; new connections use it");
        }
        Err(e) => {
            tracing::warn!(error = %e, "new certificate files are not usable yet; keeping the old certificate")
        }
    }
}

/// The leader's deadline timer: checks every [`DEADLINE_CHECK`] until the node stops.
async fn run_deadline_timer(node: Weak<ClusterNode>) {
    periodically(node, DEADLINE_CHECK, |node| async move { node.commit_due_deadlines().await }).await
}

/// Milliseconds since the Unix epoch on this node's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
