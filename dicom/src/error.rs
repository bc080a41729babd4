//! Typed errors of the imaging crate. Each message says what is wrong and what to do about it.

use crate::digest::Digest;
use dicom_core::Tag;
use std::path::PathBuf;

/// Why a file was refused at ingest (one per file; the file is never partly accepted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}; check that the file exists, is a regular file and is readable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the configured limit for one instance.
    #[error(
        "file is {size} bytes, over the {limit}-byte limit for one instance; \
         ask the sender to split it (e.g. one frame per instance) or raise the ingest size limit"
    )]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The file has no bytes at all.
    #[error("file is empty (0 bytes): the copy failed or the export wrote nothing; send the file again")]
    Empty,
    /// No `DICM` marker at byte 128: this is not a DICOM Part 10 file.
    #[error(
        "not a DICOM file: it looks like {looks_like} and has no 'DICM' marker at byte 128; \
         export the images from the modality or PACS as DICOM Part 10 files (.dcm) and send those"
    )]
    NotDicom {
        /// What the bytes look like instead (a PNG image, text, a ZIP archive, ...).
        looks_like: String,
    },
    /// The file ends before a header or value it declares.
    #[error(
        "file is truncated: it ends at byte {size} but {context} needs bytes up to {needed}; \
         the copy was cut short, send the file again"
    )]
    Truncated {
        /// The file's size.
        size: u64,
        /// The offset the file would have to reach.
        needed: u64,
        /// What was being read.
        context: String,
    },
    /// An element declares a length no acceptable file could hold.
    #[error(
        "element {tag} at byte {offset} declares a length of {declared} bytes, more than any accepted file \
         can hold ({limit} bytes); the file is corrupt or crafted, ask the sender to re-export it"
    )]
    DeclaredLengthTooLarge {
        /// The element.
        tag: Tag,
        /// Offset of the element's header.
        offset: u64,
        /// The declared value length.
        declared: u64,
        /// The file size limit in force.
        limit: u64,
    },
    /// The File Meta Information (group 0002) is malformed.
    #[error("malformed file meta information: {reason}; re-export the file with a conformant DICOM tool")]
    BadMeta {
        /// What is wrong.
        reason: String,
    },
    /// The data set's structure is broken (bad VR, length overrunning its item, bad item tags, ...).
    #[error(
        "malformed data set at byte {offset}: {reason}; the file is corrupt, ask the sender to re-export it"
    )]
    Malformed {
        /// Where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The transfer syntax is unknown or not accepted.
    #[error(
        "transfer syntax {uid} is not accepted ({reason}); ask the sender to send Explicit VR Little Endian \
         or a standard compressed syntax (JPEG, JPEG-LS, JPEG 2000, RLE)"
    )]
    UnsupportedTransferSyntax {
        /// The Transfer Syntax UID found.
        uid: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A required attribute is absent or empty.
    #[error(
        "required attribute {name} {tag} is missing or empty; the instance cannot be filed without it, \
         ask the sender to fix the export"
    )]
    MissingAttribute {
        /// The attribute's keyword.
        name: &'static str,
        /// Its tag.
        tag: Tag,
    },
    /// An attribute's value cannot be used.
    #[error(
        "attribute {name} {tag} has the unusable value {value:?}: {reason}; ask the sender to fix the export"
    )]
    InvalidAttribute {
        /// The attribute's keyword.
        name: &'static str,
        /// Its tag.
        tag: Tag,
        /// The value found (cut to 80 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The SOP class is not one Yilian stores.
    #[error(
        "SOP class {uid} ({name}) is not accepted; Yilian stores CR, DX, mammography, CT, MR, US, NM, PET, \
         XA, RF, secondary capture images, ECG waveforms and encapsulated PDF; send one of those"
    )]
    UnsupportedSopClass {
        /// The SOP Class UID found.
        uid: String,
        /// Its name, or "unknown".
        name: &'static str,
    },
    /// The file meta group and the data set disagree.
    #[error(
        "the file meta information says {attribute} is {meta:?} but the data set says {dataset:?}; \
         the file was edited inconsistently, re-export it"
    )]
    Inconsistent {
        /// Which attribute pair disagrees.
        attribute: &'static str,
        /// The value in group 0002.
        meta: String,
        /// The value in the data set.
        dataset: String,
    },
    /// An instance lacks the payload its SOP class requires (pixels, waveform, document).
    #[error("this {sop_class} instance has no {payload}; the file is probably truncated, send it again")]
    MissingPayload {
        /// The SOP class name.
        sop_class: &'static str,
        /// What is missing.
        payload: &'static str,
    },
    /// Native pixel data is shorter than the image attributes require.
    #[error(
        "pixel data holds {declared} bytes but Rows x Columns x Frames x Samples x Bits Allocated needs \
         {expected}; the image is incomplete or its attributes are wrong, ask the sender to re-export it"
    )]
    PixelDataTooShort {
        /// The Pixel Data value length.
        declared: u64,
        /// The length the image attributes require.
        expected: u64,
    },
    /// The DICOM parser refused the data set after the structural checks passed.
    #[error(
        "the DICOM parser refused the file: {reason}; the file is corrupt, ask the sender to re-export it"
    )]
    Parse {
        /// The parser's message.
        reason: String,
    },
}

