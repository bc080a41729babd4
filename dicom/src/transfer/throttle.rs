//! A token bucket capping the bytes per second requested from one source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token bucket: `rate` bytes per second, holding at most `burst` bytes of credit. Callers
/// reserve bytes before asking for them and sleep off any debt, so later callers queue behind.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: u64,
    burst: u64,
    state: Mutex<Bucket>,
    /// Bytes that went through the bucket.
    pub(crate) granted: AtomicU64,
    /// Reservations that had to wait.
    pub(crate) waits: AtomicU64,
    /// Total wait imposed, in microseconds.
    pub(crate) wait_micros: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Take `n` tokens at time `now` and return how long the caller must wait for them.
    fn reserve(&mut self, now: Instant, n: u64, rate: u64, burst: u64) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate as f64)
        }
    }
}

impl TokenBucket {
    /// A bucket of `rate` bytes/s (at least 1) and `burst` bytes of credit, starting full.
    pub(crate) fn new(rate: u64, burst: u64) -> Self {
        TokenBucket {
            rate: rate.max(1),
            burst,
            state: Mutex::new(Bucket { tokens: burst as f64, last: Instant::now() }),
            granted: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
        }
    }

    /// Wait until `n` bytes may be requested.
    pub(crate) async fn acquire(&self, n: u64) {
        let wait = {
            let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
            bucket.reserve(Instant::now(), n, self.rate, self.burst)
        };
        self.granted.fetch_add(n, Ordering::Relaxed);
        if !wait.is_zero() {
            self.waits.fetch_add(1, Ordering::Relaxed);
            self.wait_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 1000.0, last: t0 };
        assert_eq!(b.reserve(t0, 1000, 1000, 1000), Duration::ZERO);
        assert_eq!(b.reserve(t0, 500, 1000, 1000), Duration::from_millis(500));
        // Half a second later the debt is paid; the next 500 bytes wait another half second.
        assert_eq!(b.reserve(t0 + Duration::from_millis(500), 500, 1000, 1000), Duration::from_millis(500));
        // Credit never exceeds the burst, however long the bucket was idle.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(b.reserve(later, 1000, 1000, 1000), Duration::ZERO);
        assert!(b.reserve(later, 1, 1000, 1000) > Duration::ZERO);
    }
}
