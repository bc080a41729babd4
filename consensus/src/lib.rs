//! Yilian consensus: openraft over QUIC with mutual TLS, with durable redb storage.
//!
//! Raft replicates the referral state (cases, study manifests, audit trail); image bytes never
//! go through it.

mod batch;
pub mod cluster;
pub mod codec;
pub mod congestion;
pub mod error;
mod forward_batch;
pub mod network;
pub mod pki;
pub mod store;
pub mod tls;
pub mod types;
mod write_batch;

pub use cluster::{ClusterNode, NodeStatus, RaftSettings};
pub use congestion::{CongestionControl, TransportSettings};
pub use error::ClusterError;
pub use types::{NodeId, NodeInfo};
