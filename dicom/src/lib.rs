//! Yilian imaging: DICOM parsing, validation, content-addressed storage, de-identification,
//! resumable transfer between nodes, DIMSE and DICOMweb.
//!
//! The imaging pipeline is not built yet (tracked as the imaging issue); this crate holds its
//! place in the workspace layout so the dependency direction node → dicom → referral is fixed.
