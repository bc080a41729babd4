//! Where received instances go: the [`InstanceSink`] the SCP hands every complete instance to.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One instance received by C-STORE, complete on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInstance {
    /// A complete Part-10 file in the SCP's temp directory, written but not fsynced: the sink
    /// makes durable what it keeps before it answers. The sink takes ownership: it moves or
    /// deletes the file. If the sink refuses the instance and leaves the file, the
    /// SCP deletes it.
    pub path: PathBuf,
    /// The sender's AE title.
    pub calling_ae: String,
    /// The AE title the sender called (this SCP's).
    pub called_ae: String,
    /// The sender's address.
    pub peer: SocketAddr,
    /// Affected SOP Class UID of the C-STORE request.
    pub sop_class_uid: String,
    /// Affected SOP Instance UID of the C-STORE request.
    pub sop_instance_uid: String,
    /// Transfer syntax of the data set (that of the presentation context).
    pub transfer_syntax: String,
}

/// The sink accepted the instance; the SCP answers with status Success (0000H).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredReply {
    /// A note logged with the instance (e.g. where it was stored); not sent to the peer.
    pub comment: Option<String>,
}

/// The sink refused the instance; the SCP answers with this failure status and comment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("C-STORE refused with status {status:#06X}: {comment}")]
pub struct Refusal {
    /// The DIMSE status (PS3.4 B.2.3, PS3.7 C): a failure code.
    pub status: u16,
    /// Sent as Error Comment (0000,0902): what is wrong and what the sender should do; cut to
    /// 64 characters of printable ASCII on the wire.
    pub comment: String,
}

impl Refusal {
    /// Refused: Out of Resources (A700H): no space, no memory, or the instance is too large.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: Data Set Does Not Match SOP Class (A900H).
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: u16 = 0xA900;
    /// Error: Cannot Understand (C000H).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Refused: SOP Class Not Supported (0122H).
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Refused: Not Authorized (0124H).
    pub const NOT_AUTHORIZED: u16 = 0x0124;
    /// Failure: Processing Failure (0110H).
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// Failure: Duplicate SOP Instance (0111H).
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;

    /// A refusal with any failure status.
    pub fn new(status: u16, comment: impl Into<String>) -> Self {
        Refusal { status, comment: comment.into() }
    }

    /// Refused: Out of Resources (A700H).
    pub fn out_of_resources(comment: impl Into<String>) -> Self {
        Self::new(Self::OUT_OF_RESOURCES, comment)
    }

    /// Error: Data Set Does Not Match SOP Class (A900H).
    pub fn data_set_does_not_match_sop_class(comment: impl Into<String>) -> Self {
        Self::new(Self::DATA_SET_DOES_NOT_MATCH_SOP_CLASS, comment)
    }

    /// Error: Cannot Understand (C000H).
    pub fn cannot_understand(comment: impl Into<String>) -> Self {
        Self::new(Self::CANNOT_UNDERSTAND, comment)
    }

    /// Refused: SOP Class Not Supported (0122H).
    pub fn sop_class_not_supported(comment: impl Into<String>) -> Self {
        Self::new(Self::SOP_CLASS_NOT_SUPPORTED, comment)
    }

    /// Refused: Not Authorized (0124H).
    pub fn not_authorized(comment: impl Into<String>) -> Self {
        Self::new(Self::NOT_AUTHORIZED, comment)
    }

    /// Failure: Processing Failure (0110H).
    pub fn processing_failure(comment: impl Into<String>) -> Self {
        Self::new(Self::PROCESSING_FAILURE, comment)
    }

    /// Failure: Duplicate SOP Instance (0111H).
    pub fn duplicate_sop_instance(comment: impl Into<String>) -> Self {
        Self::new(Self::DUPLICATE_SOP_INSTANCE, comment)
    }
}

/// Receives every complete instance. Implementations must be cheap to share (one is used by all
/// associations at once) and should do blocking work (parsing, hashing, fsync) on
/// `tokio::task::spawn_blocking`.
pub trait InstanceSink: Send + Sync + 'static {
    /// File one received instance, or refuse it.
    fn store(&self, received: ReceivedInstance) -> impl Future<Output = Result<StoredReply, Refusal>> + Send;
}
