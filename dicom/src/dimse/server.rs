//! The accept loop: one task per association, a bounded number at once, until shutdown.

use super::association::{self, Shared};
use super::config::ScpConfig;
use super::error::DimseError;
use super::sink::InstanceSink;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, info_span, warn, Instrument};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve DICOM C-ECHO and C-STORE on `listener` until `shutdown` completes, handing every
/// received instance to `sink`.
///
/// Each association runs in its own task. At most `cfg.max_associations` are served at once;
/// connections beyond that are rejected with A-ASSOCIATE-RJ "local limit exceeded" (and, past
/// twice that many, closed at once). On shutdown the server stops accepting, aborts
/// associations waiting for their next PDU (a store in progress with the sink completes
/// first) and returns once every association has ended.
///
/// Fails only before serving: invalid settings, or a temp directory that cannot be created.
pub async fn serve<S: InstanceSink>(
    listener: TcpListener,
    cfg: ScpConfig,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DimseError> {
    cfg.validate()?;
    tokio::fs::create_dir_all(&cfg.tmp_dir)
        .await
        .map_err(|source| DimseError::TmpDir { path: cfg.tmp_dir.clone(), source })?;
    let local = listener.local_addr().ok();
    info!(ae_title = %cfg.ae_title, address = ?local, max_associations = cfg.max_associations, "DICOM SCP listening");
    let slots = Arc::new(Semaphore::new(cfg.max_associations));
    let rejecters = Arc::new(Semaphore::new(cfg.max_associations));
    let shared = Arc::new(Shared::new(cfg, sink));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => report(done),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "cannot accept a connection; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let span = info_span!(
                    "dimse_association",
                    %peer,
                    calling_ae = tracing::field::Empty,
                    called_ae = tracing::field::Empty
                );
                if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                    let shared = Arc::clone(&shared);
                    let stop = stop_rx.clone();
                    tasks.spawn(
                        async move {
                            association::serve(stream, peer, shared, stop).await;
                            drop(slot);
                        }
                        .instrument(span),
                    );
                } else if let Ok(slot) = Arc::clone(&rejecters).try_acquire_owned() {
                    let shared = Arc::clone(&shared);
                    tasks.spawn(
                        async move {
                            association::reject_busy(stream, &shared.cfg).await;
                            drop(slot);
                        }
                        .instrument(span),
                    );
                } else {
                    span.in_scope(|| warn!("connection closed at once: too many connections"));
                }
            }
        }
    }
    info!(running = tasks.len(), "DICOM SCP stopping");
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        report(done);
    }
    info!("DICOM SCP stopped");
    Ok(())
}

/// Log an association task that panicked (its connection and temp file are already dropped).
fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        error!(error = %e, "an association task failed");
    }
}
