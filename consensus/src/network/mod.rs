//! Node-to-node messaging over QUIC with mutual TLS.
//!
//! Each request is one bidirectional QUIC stream carrying one codec-encoded message each way,
//! so a slow request never blocks another. Raft and control traffic use their own connection
//! (ALPN `yilian-raft/1`); bulk image transfer uses separate connections.

mod connections;
mod raft_client;
mod rpc;
pub(crate) mod transport;

pub use raft_client::NetworkFactory;
pub use rpc::{ForwardRequest, ForwardResponse, PeerRequest, PeerResponse};
pub use transport::{BulkHandler, Transport, TransportError};
