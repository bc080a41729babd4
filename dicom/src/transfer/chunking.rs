//! How an object is cut into chunks, the bitmap of held chunks, and durable chunk I/O on
//! partial files.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Number of chunks of an object of `size` bytes cut at `chunk_size` (0 for an empty object).
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Offset and length of chunk `index` of an object of `size` bytes (the last one may be short).
pub fn chunk_span(size: u64, chunk_size: u32, index: u32) -> (u64, usize) {
    let offset = u64::from(index) * u64::from(chunk_size);
    let len = size.saturating_sub(offset).min(u64::from(chunk_size));
    (offset, len as usize)
}

/// The whole-file digest, size and per-chunk hashes of a file, read once with one chunk of memory.
pub fn hash_file_chunks(path: &Path, chunk_size: u32) -> std::io::Result<(Digest, u64, Vec<Digest>)> {
    let mut file = File::open(path)?;
    let mut whole = Sha256::new();
    let mut buf = vec![0u8; chunk_size as usize];
    let mut hashes = Vec::new();
    let mut size = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        hashes.push(Digest::of_bytes(&buf[..n]));
        size += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok((Digest::from_bytes(whole.finalize().into()), size, hashes))
}

/// Fill `buf` as far as the reader allows; returns the bytes read (short only at end of file).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Read `len` bytes at `offset` of a file.
pub fn read_span(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// Create (or truncate) a partial file of `size` bytes and make its existence durable.
pub(crate) fn create_partial(path: &Path, size: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    file.set_len(size)?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Write `bytes` at `offset` of an existing partial file and fsync it, so a chunk recorded as
/// done afterwards is really on disk.
pub(crate) fn write_chunk_durably(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// Remove a file, treating "already gone" as success.
pub(crate) fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Which chunks of an object are held: bit `i` of byte `i / 8`, least significant bit first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    bits: Vec<u8>,
    len: u32,
}

impl Bitmap {
    /// A bitmap of `len` chunks, none held.
    pub fn new(len: u32) -> Self {
        Bitmap { bits: vec![0; (len as usize).div_ceil(8)], len }
    }

    /// Rebuild a bitmap of `len` chunks from its bytes; `None` if the byte count does not fit
    /// or bits beyond `len` are set.
    pub fn from_bytes(bytes: Vec<u8>, len: u32) -> Option<Self> {
        let map = Bitmap { bits: bytes, len };
        let tail_clean = (len..map.bits.len() as u32 * 8).all(|i| !map.bit(i));
        (map.bits.len() == (len as usize).div_ceil(8) && tail_clean).then_some(map)
    }

    fn bit(&self, i: u32) -> bool {
        self.bits.get(i as usize / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Whether chunk `i` is held.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bit(i)
    }

    /// Mark chunk `i` as held (ignored when out of range).
    pub fn set(&mut self, i: u32) {
        if i < self.len {
            self.bits[i as usize / 8] |= 1 << (i % 8);
        }
    }

    /// Number of chunks the bitmap covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the bitmap covers no chunk.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks held.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    /// Whether every chunk is held.
    pub fn is_complete(&self) -> bool {
        self.count() == self.len
    }

    /// Indexes of the chunks not held, in order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| !self.bit(i))
    }

    /// The bitmap's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_object_exactly() {
        assert_eq!(chunk_count(0, 4096), 0);
        assert_eq!(chunk_count(4096, 4096), 1);
        assert_eq!(chunk_count(4097, 4096), 2);
        assert_eq!(chunk_span(4097, 4096, 0), (0, 4096));
        assert_eq!(chunk_span(4097, 4096, 1), (4096, 1));
    }

    #[test]
    fn bitmap_round_trip_and_bounds() {
        let mut b = Bitmap::new(10);
        b.set(0);
        b.set(9);
        b.set(10);
        assert_eq!(b.count(), 2);
        assert_eq!(b.missing().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let back = Bitmap::from_bytes(b.as_bytes().to_vec(), 10).expect("valid bitmap");
        assert_eq!(back, b);
        assert!(Bitmap::from_bytes(vec![0xff, 0xff], 10).is_none());
        assert!(Bitmap::from_bytes(vec![0], 10).is_none());
        assert!(Bitmap::new(0).is_complete());
    }

    #[test]
    fn file_chunk_hashes_match_spans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let (whole, size, hashes) = hash_file_chunks(&path, 4096).expect("hash");
        assert_eq!((whole, size), (Digest::of_bytes(&data), 10_000));
        assert_eq!(hashes.len(), 3);
        for (i, h) in hashes.iter().enumerate() {
            let (off, len) = chunk_span(size, 4096, i as u32);
            assert_eq!(*h, Digest::of_bytes(&read_span(&path, off, len).expect("read")));
        }
    }
}