impl IngestError {
    /// A short stable code for the error kind, for API responses and per-file upload results.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Io { .. } => "io",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Empty => "empty",
            IngestError::NotDicom { .. } => "not_dicom",
            IngestError::Truncated { .. } => "truncated",
            IngestError::DeclaredLengthTooLarge { .. } => "declared_length_too_large",
            IngestError::BadMeta { .. } => "bad_meta",
            IngestError::Malformed { .. } => "malformed",
            IngestError::UnsupportedTransferSyntax { .. } => "unsupported_transfer_syntax",
            IngestError::MissingAttribute { .. } => "missing_attribute",
            IngestError::InvalidAttribute { .. } => "invalid_attribute",
            IngestError::UnsupportedSopClass { .. } => "unsupported_sop_class",
            IngestError::Inconsistent { .. } => "inconsistent",
            IngestError::MissingPayload { .. } => "missing_payload",
            IngestError::PixelDataTooShort { .. } => "pixel_data_too_short",
            IngestError::Parse { .. } => "parse",
        }
    }
}

/// A content-addressed store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}; check free space and permissions of the store directory")]
    Io {
        /// What was being done ("create", "write", "rename", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the source stream failed.
    #[error(
        "cannot read the source of the object being stored: {source}; nothing was stored, retry the upload"
    )]
    Source {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file handed over to be stored is not the size it was inspected at.
    #[error(
        "{path} holds {actual} bytes but was inspected at {expected}: it changed while being \
         stored; nothing was stored, send it again"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its size when it was inspected.
        expected: u64,
        /// Its size now.
        actual: u64,
    },
    /// No object with this digest is in the store.
    #[error("object {digest} is not in this store; fetch it again from a node that holds it")]
    NotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// The stored bytes no longer hash to the object's name.
    #[error(
        "object {digest} is corrupt: its bytes now hash to {actual}; remove it and fetch it again \
         from a node that holds a verified copy"
    )]
    Corrupt {
        /// The object's name (the digest it was stored under).
        digest: Digest,
        /// What its bytes hash to now.
        actual: Digest,
    },
}

/// Writing a synthetic study failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// The options are out of range.
    #[error("invalid synthetic study options: {reason}")]
    InvalidOptions {
        /// What is wrong and the allowed range.
        reason: String,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}; check free space and permissions of the output directory")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The DICOM encoder refused the object (a bug in the generator).
    #[error("cannot encode {path} as DICOM: {reason}; this is a bug in the generator, please report it")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's message.
        reason: String,
    },
}

/// The node-local instance catalog failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The database file could not be opened or created.
    #[error(
        "cannot open the instance catalog {path}: {reason}; check that no other yilian process uses this \
         data directory and that it is writable"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// The database's message.
        reason: String,
    },
    /// A read or write transaction failed.
    #[error("the instance catalog failed: {reason}; check free space and permissions of the data directory")]
    Database {
        /// The database's message.
        reason: String,
    },
    /// A record could not be encoded or decoded.
    #[error(
        "the instance catalog holds an unreadable record ({reason}); move catalog.redb aside and ingest the \
         studies again"
    )]
    Corrupt {
        /// What failed.
        reason: String,
    },
    /// The header of a stored file could not be read.
    #[error(
        "cannot read the DICOM header of {path}: {reason}; the stored file may be damaged, verify the store"
    )]
    Header {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
}

/// A DICOMweb request could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The query string or path parameters are unusable.
    #[error("{reason}")]
    BadRequest {
        /// What is wrong and how to ask instead.
        reason: String,
    },
    /// The frame asked for does not exist.
    #[error("frame {frame} does not exist: this instance has {frames} frame(s), numbered from 1")]
    NoSuchFrame {
        /// The frame asked for (1-based).
        frame: u32,
        /// How many frames the instance has.
        frames: u32,
    },
    /// The instance has no pixel data, so it has no frames to retrieve or render.
    #[error("this instance has no pixel data; retrieve it whole or read its metadata instead")]
    NoPixelData,
    /// The frames of this instance cannot be served as asked.
    #[error("cannot serve the frames of this instance: {reason}; retrieve the whole instance instead")]
    Unsupported {
        /// Why.
        reason: String,
    },
    /// The resource cannot be answered in any of the forms the client accepts.
    #[error("cannot answer in a form the request's Accept header allows: {reason}")]
    NotAcceptable {
        /// Why, and what to accept instead.
        reason: String,
    },
    /// The pixel data could not be decoded or rendered.
    #[error("cannot render this frame: {reason}; retrieve the frame or the instance and view it in a DICOM viewer")]
    Render {
        /// The decoder's message.
        reason: String,
    },
    /// A stored file could not be read.
    #[error("cannot read stored file {path}: {source}; the store may be damaged, verify it")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
