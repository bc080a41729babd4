//! Shared code of Yilian's multi-process tests and its benchmark runner: the harness (real
//! `yilian` node processes on loopback with a real CA, certificates, QUIC and redb), and the
//! benchmark runner's load generator and report; the correctness harness (network fault
//! injection, Jepsen-style runs, the linearizability checker, crash consistency of images).

pub mod harness;
pub mod image_crash;
pub mod imaging_client;
pub mod jepsen;
pub mod linearizable;
pub mod load;
pub mod netfault;
pub mod report;
