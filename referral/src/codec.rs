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
    /// A stream held more bytes than the values read from it.
    #[error("{0} unexpected bytes after the end of the data: it is damaged or not what was expected")]
    TrailingBytes(u64),
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

/// How many bytes [`encode`] returns for `value`, counted without encoding it (nothing is
/// allocated).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    let body = bincode::serialized_size(value)?;
    Ok(1 + usize::try_from(body).map_err(|_| too_large())?)
}

/// A size that cannot be right: larger than memory can hold, or than the bytes that are left.
fn too_large() -> CodecError {
    CodecError::Bincode(Box::new(bincode::ErrorKind::SizeLimit))
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

/// Reads values that were written one after another as one [`encode_into`] value (a struct's
/// fields, a sequence's length and then its items) from a stream, one at a time, so a large
/// value (a snapshot of a whole region) never has to be in memory at once.
pub struct StreamDecoder<R> {
    reader: R,
    /// Bytes of the stream not read yet: no length read from it may claim more (a damaged length
    /// is refused instead of being allocated).
    remaining: u64,
}

impl<R: std::io::Read> StreamDecoder<R> {
    /// Start reading the `len` bytes of `reader`, which must begin with this build's version
    /// byte.
    pub fn new(mut reader: R, len: u64) -> Result<Self, CodecError> {
        let mut version = [0u8; 1];
        match reader.read_exact(&mut version) {
            Ok(()) if version[0] == FORMAT_VERSION => Ok(Self { reader, remaining: len.saturating_sub(1) }),
            Ok(()) => Err(CodecError::UnsupportedVersion { found: version[0] }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(CodecError::Empty),
            Err(e) => Err(CodecError::Bincode(e.into())),
        }
    }

    /// The next value, decoded as [`decode`] would decode it inside the whole.
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        let mut counted = CountingReader { inner: &mut self.reader, read: 0 };
        let options = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(self.remaining);
        let value = options.deserialize_from(&mut counted);
        self.remaining = self.remaining.saturating_sub(counted.read);
        Ok(value?)
    }

    /// The next value that was encoded as a `Vec<u8>` (or `&[u8]`): its length, then its bytes,
    /// read in one go (decoding them as a sequence would read them one at a time).
    pub fn read_bytes(&mut self) -> Result<Vec<u8>, CodecError> {
        let len: u64 = self.read()?;
        if len > self.remaining {
            return Err(too_large());
        }
        let mut bytes = vec![0u8; len as usize];
        self.reader.read_exact(&mut bytes).map_err(|e| CodecError::Bincode(e.into()))?;
        self.remaining -= len;
        Ok(bytes)
    }

    /// Check that every byte was read.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining {
            0 => Ok(()),
            left => Err(CodecError::TrailingBytes(left)),
        }
    }
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
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
        assert_eq!(encoded_len(&("case", 42u64)).expect("count"), bytes.len());
        let mut future = bytes.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(matches!(decode::<(String, u64)>(&future), Err(CodecError::UnsupportedVersion { .. })));
        assert!(matches!(decode::<u8>(&[]), Err(CodecError::Empty)));
        assert!(decode::<(String, u64)>(&bytes[..3]).is_err());
    }

    #[test]
    fn a_stream_decodes_value_by_value_as_the_whole_did() {
        let whole: (String, Vec<Vec<u8>>) = ("head".into(), vec![b"one".to_vec(), vec![7; 300]]);
        let bytes = encode(&whole).expect("encode");
        let mut stream = StreamDecoder::new(bytes.as_slice(), bytes.len() as u64).expect("version");
        let head: String = stream.read().expect("head");
        let count: u64 = stream.read().expect("count");
        let items: Vec<Vec<u8>> = (0..count)
            .map(|i| match i % 2 {
                0 => stream.read().expect("item"),
                _ => stream.read_bytes().expect("item as bytes"),
            })
            .collect();
        stream.finish().expect("all read");
        assert_eq!((head, items), whole);

        let mut stream = StreamDecoder::new(bytes.as_slice(), bytes.len() as u64 + 5).expect("version");
        let _: (String, Vec<Vec<u8>>) = stream.read().expect("whole");
        assert!(matches!(stream.finish(), Err(CodecError::TrailingBytes(5))));

        // A length larger than what is left is refused before anything is allocated for it.
        let mut damaged = encode(&vec![0u8; 4]).expect("encode");
        damaged[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut stream = StreamDecoder::new(damaged.as_slice(), damaged.len() as u64).expect("version");
        assert!(stream.read::<Vec<u8>>().is_err());
        let mut stream = StreamDecoder::new(damaged.as_slice(), damaged.len() as u64).expect("version");
        assert!(stream.read_bytes().is_err());

        let mut future = bytes.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            StreamDecoder::new(future.as_slice(), 1),
            Err(CodecError::UnsupportedVersion { .. })
        ));
        assert!(matches!(StreamDecoder::new(&[][..], 0), Err(CodecError::Empty)));
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
