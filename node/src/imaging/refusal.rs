//! Why an instance was not ingested, per file, with what to do about it.

use yilian_dicom::{CatalogError, IngestError, StoreError};

/// The UIDs of an instance that was read far enough to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUids {
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Study Instance UID.
    pub study_instance_uid: String,
}

/// Why [`Imaging::ingest_file`](super::Imaging::ingest_file) refused a file. Nothing of a refused
/// file is stored or catalogued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestRefusal {
    /// The file is not a DICOM instance Yilian can file (the message says why and what to do).
    #[error(transparent)]
    Invalid(#[from] IngestError),
    /// No case was named and the file's Accession Number is empty.
    #[error(
        "the instance names no case: its Accession Number (0008,0050) is empty; send it with ?case=<case id> \
         or set the Accession Number to the Yilian case id (e.g. C00000001)"
    )]
    NoCase {
        /// The instance.
        uids: InstanceUids,
    },
    /// The case named does not exist in the region.
    #[error(
        "case {case_id} does not exist in this region; submit the case first, or name an existing case with \
         ?case=<case id> or in the Accession Number (0008,0050)"
    )]
    UnknownCase {
        /// The case id named.
        case_id: String,
        /// The instance.
        uids: InstanceUids,
    },
    /// The instance belongs to another study than the one the request was sent to.
    #[error(
        "the instance belongs to study {found}, not to study {expected} named in the request; send it to \
         /dicomweb/studies or to its own study"
    )]
    WrongStudy {
        /// The study named by the request.
        expected: String,
        /// The instance's Study Instance UID.
        found: String,
        /// The instance.
        uids: InstanceUids,
    },
    /// The region refused to attach the instance to the case (the reason names the rule).
    #[error("the instance was not attached to its case: {reason}")]
    ManifestRefused {
        /// The domain's reason.
        reason: String,
        /// The instance.
        uids: InstanceUids,
    },
    /// The study manifest could not be replicated (no leader, node stopping).
    #[error("the cluster could not record the instance right now ({reason}); send the file again shortly")]
    ManifestUnavailable {
        /// What happened.
        reason: String,
    },
    /// The store could not keep the file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The catalog could not record the instance.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The ingest worker stopped before finishing.
    #[error("the ingest worker stopped before finishing ({reason}); send the file again")]
    Interrupted {
        /// What happened.
        reason: String,
    },
}

impl IngestRefusal {
    /// The instance's UIDs, when the file was read far enough to know them.
    pub fn uids(&self) -> Option<&InstanceUids> {
        match self {
            IngestRefusal::NoCase { uids }
            | IngestRefusal::UnknownCase { uids, .. }
            | IngestRefusal::WrongStudy { uids, .. }
            | IngestRefusal::ManifestRefused { uids, .. } => Some(uids),
            _ => None,
        }
    }

    /// A short stable code for the refusal, for per-file results.
    pub fn code(&self) -> &'static str {
        match self {
            IngestRefusal::Invalid(e) => e.code(),
            IngestRefusal::NoCase { .. } => "no_case",
            IngestRefusal::UnknownCase { .. } => "unknown_case",
            IngestRefusal::WrongStudy { .. } => "wrong_study",
            IngestRefusal::ManifestRefused { .. } => "not_attached",
            IngestRefusal::ManifestUnavailable { .. } => "cluster_unavailable",
            IngestRefusal::Store(_) => "store",
            IngestRefusal::Catalog(_) => "catalog",
            IngestRefusal::Interrupted { .. } => "interrupted",
        }
    }

    /// Whether the sender can fix it (true) or the node failed (false).
    pub fn is_sender_error(&self) -> bool {
        !matches!(
            self,
            IngestRefusal::Store(_)
                | IngestRefusal::Catalog(_)
                | IngestRefusal::Interrupted { .. }
                | IngestRefusal::ManifestUnavailable { .. }
        )
    }
}
