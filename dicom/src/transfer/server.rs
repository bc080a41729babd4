//! The serving side of node-to-node fetch: answers chunk-list and chunk requests on the
//! bidirectional streams of one connection.

use super::protocol::{serve_requests, FetchRequest, FetchResponse};
use super::source::ChunkSource;
use std::sync::Arc;

/// Requests answered at once on one connection; further streams wait (bounded memory).
const MAX_CONCURRENT_REQUESTS: usize = 16;
/// Largest request frame accepted.
const MAX_REQUEST_BYTES: usize = 1024;

/// Answer fetch requests on `conn` from `source` until the connection closes. Requests for
/// objects the source does not hold are refused with a message saying so.
pub async fn serve_fetch_connection<S: ChunkSource>(conn: quinn::Connection, source: Arc<S>) {
    let remote = conn.remote_address();
    serve_requests(conn, "fetch", MAX_CONCURRENT_REQUESTS, MAX_REQUEST_BYTES, move |request| {
        let source = source.clone();
        async move {
            let response = match request {
                Ok(request) => answer(source.as_ref(), request).await,
                Err(e) => FetchResponse::Refused(format!("unreadable fetch request: {e}")),
            };
            if let FetchResponse::Refused(reason) = &response {
                tracing::info!(%remote, %reason, "fetch request refused");
            }
            response
        }
    })
    .await
}

async fn answer<S: ChunkSource>(source: &S, request: FetchRequest) -> FetchResponse {
    let result = match request {
        FetchRequest::ChunkList { digest, chunk_size } => {
            source.chunk_list(digest, chunk_size).await.map(FetchResponse::ChunkList)
        }
        FetchRequest::Chunk { digest, chunk_size, index } => {
            source.chunk(digest, chunk_size, index).await.map(FetchResponse::Chunk)
        }
    };
    result.unwrap_or_else(|e| FetchResponse::Refused(e.to_string()))
}
