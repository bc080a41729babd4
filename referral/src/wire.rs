//! Names of Yilian's QUIC protocols (ALPN), defined once for every crate that speaks them.

/// Node-to-node control connections (Raft RPCs and forwarded requests).
pub const ALPN_RAFT: &[u8] = b"yilian-raft/1";
/// Node-to-node image transfer (chunked study fetches).
pub const ALPN_DICOM: &[u8] = b"yilian-dicom/1";
/// Clinic uploads (`yilian upload`).
pub const ALPN_UPLOAD: &[u8] = b"yilian-upload/1";
