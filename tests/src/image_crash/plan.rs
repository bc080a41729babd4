//! The seeded plan of an image crash run: which way images arrive or move in each phase, which
//! node is killed, and at which point.

use std::fmt;

/// Nodes of the cluster an image crash run uses.
pub const NODES: u64 = 3;

/// One phase: images arrive or move one way while a node is killed -9 at a seeded point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `yilian upload` (chunked, over QUIC) into the ingest node; the ingest node is killed
    /// after `at` chunks were accepted.
    Upload,
    /// DCMTK `storescu` into the ingest node's C-STORE SCP; killed after `at` instances were
    /// recorded.
    Dimse,
    /// Four concurrent STOW-RS clients into the ingest node; killed after `at` instances were
    /// recorded.
    Stow,
    /// A study uploaded into the ingest node is prefetched by the other two; the victim, one of
    /// the fetching nodes, is killed after it fetched `at` MiB.
    KillFetcher,
    /// As [`Phase::KillFetcher`], but the ingest node (the only source) is killed once the
    /// first fetcher fetched `at` MiB.
    KillSource,
}

impl Phase {
    /// Every phase; a plan runs each once, in a seeded order.
    pub const ALL: [Phase; 5] =
        [Phase::Upload, Phase::Dimse, Phase::Stow, Phase::KillFetcher, Phase::KillSource];
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// What happens.
    pub phase: Phase,
    /// The node the images are sent to.
    pub ingest: u64,
    /// The node killed.
    pub victim: u64,
    /// The kill point: chunks, instances or MiB, as the phase says.
    pub at: u64,
    /// Extra time after the kill point is reached before the kill, in ms.
    pub delay_ms: u64,
    /// How long the victim stays down, in ms.
    pub down_ms: u64,
}

/// Chunks of the upload phase's files at which its kill may happen (it sends 12: a 4-slice CT
/// and a 2 MiB radiograph in 256 KiB chunks).
pub const UPLOAD_KILL_CHUNKS: std::ops::RangeInclusive<u64> = 1..=9;
/// Instances of the DIMSE and STOW phases' studies at which their kill may happen (of 32).
pub const INGEST_KILL_INSTANCES: std::ops::RangeInclusive<u64> = 1..=26;
/// MiB of the prefetched radiograph (about 8 MiB) at which a transfer kill may happen.
pub const FETCH_KILL_MIB: std::ops::RangeInclusive<u64> = 1..=6;

/// A seeded plan: every [`Phase`] once, in a seeded order, with seeded nodes and kill points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan of `seed` (the same seed gives the same plan).
    pub fn new(seed: u64) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut phases = Phase::ALL.to_vec();
        rng.shuffle(&mut phases);
        let steps = phases
            .into_iter()
            .map(|phase| {
                let ingest = rng.u64(1..=NODES);
                let (victim, at) = match phase {
                    Phase::Upload => (ingest, rng.u64(UPLOAD_KILL_CHUNKS)),
                    Phase::Dimse | Phase::Stow => (ingest, rng.u64(INGEST_KILL_INSTANCES)),
                    Phase::KillFetcher => {
                        let others: Vec<u64> = (1..=NODES).filter(|n| *n != ingest).collect();
                        (others[rng.usize(..others.len())], rng.u64(FETCH_KILL_MIB))
                    }
                    Phase::KillSource => (ingest, rng.u64(FETCH_KILL_MIB)),
                };
                Step { phase, ingest, victim, at, delay_ms: rng.u64(0..=60), down_ms: rng.u64(0..=1500) }
            })
            .collect();
        Plan { seed, steps }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, v, at) = (self.ingest, self.victim, self.at);
        match self.phase {
            Phase::Upload => write!(f, "upload into node {a}; kill it after {at} chunk(s) accepted")?,
            Phase::Dimse => write!(f, "C-STORE into node {a}; kill it after {at} instance(s) recorded")?,
            Phase::Stow => write!(f, "STOW-RS into node {a}; kill it after {at} instance(s) recorded")?,
            Phase::KillFetcher => {
                write!(f, "prefetch from node {a}; kill fetching node {v} after it fetched {at} MiB")?
            }
            Phase::KillSource => write!(f, "prefetch from node {a}; kill the source after {at} MiB fetched")?,
        }
        write!(f, " +{} ms, down {} ms", self.delay_ms, self.down_ms)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "image crash plan, seed {} (replay: YILIAN_IMAGE_CRASH_SEED={}):", self.seed, self.seed)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {step}", i + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_with_every_phase() {
        for seed in 0..50 {
            let plan = Plan::new(seed);
            assert_eq!(plan, Plan::new(seed));
            let mut phases: Vec<String> = plan.steps.iter().map(|s| format!("{:?}", s.phase)).collect();
            phases.sort();
            phases.dedup();
            assert_eq!(phases.len(), Phase::ALL.len());
            for s in &plan.steps {
                assert!((1..=NODES).contains(&s.ingest) && (1..=NODES).contains(&s.victim));
                assert_eq!(s.phase == Phase::KillFetcher, s.victim != s.ingest, "{s}");
            }
        }
    }
}
