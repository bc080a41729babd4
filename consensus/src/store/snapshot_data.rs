//! A snapshot's bytes as openraft reads, seeks and writes them.
//!
//! The applied state is already stored in redb, so a snapshot openraft builds to compact the log
//! encodes nothing: it names how far the stored state reaches. The bytes are encoded only when
//! they are read (a follower too far behind for the log is sent the snapshot):
//! [`SnapshotData::deferred`] holds the encoder, which runs on the blocking pool at the first
//! read or seek and writes into an unnamed temporary file; dropped unread, it costs nothing. A
//! snapshot received from a leader is written into such a file too ([`SnapshotData::receiving`]),
//! and installed by reading it back as a stream ([`SnapshotData::into_reader`]), so no copy of
//! a whole region's bytes is ever held in memory.

use std::future::Future;
use std::io::{self, Cursor, SeekFrom};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_util::either::Either;

/// Encodes a snapshot into a file positioned at its start.
type Encoder = Box<dyn FnOnce() -> io::Result<std::fs::File> + Send + Sync>;

/// The bytes once readable: in memory or in the encoded file.
type Readable<'a> = Either<&'a mut Cursor<Vec<u8>>, &'a mut tokio::fs::File>;

/// Where a snapshot's bytes are.
enum Bytes {
    /// In memory (a snapshot being received).
    Memory(Cursor<Vec<u8>>),
    /// Not encoded yet (`None` only while the encoder is being handed to the blocking pool).
    Deferred(Option<Encoder>),
    /// Being encoded on the blocking pool.
    Encoding(JoinHandle<io::Result<std::fs::File>>),
    /// Encoded into a temporary file.
    File(tokio::fs::File),
}

/// The bytes of one snapshot (openraft's `SnapshotData`).
pub struct SnapshotData {
    bytes: Bytes,
    /// A seek asked for before the bytes were encoded; done once they are.
    seek: Option<SeekFrom>,
}

impl SnapshotData {
    /// Bytes held in memory.
    pub fn in_memory(bytes: Vec<u8>) -> Self {
        Self { bytes: Bytes::Memory(Cursor::new(bytes)), seek: None }
    }

    /// Bytes to be written into `file` (a snapshot being received), which must be empty.
    pub fn receiving(file: std::fs::File) -> Self {
        Self { bytes: Bytes::File(tokio::fs::File::from_std(file)), seek: None }
    }

    /// The bytes as a blocking reader positioned at their start, and their length: to be read on
    /// a blocking thread.
    pub async fn into_reader(self) -> io::Result<(Box<dyn io::Read + Send>, u64)> {
        use std::io::Seek;
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let mut data = match self.bytes {
            Bytes::Memory(cursor) => {
                let len = cursor.get_ref().len() as u64;
                return Ok((Box::new(Cursor::new(cursor.into_inner())), len));
            }
            bytes => Self { bytes, seek: self.seek },
        };
        data.seek(SeekFrom::Start(0)).await?;
        data.flush().await?;
        let Bytes::File(file) = data.bytes else {
            return Err(io::Error::other("the snapshot is not encoded"));
        };
        let mut file = file.into_std().await;
        let len = file.metadata()?.len();
        file.rewind()?;
        Ok((Box::new(io::BufReader::with_capacity(1 << 20, file)), len))
    }

    /// Bytes that `encode` writes into a file (positioned at its start) when first read or
    /// sought.
    pub fn deferred(encode: impl FnOnce() -> io::Result<std::fs::File> + Send + Sync + 'static) -> Self {
        Self { bytes: Bytes::Deferred(Some(Box::new(encode))), seek: None }
    }

