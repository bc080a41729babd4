//! Durable Raft storage in one redb database per node (`<data_dir>/raft.redb`).
//!
//! Log appends, votes, truncations, purges and installed snapshots commit with redb's immediate
//! durability (fsync) before openraft is told they are done, so an acknowledged entry or vote
//! survives `kill -9` or power loss. The committed index rides along with the next log append,
//! and the state machine applies in memory and answers at once, while a background writer
//! stores what it applied without an fsync: redb writes it with the next durable commit (or
//! when the database closes), and a crash only rewinds it to an earlier consistent point
//! (`last_applied` and the entities are one transaction), from which openraft re-applies the
//! durable log on restart. Reading a killed node's file offline ([`load_state`]) may therefore
//! miss the last few applied entries.
//!
//! A snapshot is the stored state itself, as etcd's is its backend file: building one to compact
//! the log encodes nothing (its cost does not grow with the region), and the state is encoded
//! only for a follower that needs it, from one read transaction ([`SnapshotData`]).

mod db;
mod log_store;
mod persister;
mod snapshot_data;
mod snapshot_dir;
mod state_machine;

pub use db::{load_state, open, Opened, StoreOpenError, DB_FILE, SM_ENTITIES};
pub use log_store::LogStore;
pub use snapshot_data::SnapshotData;
pub use state_machine::{ClusterState, SharedState, StateMachineStore};

#[cfg(test)]
mod tests;
