//! One fetcher's link to one source: a cached connection re-established with backoff, and an
//! optional bandwidth cap.

use super::backoff::Backoff;
use super::fetcher::{Connector, FetchConfig};
use super::protocol::SourceId;
use super::shared::Counters;
use super::throttle::TokenBucket;
use super::window::Adaptive;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The connection to one source and what paces it.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) source: SourceId,
    conn: tokio::sync::Mutex<Option<quinn::Connection>>,
    backoff: std::sync::Mutex<Backoff>,
    /// Caps the bytes per second requested from this source.
    pub(crate) throttle: Option<TokenBucket>,
    /// Adapts the connection's receive window to the link, if configured.
    window: Option<Adaptive>,
}

impl Link {
    /// A link to `source`, not yet connected.
    pub(crate) fn new(source: SourceId, cfg: &FetchConfig) -> Self {
        let throttle = cfg.bandwidth_per_source.map(|rate| {
            let burst = (rate / 8).max(u64::from(cfg.chunk_size));
            TokenBucket::new(rate, burst)
        });
        Link {
            source,
            conn: tokio::sync::Mutex::new(None),
            backoff: std::sync::Mutex::new(Backoff::new(cfg.backoff_initial, cfg.backoff_max)),
            throttle,
            window: cfg.receive_window.map(Adaptive::new),
        }
    }

    /// Note that an answer arrived on `conn`: the receive window may be adjusted.
    pub(crate) fn answered(&self, conn: &quinn::Connection) {
        if let Some(window) = &self.window {
            window.observe(conn);
        }
    }

    /// The open connection, connecting (and retrying with backoff) as long as needed.
    pub(crate) async fn connection<C: Connector>(
        &self,
        connector: &C,
        counters: &Counters,
    ) -> quinn::Connection {
        let mut slot = self.conn.lock().await;
        loop {
            if let Some(conn) = slot.as_ref() {
                if conn.close_reason().is_none() {
                    return conn.clone();
                }
            }
            *slot = None;
            match connector.connect(&self.source).await {
                Ok(conn) => {
                    counters.connects.fetch_add(1, Ordering::Relaxed);
                    self.succeeded();
                    *slot = Some(conn.clone());
                    return conn;
                }
                Err(error) => {
                    counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                    let delay = self.next_delay();
                    tracing::warn!(source = %self.source, %error, retry_in_ms = delay.as_millis() as u64, "cannot connect to source");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// How long to wait after a failure before trying this source again.
    pub(crate) fn next_delay(&self) -> Duration {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).next_delay()
    }

    /// Note a success: the next failure waits the shortest delay again.
    pub(crate) fn succeeded(&self) {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}
