//! What decides when the next snapshot is due: log bytes appended since the last snapshot
//! against that snapshot's size.
//!
//! A snapshot reads and encodes the whole state, so building one every fixed number of entries
//! costs more per write as the region grows (seconds of CPU on every node at a hundred thousand
//! cases). Waiting until the log since the last snapshot is at least half the snapshot's size
//! keeps that cost at about two bytes encoded per byte written, however large the state; the
//! log it keeps meanwhile is bounded by half the state's size.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared by the log store (which counts appended bytes) and the state machine (which records
/// each snapshot it builds or installs).
#[derive(Debug, Default)]
pub struct SnapshotPace {
    appended: AtomicU64,
    appended_at_snapshot: AtomicU64,
    snapshot_bytes: AtomicU64,
}

impl SnapshotPace {
    /// `bytes` of encoded entries were appended to the log.
    pub(super) fn appended(&self, bytes: u64) {
        self.appended.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of `bytes` was built or installed (or found at start).
    pub(super) fn snapshot_taken(&self, bytes: u64) {
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.appended_at_snapshot.store(self.appended.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether enough log was written since the last snapshot to make a new one worth its cost:
    /// at least half of the last snapshot's size.
    pub fn log_outgrew_snapshot(&self) -> bool {
        let since = self.appended.load(Ordering::Relaxed) - self.appended_at_snapshot.load(Ordering::Relaxed);
        since >= self.snapshot_bytes.load(Ordering::Relaxed) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_once_half_its_size_was_written_since() {
        let pace = SnapshotPace::default();
        assert!(pace.log_outgrew_snapshot(), "no snapshot yet");
        pace.appended(100);
        pace.snapshot_taken(1_000);
        assert!(!pace.log_outgrew_snapshot());
        pace.appended(499);
        assert!(!pace.log_outgrew_snapshot());
        pace.appended(1);
        assert!(pace.log_outgrew_snapshot());
    }
}