    /// All the bytes, from the start.
    pub async fn into_bytes(self) -> io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut data = match self.bytes {
            Bytes::Memory(cursor) => return Ok(cursor.into_inner()),
            bytes => Self { bytes, seek: self.seek },
        };
        data.seek(SeekFrom::Start(0)).await?;
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    /// Drive the encoder until the bytes are readable.
    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Readable<'_>>> {
        loop {
            match &mut self.bytes {
                Bytes::Memory(_) | Bytes::File(_) => break,
                Bytes::Deferred(encode) => {
                    let encode =
                        encode.take().ok_or_else(|| io::Error::other("the snapshot encoder was lost"))?;
                    self.bytes = Bytes::Encoding(tokio::task::spawn_blocking(encode));
                }
                Bytes::Encoding(task) => {
                    let file = ready!(Pin::new(task).poll(cx)).map_err(io::Error::other)??;
                    self.bytes = Bytes::File(tokio::fs::File::from_std(file));
                }
            }
        }
        Poll::Ready(match &mut self.bytes {
            Bytes::Memory(cursor) => Ok(Either::Left(cursor)),
            Bytes::File(file) => Ok(Either::Right(file)),
            Bytes::Deferred(_) | Bytes::Encoding(_) => Err(io::Error::other("the snapshot is not encoded")),
        })
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut bytes = ready!(self.get_mut().poll_encoded(cx))?;
        Pin::new(&mut bytes).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut bytes = ready!(self.get_mut().poll_encoded(cx))?;
        Pin::new(&mut bytes).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut bytes = ready!(self.get_mut().poll_encoded(cx))?;
        Pin::new(&mut bytes).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut bytes = ready!(self.get_mut().poll_encoded(cx))?;
        Pin::new(&mut bytes).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        match &mut this.bytes {
            Bytes::Memory(cursor) => Pin::new(cursor).start_seek(position),
            Bytes::File(file) => Pin::new(file).start_seek(position),
            Bytes::Deferred(_) | Bytes::Encoding(_) => {
                this.seek = Some(position);
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let seek = this.seek.take();
        let mut bytes = match this.poll_encoded(cx) {
            Poll::Ready(bytes) => bytes?,
            Poll::Pending => {
                this.seek = seek;
                return Poll::Pending;
            }
        };
        if let Some(position) = seek {
            Pin::new(&mut bytes).start_seek(position)?;
        }
        Pin::new(&mut bytes).poll_complete(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    fn file_holding(bytes: &[u8]) -> io::Result<std::fs::File> {
        let mut file = tempfile::tempfile()?;
        file.write_all(bytes)?;
        file.rewind()?;
        Ok(file)
    }

    #[tokio::test]
    async fn deferred_bytes_are_encoded_once_at_the_first_seek_and_read_like_a_file() {
        let encoded = Arc::new(AtomicBool::new(false));
        let flag = encoded.clone();
        let mut data = SnapshotData::deferred(move || {
            flag.store(true, Ordering::SeqCst);
            file_holding(b"0123456789")
        });
        tokio::task::yield_now().await;
        assert!(!encoded.load(Ordering::SeqCst), "nothing is encoded before the bytes are used");
        assert_eq!(data.seek(SeekFrom::End(0)).await.expect("length"), 10);
        assert!(encoded.load(Ordering::SeqCst));
        data.seek(SeekFrom::Start(4)).await.expect("seek");
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"456789");
    }

    /// openraft writes a received snapshot chunk by chunk, seeking to each chunk's offset, and
    /// shuts the data down after the last one; the bytes then read back as one stream.
    #[tokio::test]
    async fn received_chunks_read_back_as_one_stream_from_the_start() {
        use tokio::io::AsyncWriteExt;
        let mut data = SnapshotData::receiving(tempfile::tempfile().expect("temp file"));
        for (offset, chunk) in [(0u64, &b"0123"[..]), (4, &b"4567"[..]), (8, &b"89"[..])] {
            data.seek(SeekFrom::Start(offset)).await.expect("seek");
            data.write_all(chunk).await.expect("write");
        }
        data.shutdown().await.expect("shutdown");
        let (mut reader, len) = data.into_reader().await.expect("reader");
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("read");
        assert_eq!((bytes.as_slice(), len), (&b"0123456789"[..], 10));

        let (mut reader, len) = SnapshotData::deferred(|| file_holding(b"encoded"))
            .into_reader()
            .await
            .expect("encoded on the way");
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("read");
        assert_eq!((bytes.as_slice(), len), (&b"encoded"[..], 7));
    }

    #[tokio::test]
    async fn an_encoder_failure_reaches_the_reader() {
        let mut data = SnapshotData::deferred(|| Err(io::Error::other("disk full")));
        let err = data.read_to_end(&mut Vec::new()).await.expect_err("the encoder failed");
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[tokio::test]
    async fn a_deferred_snapshot_dropped_unread_is_never_encoded() {
        let encoded = Arc::new(AtomicBool::new(false));
        let flag = encoded.clone();
        drop(SnapshotData::deferred(move || {
            flag.store(true, Ordering::SeqCst);
            file_holding(b"x")
        }));
        tokio::task::yield_now().await;
        assert!(!encoded.load(Ordering::SeqCst));
    }
}
