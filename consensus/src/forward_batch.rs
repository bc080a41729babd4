//! Group forwarding of referral writes from a follower to the leader.
//!
//! A follower passes every write it receives to the leader. One RPC per write costs a QUIC
//! stream, its packets and a task on both nodes for each write; the forwarder queues the writes
//! that arrive while earlier forwards are in flight and sends them to the leader together as one
//! [`ForwardRequest::Writes`]. The leader feeds them to its own write batcher, so they share log
//! entries with its other writes, and answers each one. A lone write still goes at once, as a
//! plain [`ForwardRequest::Write`].

use crate::batch::{Batched, Batcher, Limits};
use crate::codec;
use crate::error::ClusterError;
use crate::network::{ForwardRequest, ForwardResponse, PeerRequest, PeerResponse, Transport, TransportError};
use crate::types::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use yilian_referral::Command;

/// Forward RPCs in flight at once per follower, and the size of one. The leader splits a group
/// into its own entries as its batcher sees fit.
const LIMITS: Limits = Limits { in_flight: 4, max_items: 64, max_bytes: 64 * 1024 };

/// The leader's answer to a forwarded request, or why none came.
pub(crate) type Forwarded = Result<ForwardResponse, TransportError>;

/// A write waiting to be forwarded, and where its answer goes.
struct Pending {
    leader: NodeId,
    addr: String,
    command: Arc<Command>,
    bytes: usize,
    reply: oneshot::Sender<Forwarded>,
}

impl Batched for Pending {
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn joins(&self, first: &Self) -> bool {
        self.leader == first.leader && self.addr == first.addr
    }
}

/// Queues the writes a follower forwards and sends them to the leader in groups.
pub(crate) struct ForwardBatcher {
    batcher: Batcher<Pending>,
}

impl ForwardBatcher {
    /// Start the forwarding task; each RPC waits at most `timeout` for the leader's answer.
    pub(crate) fn start(transport: Arc<Transport>, timeout: Duration) -> Self {
        let batcher = Batcher::start(LIMITS, move |group| {
            let transport = transport.clone();
            async move { forward_group(transport, timeout, group).await }
        });
        Self { batcher }
    }

