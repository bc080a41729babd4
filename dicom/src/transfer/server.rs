//! The serving side of node-to-node fetch: answers chunk-list and chunk requests on the
//! bidirectional streams of one connection.

use super::protocol::{read_frame, write_frame, FetchRequest, FetchResponse};
use super::source::ChunkSource;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Requests answered at once on one connection; further streams wait (bounded memory).
const MAX_CONCURRENT_REQUESTS: usize = 16;
/// Largest request frame accepted.
const MAX_REQUEST_BYTES: usize = 1024;

/// Answer fetch requests on `conn` from `source` until the connection closes. Requests for
/// objects the source does not hold are refused with a message saying so.
pub async fn serve_fetch_connection<S: ChunkSource>(conn: quinn::Connection, source: Arc<S>) {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let remote = conn.remote_address();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "fetch connection ended");
                return;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let response = match read_frame::<FetchRequest>(&mut recv, MAX_REQUEST_BYTES).await {
                Ok(request) => answer(source.as_ref(), request).await,
                Err(e) => FetchResponse::Refused(format!("unreadable fetch request: {e}")),
            };
            if let FetchResponse::Refused(reason) = &response {
                tracing::info!(%remote, %reason, "fetch request refused");
            }
            if write_frame(&mut send, &response).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
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
