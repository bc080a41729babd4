//! openraft's network: Raft RPCs to one peer, each on its own QUIC stream.

use super::rpc::{PeerRequest, PeerResponse};
use super::transport::{Transport, TransportError};
use crate::types::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;
use std::sync::Arc;

/// Creates a [`PeerClient`] per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<Transport>,
}

impl NetworkFactory {
    /// A factory sending over `transport`.
    pub fn new(transport: Arc<Transport>) -> Self {
        Self { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        PeerClient { target, addr: node.raft_addr.clone(), transport: self.transport.clone() }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    transport: Arc<Transport>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<T, E>(
        &self,
        request: PeerRequest,
        option: &RPCOption,
        unpack: impl FnOnce(PeerResponse) -> Option<Result<T, RaftError<NodeId, E>>>,
    ) -> RpcResult<T, E>
    where
        E: std::error::Error,
    {
        let response =
            self.transport.call(self.target, &self.addr, &request, option.hard_ttl()).await.map_err(|e| {
                match e {
                    TransportError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                    TransportError::Exchange { .. } => RPCError::Network(NetworkError::new(&e)),
                }
            })?;
        let refused = match response {
            PeerResponse::Refused(reason) => reason,
            other => match unpack(other) {
                Some(result) => {
                    return result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
                }
                None => "peer answered with the wrong message type".to_owned(),
            },
        };
        tracing::warn!(target_node = self.target, reason = %refused, "peer refused raft RPC");
        Err(RPCError::Network(NetworkError::new(&AnyError::error(refused))))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let started = std::time::Instant::now();
        let (entries, last) = (rpc.entries.len(), rpc.entries.last().map(|e| e.log_id.index));
        let answer = self
            .call(PeerRequest::AppendEntries(rpc), &option, |r| match r {
                PeerResponse::AppendEntries(x) => Some(x),
                _ => None,
            })
            .await;
        tracing::debug!(
            target_node = self.target,
            entries,
            last,
            rtt_us = started.elapsed().as_micros() as u64,
            "append-entries answered"
        );
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(PeerRequest::InstallSnapshot(rpc), &option, |r| match r {
            PeerResponse::InstallSnapshot(x) => Some(x),
            _ => None,
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(PeerRequest::Vote(rpc), &option, |r| match r {
            PeerResponse::Vote(x) => Some(x),
            _ => None,
        })
        .await
    }
}
