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
//! - [`catalog`]: the node-local [`Catalog`] of stored instances (what QIDO-RS searches);
//! - [`web`]: DICOMweb building blocks: QIDO matching, DICOM JSON, multipart, frames, rendering.
//! - [`dimse`]: a storage SCP (C-STORE, C-ECHO) that streams instances to disk and hands them
//!   to an [`dimse::InstanceSink`].
//! - [`transfer`]: chunked, verified, resumable transfer over QUIC: node-to-node fetch with
//!   persisted chunk-level resume, retries with backoff, STAT priority lanes and bandwidth caps,
//!   and resumable clinic uploads.
//!
//! Dependencies go one way: node → dicom → referral; this crate never depends on consensus or node.

pub mod catalog;
pub mod deid;
pub mod digest;
pub mod dimse;
pub mod error;
pub mod ingest;
pub mod pixel_location;
mod scan;
pub mod sop;
pub mod store;
pub mod synth;
pub mod transfer;
pub mod web;

pub use catalog::{Catalog, CatalogRecord};
pub use dicom_core::Tag;
pub use digest::Digest;
pub use error::{CatalogError, IngestError, StoreError, SynthError, WebError};
pub use ingest::{inspect, inspect_with, inspect_with_header, IngestLimits, InstanceInfo};
pub use store::{Put, Store};
pub use synth::{generate, SynthKind, SynthOptions, SynthSummary};
