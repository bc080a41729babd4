//! Login rate limiting per user and source address: after [`FREE_FAILURES`] failed attempts in
//! a row, each further attempt must wait, doubling from one second up to [`MAX_BACKOFF`]. A
//! successful login clears the count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before backing off.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Most (user, address) pairs remembered; the oldest are dropped beyond it.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins per (user, source address).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
}

impl LoginLimiter {
    /// How long the caller must still wait before trying `user` from `source` again, if at all.
    pub fn wait_needed(&self, user: &str, source: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = map.get(&(user.to_owned(), source))?;
        let over = f.count.checked_sub(FREE_FAILURES)?;
        let backoff = Duration::from_secs(1u64 << over.min(20)).min(MAX_BACKOFF);
        let ready = f.last + backoff;
        (ready > now).then(|| ready - now)
    }

    /// Record a failed attempt.
    pub fn failed(&self, user: &str, source: Option<IpAddr>, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let oldest = map.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let f = map.entry((user.to_owned(), source)).or_insert(Failures { count: 0, last: now });
        f.count += 1;
        f.last = now;
    }

    /// Record a successful login.
    pub fn succeeded(&self, user: &str, source: Option<IpAddr>) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&(user.to_owned(), source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_five_failures_per_user_and_address() {
        let l = LoginLimiter::default();
        let ip: Option<IpAddr> = "10.0.0.1".parse().ok();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(l.wait_needed("u", ip, t0), None);
            l.failed("u", ip, t0);
        }
        assert_eq!(l.wait_needed("u", ip, t0), Some(Duration::from_secs(1)));
        l.failed("u", ip, t0);
        assert_eq!(l.wait_needed("u", ip, t0), Some(Duration::from_secs(2)));
        assert_eq!(l.wait_needed("u", None, t0), None, "another address is not affected");
        assert_eq!(l.wait_needed("u", ip, t0 + Duration::from_secs(3)), None);
        l.succeeded("u", ip);
        assert_eq!(l.wait_needed("u", ip, t0), None);
    }
}
