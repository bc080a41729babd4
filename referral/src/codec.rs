//! The one place where Yilian turns values into bytes and back.
//!
//! Every encoded value starts with a format version byte, followed by bincode 1.3.3. A reader
//! refuses a version it does not know instead of misreading it, so a mixed-version cluster
//! fails loudly during an upgrade.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the on-disk and on-wire format written by this build.
pub const FORMAT_VERSION: u8 = 8;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input was empty.
    #[error("empty input: expected a format version byte")]
    Empty,
    /// The input was written by a format this build does not read.
    #[error("data in format version {found}, but this build reads version {FORMAT_VERSION}; run a build that matches the rest of the cluster, or start this node from an empty data directory")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// bincode failed.
    #[error("malformed data: {0}")]
    Bincode(#[from] bincode::Error),
}

/// Encode `value` as version byte + bincode.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_VERSION);
    bincode::serialize_into(&mut out, value)?;
    Ok(out)
}

/// Decode bytes written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_VERSION, body)) => Ok(bincode::deserialize(body)?),
        Some((&found, _)) => Err(CodecError::UnsupportedVersion { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let bytes = encode(&("case", 42u64)).expect("encode");
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (String, u64) = decode(&bytes).expect("decode");
        assert_eq!(back, ("case".to_owned(), 42));
        let mut future = bytes.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(matches!(decode::<(String, u64)>(&future), Err(CodecError::UnsupportedVersion { .. })));
        assert!(matches!(decode::<u8>(&[]), Err(CodecError::Empty)));
        assert!(decode::<(String, u64)>(&bytes[..3]).is_err());
    }
}
