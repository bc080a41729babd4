//! DICOMweb building blocks served by each node (the HTTP routes live in the node crate):
//!
//! - [`qido`]: QIDO-RS search over the [`Catalog`](crate::Catalog): matching, paging, results;
//! - [`json`]: DICOM JSON values of catalog attributes;
//! - [`metadata`]: WADO-RS metadata of stored instances, with `BulkDataURI`s;
//! - [`multipart`]: `multipart/related` content types and parts;
//! - [`negotiate`]: which answer forms the Accept header allows;
//! - [`frames`]: frame bytes read straight from stored files;
//! - [`render`]: frames rendered to PNG with window/level;
//! - [`stow`]: the STOW-RS response data set.

pub mod frames;
pub mod json;
pub mod metadata;
pub mod multipart;
pub mod negotiate;
pub mod qido;
pub mod render;
pub mod stow;

/// Media type of DICOM JSON answers.
pub const DICOM_JSON: &str = "application/dicom+json";
/// Media type of DICOM Part 10 files.
pub const APPLICATION_DICOM: &str = "application/dicom";
/// Media type of uncompressed frames and bulk data.
pub const OCTET_STREAM: &str = "application/octet-stream";
