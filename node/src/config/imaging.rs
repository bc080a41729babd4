//! The `[imaging]` table: the DIMSE listener, the readers this node serves, and transfer limits.

use serde::Deserialize;
use std::time::Duration;
use yilian_dicom::transfer::ReceiveWindow;
use yilian_referral::FacilityId;

/// Imaging settings of a node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagingSettings {
    /// TCP address of the DIMSE C-STORE/C-ECHO listener, e.g. `0.0.0.0:11112`; none when unset.
    pub dimse_addr: Option<String>,
    /// The node's DICOM AE title (1 to 16 characters).
    pub ae_title: String,
    /// Facilities whose readers work on this node: studies of cases offered to or owned by
    /// them are prefetched here.
    pub serves: Vec<FacilityId>,
    /// Parallel chunk requests per source node.
    pub streams_per_link: usize,
    /// Per-source bandwidth cap for prefetches in megabits per second; unlimited when unset.
    pub link_rate_limit_mbit: Option<u64>,
    /// Most image bytes a source may have in flight to this node during a prefetch, in KiB
    /// (the largest QUIC receive window of fetch connections): bounds the queue a prefetch
    /// builds in a link, which Raft traffic on the same link waits behind, to this / link rate.
    pub fetch_window_kb: u32,
    /// Queueing delay a prefetch may add to a link, in milliseconds: the fetch window follows
    /// the link's round trip, up to `fetch_window_kb`, so what the prefetch queues in the link
    /// stays about this long (or a quarter of the round trip, on a longer path). 0 keeps the
    /// window fixed at `fetch_window_kb`.
    pub fetch_queue_ms: u32,
    /// Largest object accepted by any ingest path, in megabytes.
    pub max_object_mb: u64,
}

/// Default `fetch_window_kb`: ~100 Mbit/s per source over round trips up to 300 ms.
pub const DEFAULT_FETCH_WINDOW_KB: u32 = 4096;
/// Largest `fetch_window_kb` (64 MiB).
const MAX_FETCH_WINDOW_KB: u32 = 64 * 1024;
/// Default `fetch_queue_ms`.
pub const DEFAULT_FETCH_QUEUE_MS: u32 = 5;
/// Largest `fetch_queue_ms`.
const MAX_FETCH_QUEUE_MS: u32 = 1000;

impl Default for ImagingSettings {
    fn default() -> Self {
        Self {
            dimse_addr: None,
            ae_title: "YILIAN".into(),
            serves: Vec::new(),
            streams_per_link: 4,
            link_rate_limit_mbit: None,
            fetch_window_kb: DEFAULT_FETCH_WINDOW_KB,
            fetch_queue_ms: DEFAULT_FETCH_QUEUE_MS,
            max_object_mb: 2048,
        }
    }
}

impl ImagingSettings {
    /// What is wrong with these settings, if anything: (key, reason).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.ae_title.trim().is_empty() || self.ae_title.len() > 16 || !self.ae_title.is_ascii() {
            return Some(("imaging.ae_title", "must be 1 to 16 ASCII characters"));
        }
        if self.dimse_addr.as_deref().is_some_and(|a| a.parse::<std::net::SocketAddr>().is_err()) {
            return Some(("imaging.dimse_addr", "must be IP:port, e.g. 127.0.0.1:11112"));
        }
        if self.streams_per_link == 0 || self.streams_per_link > 64 {
            return Some(("imaging.streams_per_link", "must be 1 to 64"));
        }
        if self.link_rate_limit_mbit == Some(0) {
            return Some(("imaging.link_rate_limit_mbit", "must be greater than 0, or left out for no cap"));
        }
        if !(16..=MAX_FETCH_WINDOW_KB).contains(&self.fetch_window_kb) {
            return Some(("imaging.fetch_window_kb", "must be 16 to 65536 (KiB)"));
        }
        if self.fetch_queue_ms > MAX_FETCH_QUEUE_MS {
            return Some(("imaging.fetch_queue_ms", "must be 0 (fixed window) to 1000 (ms)"));
        }
        if self.max_object_mb == 0 {
            return Some(("imaging.max_object_mb", "must be greater than 0"));
        }
        None
    }

    /// The bandwidth cap in bytes per second, if set.
    pub fn link_rate_limit_bytes(&self) -> Option<u64> {
        self.link_rate_limit_mbit.map(|m| m * 1_000_000 / 8)
    }

    /// The largest fetch window in bytes.
    pub fn fetch_window_bytes(&self) -> u32 {
        self.fetch_window_kb.min(MAX_FETCH_WINDOW_KB) * 1024
    }

    /// How fetch windows adapt to the link; `None` when `fetch_queue_ms` is 0 (fixed window).
    pub fn adaptive_fetch_window(&self) -> Option<ReceiveWindow> {
        (self.fetch_queue_ms > 0).then(|| ReceiveWindow {
            max: self.fetch_window_bytes(),
            queue_target: Duration::from_millis(u64::from(self.fetch_queue_ms.min(MAX_FETCH_QUEUE_MS))),
        })
    }

    /// The receive window a fetch connection opens with, in bytes.
    pub fn fetch_window_start_bytes(&self) -> u32 {
        self.adaptive_fetch_window().map_or(self.fetch_window_bytes(), |w| w.start())
    }

    /// The object size limit in bytes.
    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_mb * 1024 * 1024
    }
}
