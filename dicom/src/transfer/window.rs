//! The receive window of a fetch connection, adapted to the link while data flows. The window
//! bounds what a source may have in flight to this node, so it also bounds the queue the fetch
//! builds in the link, where everything else sent to this node (Raft's AppendEntries) waits
//! behind it. A fixed window is either too small for a long round trip or queues too long on a
//! short one; this one follows the round trip instead (delay-based, as TCP Vegas or LEDBAT do
//! on the sending side): it grows while the source is held back by it and the round trip stays
//! within the queueing target of the lowest seen, and shrinks in proportion when the round
//! trip grows past that target. On a long path the target is at least a share of the lowest
//! round trip ([`RTT_SHARE`]): there the few milliseconds the two hosts add to every round trip
//! (acknowledgement timers, busy cores) would otherwise read as a queue and hold the window
//! under the path's bandwidth-delay product, and Raft's messages, which cross the same path,
//! wait a queue small beside its round trip.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the receive window of each fetch connection is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveWindow {
    /// Largest window, in bytes.
    pub max: u32,
    /// Queueing delay the fetch may add to a link beyond its lowest round trip.
    pub queue_target: Duration,
}

/// Window a connection opens with, at most [`ReceiveWindow::max`]: 21 ms of a 100 Mbit/s link.
pub const START_WINDOW: u32 = 256 * 1024;
/// Smallest window the adaptation goes down to (the connection's streams stay usable).
pub const MIN_WINDOW: u32 = 64 * 1024;
/// Fewest round trips between two adjustments, so one's effect shows before the next.
const ROUND_TRIPS_PER_STEP: u32 = 2;
/// Shortest and longest time between two adjustments.
const STEP_BOUNDS: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));
/// Largest growth and shrink factors of one adjustment.
const GROWTH_LIMITS: (f64, f64) = (0.5, 2.0);
/// The queueing target is at least this share of the lowest round trip.
pub const RTT_SHARE: f64 = 0.25;

impl ReceiveWindow {
    /// The window a new connection opens with.
    pub fn start(&self) -> u32 {
        self.max.min(START_WINDOW)
    }
}

/// The delay-based rule, free of any connection: the next window from a round trip reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowRule {
    window: u64,
    min: u64,
    max: u64,
    queue_target: Duration,
}

impl WindowRule {
    /// A rule starting at `cfg`'s start window.
    pub(crate) fn new(cfg: &ReceiveWindow) -> Self {
        let max = u64::from(cfg.max);
        WindowRule {
            window: u64::from(cfg.start()),
            min: u64::from(MIN_WINDOW).min(max),
            max,
            queue_target: cfg.queue_target,
        }
    }

    /// The new window given the smoothed and the lowest round trip of the connection and
    /// whether the source was held back by the window since the last step; `None` if it stays.
    pub(crate) fn step(&mut self, srtt: Duration, min_rtt: Duration, blocked: bool) -> Option<u64> {
        let queue = self.queue_target.max(min_rtt.mul_f64(RTT_SHARE));
        let target = (min_rtt + queue).as_secs_f64();
        let ratio = target / srtt.as_secs_f64().max(1e-6);
        let factor = if ratio < 1.0 {
            ratio.max(GROWTH_LIMITS.0)
        } else if blocked {
            ratio.min(GROWTH_LIMITS.1)
        } else {
            return None;
        };
        let next = ((self.window as f64 * factor) as u64).clamp(self.min, self.max);
        (next != self.window).then(|| {
            self.window = next;
            next
        })
    }
}

/// The adaptation of one link's connection: the rule, when it may step next, and the count of
/// DATA_BLOCKED frames the source had sent at the last step.
#[derive(Debug)]
pub(crate) struct Adaptive {
    cfg: ReceiveWindow,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rule: WindowRule,
    /// `stable_id` of the connection the rule follows.
    conn: Option<usize>,
    next_step: Instant,
    blocked_seen: u64,
}

impl Adaptive {
    /// Adaptation following `cfg`.
    pub(crate) fn new(cfg: ReceiveWindow) -> Self {
        let state =
            State { rule: WindowRule::new(&cfg), conn: None, next_step: Instant::now(), blocked_seen: 0 };
        Adaptive { cfg, state: Mutex::new(state) }
    }

    /// Adjust `conn`'s receive window if a step is due (a new connection starts over).
    pub(crate) fn observe(&self, conn: &quinn::Connection) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let stats = conn.stats();
        let blocked_now = stats.frame_rx.data_blocked + stats.frame_rx.stream_data_blocked;
        if s.conn != Some(conn.stable_id()) {
            *s = State {
                rule: WindowRule::new(&self.cfg),
                conn: Some(conn.stable_id()),
                next_step: now,
                blocked_seen: blocked_now,
            };
            return;
        }
        if now < s.next_step {
            return;
        }
        let srtt = conn.rtt();
        let blocked = blocked_now > s.blocked_seen;
        s.blocked_seen = blocked_now;
        s.next_step = now + (srtt * ROUND_TRIPS_PER_STEP).clamp(STEP_BOUNDS.0, STEP_BOUNDS.1);
        if let Some(window) = s.rule.step(srtt, conn.min_rtt(), blocked) {
            if let Ok(w) = quinn::VarInt::from_u64(window) {
                conn.set_receive_window(w);
            }
            tracing::trace!(window, srtt_us = srtt.as_micros() as u64, "fetch receive window adjusted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rule() -> WindowRule {
        WindowRule::new(&ReceiveWindow { max: 4 << 20, queue_target: 5 * MS })
    }

    #[test]
    fn grows_only_while_the_source_is_held_back_and_the_queue_is_short() {
        let mut r = rule();
        assert_eq!(r.step(2 * MS, 2 * MS, false), None, "not blocked: the window is not the limit");
        assert_eq!(r.step(2 * MS, 2 * MS, true), Some(512 * 1024), "doubles at most");
        assert_eq!(r.step(6 * MS, 2 * MS, true), Some(611_669), "grows by target / round trip");
    }

    #[test]
    fn shrinks_in_proportion_to_the_queue_beyond_the_target_and_stays_in_bounds() {
        let mut r = rule();
        assert_eq!(r.step(14 * MS, 2 * MS, true), Some(128 * 1024), "7 of 14 ms: halved");
        assert_eq!(r.step(100 * MS, 2 * MS, false), Some(u64::from(MIN_WINDOW)), "never below the minimum");
        assert_eq!(r.step(100 * MS, 2 * MS, false), None);
        for _ in 0..20 {
            r.step(MS, MS, true);
        }
        assert_eq!(r.window, 4 << 20, "never above the maximum");
    }

    #[test]
    fn on_a_long_path_the_target_is_a_share_of_the_round_trip() {
        let mut r = rule();
        assert_eq!(r.step(55 * MS, 50 * MS, true), Some(297_890), "5 ms over 50 ms: still growing");
        assert_eq!(r.step(62 * MS, 50 * MS, true), Some(300_292), "the target is 12.5 ms over 50 ms");
        assert_eq!(r.step(75 * MS, 50 * MS, false), Some(250_243), "beyond it: shrinks");
    }

    #[test]
    fn a_small_maximum_is_the_start_and_the_floor() {
        let cfg = ReceiveWindow { max: 32 * 1024, queue_target: 5 * MS };
        assert_eq!(cfg.start(), 32 * 1024);
        let mut r = WindowRule::new(&cfg);
        assert_eq!(r.step(100 * MS, MS, true), None);
    }
}
