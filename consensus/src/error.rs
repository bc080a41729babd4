//! Errors a cluster operation can end in, as seen by API clients.

use serde::{Deserialize, Serialize};

/// Why a cluster operation did not complete. Safe to send between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// No leader is known (election in progress, or no quorum).
    #[error("no leader is known right now (election in progress or quorum lost); retry shortly")]
    NoLeader,
    /// The leader could not be reached before the request was sent.
    #[error("cannot reach the leader (node {leader}): {reason}; retry shortly")]
    LeaderUnreachable {
        /// The leader's id.
        leader: u64,
        /// Why.
        reason: String,
    },
    /// The request was sent but no answer came back; it may or may not have been applied.
    #[error(
        "no answer from the leader: {0}; the write may or may not have been applied, read before retrying"
    )]
    OutcomeUnknown(String),
    /// The request conflicts with cluster state (e.g. a retired node id).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Raft reported an error.
    #[error("raft error: {0}")]
    Raft(String),
    /// Another member could not be reached for a bulk (image) connection.
    #[error("cannot reach that node for image transfer: {0}; it will be retried")]
    Unreachable(String),
    /// The node is stopping.
    #[error("this node is shutting down; use another node")]
    ShuttingDown,
    /// This node had not applied the leader's latest writes in time for a linearizable read
    /// (it is catching up, or has lost touch with the leader).
    #[error(
        "this node has not caught up with the leader yet ({0}); retry shortly or read from another node"
    )]
    Behind(String),
}
