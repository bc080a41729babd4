//! Chunked, verified, resumable object transfer over QUIC.
//!
//! Two protocols share one framing ([`protocol`]) and one chunk layout ([`chunking`]):
//!
//! - **node-to-node fetch**: a [`Fetcher`] pulls the objects of a [`FetchJob`] it lacks from
//!   the nodes that hold them ([`serve_fetch_connection`] answers on their side). Every chunk is
//!   checked against the source's chunk list, written at its offset into a partial file, fsynced,
//!   and only then recorded in a redb bitmap, so a stopped process or a dropped link resumes from
//!   the last verified chunk. A whole object is checked against its manifest digest before it
//!   enters the [`Store`](crate::Store). An object that fits in one chunk (a typical CT or MR
//!   slice) is fetched in one request, checked against its manifest digest and stored directly:
//!   no chunk list, partial file or progress record, as there is nothing smaller to resume from.
//!   STAT jobs overtake routine ones chunk by chunk.
//! - **clinic upload**: [`upload_file`] sends a file to a node ([`serve_upload_connection`]),
//!   sending only the chunks the node does not already hold, and returns the node's per-file
//!   verdict from its [`UploadSink`].

mod backoff;
pub mod chunking;
pub mod error;
mod fetcher;
mod link;
pub mod protocol;
mod queue;
mod server;
mod shared;
mod source;
mod state;
mod throttle;
mod upload;
mod upload_client;
mod window;
mod worker;

pub use error::{FetchError, SourceError, StateError, UploadError};
pub use fetcher::{Connector, FetchConfig, FetchCounters, FetchEvent, FetchJob, Fetcher, JobProgress};
pub use protocol::{
    ChunkList, SourceId, UploadMeta, ALPN_DICOM, ALPN_UPLOAD, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE, PRIORITY_ROUTINE, PRIORITY_STAT,
};
pub use server::serve_fetch_connection;
pub use source::{ChunkSource, StoreChunkSource, DEFAULT_CACHED_LISTS};
pub use upload::{serve_upload_connection, UploadCounters, UploadLimits, UploadReceiver, UploadSink};
pub use upload_client::{upload_file, upload_file_with, UploadOptions, UploadOutcome};
pub use window::{ReceiveWindow, MIN_WINDOW, START_WINDOW};
