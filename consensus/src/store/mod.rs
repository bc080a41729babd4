//! Durable Raft storage in one redb database per node (`<data_dir>/raft.redb`).
//!
//! Every write transaction commits with redb's immediate durability (fsync) before openraft is
//! told it is done, so an acknowledged log append, vote or applied entry survives `kill -9`.

mod db;
mod log_store;
mod state_machine;

pub use db::{load_state, open, Opened, StoreOpenError};
pub use log_store::LogStore;
pub use state_machine::{ClusterState, SharedState, StateMachineStore};
