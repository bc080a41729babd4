//! What happens to the packets of one directed link: the rule in force and the link's own
//! seeded random stream and bandwidth shaper.

use std::fmt;
use std::time::{Duration, Instant};

/// Longest a rate-limited link queues a packet before dropping it (a full router queue).
const MAX_QUEUE: Duration = Duration::from_millis(250);

/// The faults applied to packets travelling one way between two nodes. The default is a
/// clean link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkRule {
    /// Drop every packet (a partition in this direction).
    pub cut: bool,
    /// Probability in [0, 1] of dropping a packet.
    pub loss: f64,
    /// Fixed delay added to every packet.
    pub delay: Duration,
    /// A further random delay in [0, jitter] per packet; packets overtake each other, so a
    /// jitter larger than the gap between packets reorders them.
    pub jitter: Duration,
    /// Bandwidth cap in bytes per second; packets beyond it queue up to 250 ms, then drop.
    pub rate: Option<u64>,
}

impl LinkRule {
    /// A link that drops everything.
    pub fn cut() -> Self {
        Self { cut: true, ..Self::default() }
    }

    /// Whether the rule leaves packets untouched.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for LinkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cut {
            return f.write_str("cut");
        }
        let mut parts = Vec::new();
        if self.loss > 0.0 {
            parts.push(format!("loss {:.0}%", self.loss * 100.0));
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            parts.push(format!("delay {:?}+{:?}", self.delay, self.jitter));
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {} KiB/s", rate / 1024));
        }
        if parts.is_empty() {
            parts.push("clean".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it after this long (zero: at once).
    After(Duration),
    /// Drop it.
    Drop,
}

/// One directed link's state.
pub(crate) struct Link {
    rule: LinkRule,
    rng: fastrand::Rng,
    /// When the shaper's queue is empty again.
    free_at: Instant,
}

impl Link {
    pub(crate) fn new(seed: u64) -> Self {
        Self { rule: LinkRule::default(), rng: fastrand::Rng::with_seed(seed), free_at: Instant::now() }
    }

    pub(crate) fn set(&mut self, rule: LinkRule) {
        self.rule = rule;
    }

    pub(crate) fn rule(&self) -> LinkRule {
        self.rule
    }

    /// Decide the fate of a packet of `len` bytes arriving at `now`.
    pub(crate) fn verdict(&mut self, len: usize, now: Instant) -> Verdict {
        let r = self.rule;
        if r.cut || (r.loss > 0.0 && self.rng.f64() < r.loss) {
            return Verdict::Drop;
        }
        let mut wait = Duration::ZERO;
        if let Some(rate) = r.rate {
            let start = self.free_at.max(now);
            if start - now > MAX_QUEUE {
                return Verdict::Drop;
            }
            let transmit = Duration::from_secs_f64(len as f64 / rate.max(1) as f64);
            self.free_at = start + transmit;
            wait = self.free_at - now;
        }
        let jitter = if r.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rng.u64(..=r.jitter.as_micros() as u64))
        };
        Verdict::After(wait + r.delay + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_forwards_at_once_and_a_cut_one_drops() {
        let mut link = Link::new(1);
        assert_eq!(link.verdict(100, Instant::now()), Verdict::After(Duration::ZERO));
        link.set(LinkRule::cut());
        assert_eq!(link.verdict(100, Instant::now()), Verdict::Drop);
    }

    #[test]
    fn loss_and_jitter_replay_from_the_seed() {
        let rule = LinkRule { loss: 0.3, jitter: Duration::from_millis(20), ..LinkRule::default() };
        let run = |seed| {
            let mut link = Link::new(seed);
            link.set(rule);
            let now = Instant::now();
            (0..200).map(|_| link.verdict(1200, now)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let dropped = run(7).iter().filter(|v| **v == Verdict::Drop).count();
        assert!((30..90).contains(&dropped), "{dropped} of 200 dropped at 30% loss");
    }

    #[test]
    fn the_shaper_spaces_packets_and_drops_beyond_its_queue() {
        let mut link = Link::new(1);
        link.set(LinkRule { rate: Some(100_000), ..LinkRule::default() });
        let now = Instant::now();
        // 1000 bytes at 100 kB/s take 10 ms each: the 5th waits 50 ms, the 30th overflows.
        let verdicts: Vec<_> = (0..30).map(|_| link.verdict(1000, now)).collect();
        assert_eq!(verdicts[4], Verdict::After(Duration::from_millis(50)));
        assert_eq!(verdicts[29], Verdict::Drop);
    }
}
