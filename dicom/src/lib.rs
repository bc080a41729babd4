//! Yilian imaging: DICOM parsing, validation, content-addressed storage, de-identification,
//! resumable transfer between nodes, DIMSE and DICOMweb.
//!
//! Built so far:
//!
//! - [`ingest`]: [`inspect`] accepts or refuses one file (hard size and length limits, typed
//!   [`IngestError`]s that say what to do) and describes the instance;
//! - [`store`]: a content-addressed [`Store`] (SHA-256 names, atomic durable puts, dedupe,
//!   verify);
//! - [`synth`]: deterministic synthetic CT, DR, ultrasound and 12-lead ECG studies
//!   (`yilian synth`);
//! - [`sop`]: the accepted storage SOP classes and transfer syntaxes;
//! - [`transfer`]: chunked, verified, resumable transfer over QUIC: node-to-node fetch with
//!   persisted chunk-level resume, retries with backoff, STAT priority lanes and bandwidth caps,
//!   and resumable clinic uploads.
//!
//! Dependencies go one way: node → dicom → referral; this crate never depends on consensus or node.

pub mod deid;
pub mod digest;
pub mod error;
pub mod ingest;
mod scan;
pub mod sop;
pub mod store;
pub mod synth;
pub mod transfer;

pub use digest::Digest;
pub use error::{IngestError, StoreError, SynthError};
pub use ingest::{inspect, inspect_with, IngestLimits, InstanceInfo};
pub use store::{Put, Store};
pub use synth::{generate, SynthKind, SynthOptions, SynthSummary};
