//! The one place where Yilian turns values into bytes and back.
//!
//! Every encoded value starts with a format version byte, followed by bincode 1.3.3. A reader
//! refuses a version it does not know instead of misreading it, so a mixed-version cluster
//! fails loudly during an upgrade.

use bincode::Options;
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
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Encode `value` into `out` as version byte + bincode: the bytes [`encode`] returns, without
/// holding them all in memory (a snapshot of a large region streams into a file this way).
pub fn encode_into<W: std::io::Write, T: Serialize + ?Sized>(
    mut out: W,
    value: &T,
) -> Result<(), CodecError> {
    out.write_all(&[FORMAT_VERSION]).map_err(|e| CodecError::Bincode(e.into()))?;
    bincode::serialize_into(out, value)?;
    Ok(())
}

/// Encode `key` for an ordered table (a B-tree key): version byte + bincode with fixed-width
/// big-endian integers, so that byte order follows the key's order (a variant, then its
/// number or its string's length and bytes). Consecutive ids then land side by side in the
/// tree, and storing a new one rewrites the tree's last leaf instead of a random one.
pub fn encode_key<T: Serialize + ?Sized>(key: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(32);
    out.push(FORMAT_VERSION);
    key_options().serialize_into(&mut out, key)?;
    Ok(out)
}

/// Decode a key written by [`encode_key`].
pub fn decode_key<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_VERSION, body)) => Ok(key_options().deserialize(body)?),
        Some((&found, _)) => Err(CodecError::UnsupportedVersion { found }),
    }
}

fn key_options() -> impl bincode::Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_big_endian()
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

    #[test]
    fn keys_sort_like_their_numbers_and_round_trip() {
        let keys: Vec<Vec<u8>> = [1u64, 2, 255, 256, 70_000, u64::MAX]
            .iter()
            .map(|n| encode_key(&("audit", *n)).expect("encode"))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "byte order is numeric order");
        let back: (String, u64) = decode_key(&keys[3]).expect("decode");
        assert_eq!(back, ("audit".to_owned(), 256));
        assert!(matches!(decode_key::<u8>(&[]), Err(CodecError::Empty)));
    }
}
