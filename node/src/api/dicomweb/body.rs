//! Answer bodies: DICOM JSON, and multipart/related bodies streamed from stored files.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncReadExt;
use yilian_dicom::web::{multipart, DICOM_JSON};

/// Read size when streaming a stored file.
const CHUNK: usize = 256 * 1024;

/// A DICOM JSON answer.
pub fn dicom_json(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, DICOM_JSON)], value.to_string()).into_response()
}

/// Where a part's bytes come from.
pub enum Part {
    /// A whole stored file, streamed.
    File(PathBuf),
    /// Bytes already in memory.
    Bytes(Vec<u8>),
}

/// A `multipart/related` answer of `root_type` parts; each part has its own Content-Type.
pub fn multipart(root_type: &str, parts: Vec<(String, Part)>) -> Response {
    static ANSWERS: AtomicU64 = AtomicU64::new(0);
    let n = ANSWERS.fetch_add(1, Ordering::Relaxed);
    let boundary = multipart::boundary(format!("{}-{n}-{root_type}", std::process::id()).as_bytes());
    let content_type = multipart::content_type(&boundary, root_type);
    let closing = Bytes::from(multipart::closing(&boundary));
    let body = stream::iter(parts)
        .flat_map(move |(media, part)| {
            let head = Bytes::from(multipart::part_head(&boundary, &media, None));
            stream::once(async move { Ok::<_, std::io::Error>(head) })
                .chain(part_stream(part))
                .chain(stream::once(async { Ok(Bytes::from_static(multipart::PART_END)) }))
        })
        .chain(stream::once(async move { Ok(closing) }));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

fn part_stream(part: Part) -> std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> {
    match part {
        Part::Bytes(bytes) => Box::pin(stream::once(async move { Ok(Bytes::from(bytes)) })),
        Part::File(path) => Box::pin(file_stream(path)),
    }
}

/// The bytes of a file in chunks, opened when the stream is first polled.
fn file_stream(path: PathBuf) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    enum State {
        Closed(PathBuf),
        Open(tokio::fs::File),
        Done,
    }
    stream::unfold(State::Closed(path), |state| async move {
        let mut file = match state {
            State::Closed(path) => match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => return Some((Err(e), State::Done)),
            },
            State::Open(f) => f,
            State::Done => return None,
        };
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(k) => {
                buf.truncate(k);
                Some((Ok(Bytes::from(buf)), State::Open(file)))
            }
            Err(e) => Some((Err(e), State::Done)),
        }
    })
}
