//! Group commit for referral writes on the leader.
//!
//! openraft 0.9 appends each `client_write` as its own log entry and waits for that append's
//! fsync before it takes the next request, so one entry costs one fsync on the leader and one on
//! every follower however many clients are waiting. The batcher queues the writes that arrive
//! while earlier entries are still in flight and proposes them together as one
//! [`Request::Referrals`] entry: one fsync per node for the whole group. A write that finds
//! nothing in flight is proposed at once as a plain [`Request::Referral`], so a lone client waits
//! no longer than before.

use crate::batch::{Batched, Batcher, Limits};
use crate::codec;
use crate::types::{NodeId, NodeInfo, Request, Response, StampedCommand, YilianRaft};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use tokio::sync::oneshot;
use yilian_referral::Command;

/// How the batcher groups writes into entries.
///
/// `in_flight`: entries the batcher keeps in flight at once: while they are being replicated,
/// newly arrived writes queue up and go into the next entry. Several let a handful of clients
/// each have its write on the way at once, which is what they wait for on slow links. Each
/// entry has a fixed cost on every node (an fsync and a redb commit, an AppendEntries per
/// follower, openraft's bookkeeping), so when the nodes are CPU-bound fewer, larger entries win:
/// measured on two cores in alternating runs, 2 gave 5 600-5 960 writes/s at 64 clients against
/// 5 130-5 180 with 4 (0.25 against 0.28 CPU ms per write), but 4 clients writing over
/// 100 Mbit/s links (the bulk benchmark) then had a p50 of 10.8 against 8.5 ms and a p99 under
/// a saturating transfer of 38-41 against 31-33 ms. Letting only 2 fly once 3 or 8 writes wait
/// kept the latency but won nothing at 64 clients. 4 it stays: a clinic's few writers on a
/// slow link matter more than 64 writers saturating two cores.
///
/// `max_bytes` bounds the encoded commands of one entry, so that `max_payload_entries` entries
/// still make an AppendEntries that fits the RPC timeout and the transport's message limit.
const LIMITS: Limits = Limits { in_flight: 4, max_items: 64, max_bytes: 64 * 1024 };

/// How a write failed before the state machine answered it.
#[derive(Debug, Clone)]
pub(crate) enum WriteFailure {
    /// openraft refused or lost the proposal (not the leader, shutting down).
    Raft(Box<RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>>),
    /// The batcher stopped before answering (the node is shutting down).
    Dropped,
}

/// The state machine's answer to one write, or why there is none.
pub(crate) type Answer = Result<Response, WriteFailure>;

/// A queued write and where its answer goes.
struct Pending {
    stamped: StampedCommand,
    bytes: usize,
    reply: oneshot::Sender<Answer>,
    queued: std::time::Instant,
}

impl Batched for Pending {
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Queues referral writes and proposes them to Raft in groups.
pub(crate) struct WriteBatcher {
    batcher: Batcher<Pending>,
}

impl WriteBatcher {
    /// Start the batching task for `raft`; it ends when the batcher is dropped.
    pub(crate) fn start(raft: YilianRaft) -> Self {
        let batcher = Batcher::start(LIMITS, move |group| {
            let raft = raft.clone();
            async move { propose(&raft, group).await }
        });
        Self { batcher }
    }

    /// Propose `command`, stamped `at_ms`, and wait for the state machine's answer: the
    /// [`Response`] a single-command entry would have produced.
    pub(crate) async fn write(&self, at_ms: u64, command: Arc<Command>) -> Answer {
        answer(self.queue(at_ms, command)).await
    }

    /// Propose `commands`, each stamped `at_ms`, in their order, and wait for every answer.
    pub(crate) async fn write_all(&self, at_ms: u64, commands: Vec<Arc<Command>>) -> Vec<Answer> {
        let queued: Vec<_> = commands.into_iter().map(|c| self.queue(at_ms, c)).collect();
        let mut answers = Vec::with_capacity(queued.len());
        for queued in queued {
            answers.push(answer(queued).await);
        }
        answers
    }

    /// Queue `command`; `None` when the batcher has stopped.
    fn queue(&self, at_ms: u64, command: Arc<Command>) -> Option<oneshot::Receiver<Answer>> {
        let bytes = codec::encoded_len(&command).unwrap_or(LIMITS.max_bytes);
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            stamped: StampedCommand { at_ms, command },
            bytes,
            reply,
            queued: std::time::Instant::now(),
        };
        self.batcher.push(pending).ok().map(|_| answer)
    }
}

/// Wait for the answer to a queued write; `None` (not queued) or a batcher that stopped before
/// answering is [`WriteFailure::Dropped`].
async fn answer(queued: Option<oneshot::Receiver<Answer>>) -> Answer {
    match queued {
        Some(answer) => answer.await.unwrap_or(Err(WriteFailure::Dropped)),
        None => Err(WriteFailure::Dropped),
    }
}

/// Propose `group` as one entry and hand each write its answer.
async fn propose(raft: &YilianRaft, mut group: Vec<Pending>) {
    if group.len() == 1 {
        let Some(p) = group.pop() else { return };
        let started = std::time::Instant::now();
        let request = Request::Referral { at_ms: p.stamped.at_ms, command: p.stamped.command };
        let written = raft.client_write(request).await;
        tracing::debug!(
            index = written.as_ref().ok().map(|w| w.log_id.index),
            queued_us = (started - p.queued).as_micros() as u64,
            raft_us = started.elapsed().as_micros() as u64,
            "single write answered by raft"
        );
        let answer = written.map(|r| r.data).map_err(|e| WriteFailure::Raft(Box::new(e)));
        let _ = p.reply.send(answer);
        return;
    }
    let (commands, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.stamped, p.reply)).unzip();
    tracing::trace!(commands = commands.len(), "proposing a group of writes");
    match raft.client_write(Request::Referrals(commands.into())).await {
        Ok(written) => match written.data {
            Response::Referrals(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(Response::Referral(answer)));
                }
            }
            other => {
                tracing::error!(answer = ?other, "state machine answered a group of writes with the wrong shape");
                for reply in replies {
                    let _ = reply.send(Ok(other.clone()));
                }
            }
        },
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(WriteFailure::Raft(Box::new(e.clone()))));
            }
        }
    }
}
