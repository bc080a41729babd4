//! Messages exchanged between nodes.

use crate::error::ClusterError;
use crate::types::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use yilian_referral::{Command, DomainError, Outcome};

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft log replication and heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft election.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a Raft snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client request a follower passes to the leader.
    Forward(ForwardRequest),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Answer to `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to `Vote`.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to `InstallSnapshot`.
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// Answer to `Forward`.
    Forward(ForwardResponse),
    /// The request was refused before being looked at (e.g. identity mismatch).
    Refused(String),
}

/// Client requests that only the leader can serve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose a referral command (shared, so that a retry needs no copy; on the wire it is the
    /// command itself).
    Write(Arc<Command>),
    /// Confirm leadership and return the index a linearizable read must wait for.
    ReadIndex,
    /// Add a learner.
    AddLearner {
        /// Its id.
        node_id: NodeId,
        /// Its addresses.
        info: NodeInfo,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        node_id: NodeId,
    },
    /// Remove a voter or learner and retire its id.
    Remove {
        /// Its id.
        node_id: NodeId,
    },
    /// Propose several referral commands that reached a follower at about the same time (one
    /// RPC for all of them); answered by [`ForwardResponse::WrittenEach`]. A leader of an
    /// earlier build cannot decode it and refuses it unread, and the follower then forwards
    /// each command as a [`ForwardRequest::Write`].
    Writes(Vec<Arc<Command>>),
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResponse {
    /// The write was applied; this is the domain's answer.
    Written(Result<Outcome, DomainError>),
    /// Wait until this log index is applied, then read.
    ReadIndex(Option<u64>),
    /// A membership change completed.
    Done,
    /// The answers to a [`ForwardRequest::Writes`], one per command in its order: each a
    /// `Written` or a `Failed`.
    WrittenEach(Vec<ForwardResponse>),
    /// The request failed.
    Failed(ClusterError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// The bytes after `skip` of `value`'s encoding.
    fn encoded_after<T: Serialize>(value: &T, skip: usize) -> Vec<u8> {
        codec::encode(value).expect("encode")[skip..].to_vec()
    }

    /// Sharing forwarded commands changed no byte on the wire: after the version byte and the
    /// variant's 4-byte tag comes the command, or the sequence of commands, as before.
    #[test]
    fn shared_forwarded_commands_encode_as_owned_ones_did() {
        let command = Command::tick();
        let write = ForwardRequest::Write(Arc::new(command.clone()));
        assert_eq!(encoded_after(&write, 5), encoded_after(&command, 1));
        let commands = vec![command.clone(), command];
        let writes = ForwardRequest::Writes(commands.iter().cloned().map(Arc::new).collect());
        assert_eq!(encoded_after(&writes, 5), encoded_after(&commands, 1));
    }
}
