//! Fault schedules: a seed picks a sequence of faults, each with a pause before it and how long
//! it lasts. Nodes are named by their rank among the current members, so a schedule replays the
//! same way even after membership changes.

use crate::netfault::LinkRule;
use std::fmt;
use std::time::Duration;

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGKILL the current leader; restart it from its data directory when the fault ends.
    KillLeader,
    /// SIGKILL the member of this rank; restart it when the fault ends.
    Kill(usize),
    /// SIGSTOP the member of this rank; SIGCONT when the fault ends.
    Freeze(usize),
    /// SIGSTOP the current leader; SIGCONT when the fault ends.
    FreezeLeader,
    /// Cut the current leader off from every other member, both ways.
    IsolateLeader,
    /// Cut the member of this rank off from every other member, both ways.
    Isolate(usize),
    /// Cut the links from the first rank to the second only.
    OneWay(usize, usize),
    /// Apply the rule to every link between members (loss, delay, reordering, a bandwidth cap).
    Degrade(LinkRule),
    /// Add a new node (learner, then voter) and remove the member of this rank, under load.
    Replace(usize),
}

impl Fault {
    /// Whether the fault is a network fault.
    pub fn is_network(&self) -> bool {
        matches!(self, Fault::IsolateLeader | Fault::Isolate(_) | Fault::OneWay(..) | Fault::Degrade(_))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillLeader => write!(f, "kill -9 leader"),
            Fault::Kill(r) => write!(f, "kill -9 member#{r}"),
            Fault::Freeze(r) => write!(f, "SIGSTOP member#{r}"),
            Fault::FreezeLeader => write!(f, "SIGSTOP leader"),
            Fault::IsolateLeader => write!(f, "isolate leader"),
            Fault::Isolate(r) => write!(f, "isolate member#{r}"),
            Fault::OneWay(a, b) => write!(f, "cut member#{a} -> member#{b}"),
            Fault::Degrade(rule) => write!(f, "all links: {rule}"),
            Fault::Replace(r) => write!(f, "add a node, remove member#{r}"),
        }
    }
}

/// One step of a schedule. Steps overlap when one lasts past the start of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Time from the start of the previous step to the start of this one.
    pub after: Duration,
    /// The fault.
    pub fault: Fault,
    /// How long it lasts.
    pub hold: Duration,
}

/// Which faults a schedule may draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Kill -9 and SIGSTOP.
    pub process: bool,
    /// Partitions, loss, delay, reordering, bandwidth caps.
    pub network: bool,
    /// Adding and removing nodes.
    pub membership: bool,
}

impl Mix {
    /// Every kind of fault.
    pub const ALL: Mix = Mix { process: true, network: true, membership: true };
}

/// A seeded fault schedule over a cluster of `members` voters.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The seed it came from.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// `len` steps drawn from `mix` by `seed` for a cluster of `members` voters.
    pub fn generate(seed: u64, len: usize, members: usize, mix: Mix) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut kinds: Vec<u8> = Vec::new();
        if mix.process {
            kinds.extend([0, 1, 2, 3]);
        }
        if mix.network {
            kinds.extend([4, 5, 6, 7, 8]);
        }
        if mix.membership {
            kinds.push(9);
        }
        assert!(!kinds.is_empty(), "a schedule needs at least one kind of fault");
        let mut steps = Vec::with_capacity(len);
        let mut replaced = false;
        while steps.len() < len {
            let rank = rng.usize(..members);
            let fault = match kinds[rng.usize(..kinds.len())] {
                0 => Fault::KillLeader,
                1 => Fault::Kill(rank),
                2 => Fault::Freeze(rank),
                3 => Fault::FreezeLeader,
                4 => Fault::IsolateLeader,
                5 => Fault::Isolate(rank),
                6 => Fault::OneWay(rank, (rank + 1 + rng.usize(..members - 1)) % members),
                7 => Fault::Degrade(LinkRule {
                    loss: rng.u32(5..=25) as f64 / 100.0,
                    delay: Duration::from_millis(rng.u64(0..=20)),
                    jitter: Duration::from_millis(rng.u64(5..=40)),
                    ..LinkRule::default()
                }),
                8 => Fault::Degrade(LinkRule { rate: Some(rng.u64(16..=128) * 1024), ..LinkRule::default() }),
                // One membership change per schedule keeps runs short.
                _ if replaced => continue,
                _ => {
                    replaced = true;
                    Fault::Replace(rank)
                }
            };
            steps.push(Step {
                after: Duration::from_millis(rng.u64(300..1500)),
                fault,
                hold: Duration::from_millis(rng.u64(800..2500)),
            });
        }
        Self { seed, steps }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule {}:", self.seed)?;
        for s in &self.steps {
            write!(f, " [+{}ms {} for {}ms]", s.after.as_millis(), s.fault, s.hold.as_millis())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule_and_the_mix_is_respected() {
        let a = Schedule::generate(42, 6, 3, Mix::ALL);
        assert_eq!(a, Schedule::generate(42, 6, 3, Mix::ALL));
        assert_ne!(a, Schedule::generate(43, 6, 3, Mix::ALL));
        let net = Schedule::generate(7, 20, 3, Mix { process: false, network: true, membership: false });
        assert!(net.steps.iter().all(|s| s.fault.is_network()), "{net}");
        let many = Schedule::generate(9, 30, 3, Mix::ALL);
        assert!(many.steps.iter().filter(|s| matches!(s.fault, Fault::Replace(_))).count() <= 1);
        for s in &many.steps {
            if let Fault::OneWay(a, b) = s.fault {
                assert!(a != b && a < 3 && b < 3, "{s:?}");
            }
        }
    }
}