    /// Forward `command` to `leader` at `addr` and wait for its answer.
    pub(crate) async fn forward(&self, leader: NodeId, addr: &str, command: Arc<Command>) -> Forwarded {
        let stopped = || TransportError::Connect {
            target: leader,
            addr: addr.to_owned(),
            reason: "this node is shutting down".into(),
        };
        let bytes = codec::encoded_len(&command).unwrap_or(LIMITS.max_bytes);
        let (reply, answer) = oneshot::channel();
        let pending = Pending { leader, addr: addr.to_owned(), command, bytes, reply };
        if self.batcher.push(pending).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Send `request` to `leader` and take the leader's answer out of the peer response.
pub(crate) async fn forward_one(
    transport: &Transport,
    leader: NodeId,
    addr: &str,
    request: ForwardRequest,
    timeout: Duration,
) -> Forwarded {
    let answer = transport.call(leader, addr, &PeerRequest::Forward(request), timeout).await?;
    Ok(match answer {
        PeerResponse::Forward(response) => response,
        other => ForwardResponse::Failed(ClusterError::Raft(format!("leader answered {other:?}"))),
    })
}

/// Forward `group` (all to the same leader) in one RPC and hand each write its answer.
async fn forward_group(transport: Arc<Transport>, timeout: Duration, group: Vec<Pending>) {
    let Some(first) = group.first() else { return };
    let (leader, addr) = (first.leader, first.addr.clone());
    let (commands, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.command, p.reply)).unzip();
    if commands.len() == 1 {
        return forward_singly(transport, leader, addr, commands, replies, timeout).await;
    }
    tracing::trace!(leader, commands = commands.len(), "forwarding a group of writes");
    let request = PeerRequest::Forward(ForwardRequest::Writes(commands));
    let answer = transport.call(leader, &addr, &request, timeout).await;
    let answers = match (answer, request) {
        (Ok(PeerResponse::Forward(ForwardResponse::WrittenEach(answers))), _)
            if answers.len() == replies.len() =>
        {
            answers.into_iter().map(Ok).collect()
        }
        (Ok(PeerResponse::Refused(reason)), PeerRequest::Forward(ForwardRequest::Writes(commands))) => {
            tracing::debug!(leader, %reason, "leader refused a group of writes; forwarding them one by one");
            return forward_singly(transport, leader, addr, commands, replies, timeout).await;
        }
        (Ok(PeerResponse::Forward(ForwardResponse::Failed(e))), _) => {
            vec![Ok(ForwardResponse::Failed(e)); replies.len()]
        }
        (Ok(other), _) => {
            let e = ClusterError::Raft(format!("leader answered a group of writes with {other:?}"));
            vec![Ok(ForwardResponse::Failed(e)); replies.len()]
        }
        (Err(e), _) => vec![Err(e); replies.len()],
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// Forward each of `commands` as its own [`ForwardRequest::Write`], all at once.
async fn forward_singly(
    transport: Arc<Transport>,
    leader: NodeId,
    addr: String,
    commands: Vec<Arc<Command>>,
    replies: Vec<oneshot::Sender<Forwarded>>,
    timeout: Duration,
) {
    let mut calls = JoinSet::new();
    for (command, reply) in commands.into_iter().zip(replies) {
        let (transport, addr) = (transport.clone(), addr.clone());
        calls.spawn(async move {
            let answer =
                forward_one(&transport, leader, &addr, ForwardRequest::Write(command), timeout).await;
            let _ = reply.send(answer);
        });
    }
    while calls.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::PeerRequest;
    use crate::tls::{self, TlsFiles, NODE_ALPNS};
    use crate::{network::transport::PeerHandler, pki};
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use yilian_referral::{Actor, Change, Outcome};

    /// A leader that answers each write with the writer's id, counting the RPCs it gets;
    /// `knows_groups: false` behaves as a leader of an earlier build that cannot decode a
    /// group and refuses it unread.
    struct Leader {
        knows_groups: bool,
        rpcs: AtomicUsize,
    }

    fn answer(command: &Command) -> ForwardResponse {
        ForwardResponse::Written(Ok(Outcome::Registered { id: command.actor.id.clone() }))
    }

    impl PeerHandler for Leader {
        async fn handle(&self, _peer: NodeId, request: PeerRequest) -> PeerResponse {
            self.rpcs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            match request {
                PeerRequest::Forward(ForwardRequest::Write(command)) => {
                    PeerResponse::Forward(answer(&command))
                }
                PeerRequest::Forward(ForwardRequest::Writes(commands)) if self.knows_groups => {
                    PeerResponse::Forward(ForwardResponse::WrittenEach(
                        commands.iter().map(|c| answer(c)).collect(),
                    ))
                }
                _ => PeerResponse::Refused("undecodable request: unknown variant".into()),
            }
        }
    }

    fn transport(ca: &Path, dir: &Path, id: NodeId) -> Arc<Transport> {
        let certs = pki::issue_node_cert(ca, id, "127.0.0.1:0", dir).expect("issue certificate");
        let files = TlsFiles { ca_cert: ca.join("ca.crt"), cert: certs.cert, key: certs.key };
        let quic = tls::load(&files, &NODE_ALPNS).expect("load tls");
        Arc::new(Transport::bind("127.0.0.1:0".parse().expect("addr"), quic).expect("bind"))
    }

    /// Forward 12 concurrent writes from node 1 to a leader at node 2; returns the answers
    /// (by writer id) and the number of RPCs the leader got.
    async fn forward_burst(knows_groups: bool) -> (Vec<String>, usize) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca");
        pki::init_ca(&ca, "test").expect("ca");
        let follower = transport(&ca, dir.path(), 1);
        let leader_transport = transport(&ca, dir.path(), 2);
        let addr = leader_transport.local_addr().expect("leader address").to_string();
        let leader = Arc::new(Leader { knows_groups, rpcs: AtomicUsize::new(0) });
        tokio::spawn(leader_transport.clone().serve(leader.clone()));
        let forwards = Arc::new(ForwardBatcher::start(follower, Duration::from_secs(5)));
        let mut writes = JoinSet::new();
        for i in 0..12 {
            let (forwards, addr) = (forwards.clone(), addr.clone());
            writes.spawn(async move {
                let command = Command::new(Actor { id: format!("w{i}"), ..Actor::system() }, Change::Tick);
                (i, forwards.forward(2, &addr, Arc::new(command)).await)
            });
        }
        let mut answers = vec![String::new(); 12];
        while let Some(done) = writes.join_next().await {
            let (i, answer) = done.expect("write task");
            answers[i] = match answer {
                Ok(ForwardResponse::Written(Ok(Outcome::Registered { id }))) => id,
                other => format!("unexpected {other:?}"),
            };
        }
        (answers, leader.rpcs.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn concurrent_writes_share_rpcs_and_each_gets_its_own_answer() {
        let (answers, rpcs) = forward_burst(true).await;
        let expected: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        assert_eq!(answers, expected);
        assert!(rpcs < 12, "12 concurrent writes took {rpcs} RPCs; they should have been grouped");
    }

    #[tokio::test]
    async fn a_leader_that_refuses_groups_gets_each_write_on_its_own() {
        let (answers, rpcs) = forward_burst(false).await;
        let expected: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        assert_eq!(answers, expected);
        assert!(rpcs > 12, "refused groups must be sent again one write per RPC (got {rpcs} RPCs)");
    }
}
