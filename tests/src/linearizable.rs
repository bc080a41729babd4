//! A Wing–Gong linearizability checker (with Porcupine-style memoisation of visited
//! (linearized set, state) pairs) for histories of operations on referral cases, partitioned per
//! case, against a sequential model of a case's status taken from the domain's own transition
//! table ([`CaseAction::rule`]).
//!
//! Outcomes: an `ok` operation took effect exactly once between its invocation and its
//! completion; a `failed` one (a definite refusal) never took effect; an `unknown` one (timeout,
//! lost connection, 503) may have taken effect at any time after its invocation, or never.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use yilian_referral::{CaseAction, TaskStatus};

/// What an operation did to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A lifecycle action; `to` is the status it leads to when allowed.
    Act {
        /// The action.
        action: CaseAction,
        /// The status after it.
        to: TaskStatus,
    },
    /// A linearizable read that returned the status.
    Read(TaskStatus),
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Definitely refused: it never took effect.
    Failed,
    /// Unknown: it may or may not have taken effect.
    Unknown,
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// Client that issued it.
    pub client: usize,
    /// The case.
    pub case: String,
    /// What it did.
    pub kind: OpKind,
    /// How it ended.
    pub outcome: Outcome,
    /// Monotonic invocation time (µs since the run started).
    pub invoke_us: u64,
    /// Monotonic completion time (µs); ignored for unknown outcomes.
    pub complete_us: u64,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            OpKind::Act { action, to } => format!("{} -> {to}", action.name()),
            OpKind::Read(s) => format!("read = {s}"),
        };
        let end = match self.outcome {
            Outcome::Unknown => "?".to_owned(),
            _ => self.complete_us.to_string(),
        };
        write!(
            f,
            "client {} case {} [{} .. {end}] {what} ({:?})",
            self.client, self.case, self.invoke_us, self.outcome
        )
    }
}

/// A case whose history has no linearization, with a minimal offending sub-history.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The case.
    pub case: String,
    /// The initial status assumed.
    pub initial: TaskStatus,
    /// The fewest operations that still cannot be linearized.
    pub minimal: Vec<Op>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "case {} (starting {}) is not linearizable; minimal sub-history:",
            self.case, self.initial
        )?;
        for op in &self.minimal {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Check every case's history (operations grouped by case, each starting at `initial`).
pub fn check(history: &[Op], initial: TaskStatus) -> Result<(), Vec<Violation>> {
    let mut by_case: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history.iter().filter(|o| o.outcome != Outcome::Failed) {
        by_case.entry(&op.case).or_default().push(op.clone());
    }
    let violations: Vec<Violation> = by_case
        .into_iter()
        .filter(|(_, ops)| !linearizable(ops, initial))
        .map(|(case, ops)| Violation { case: case.to_owned(), initial, minimal: shrink(ops, initial) })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Drop operations one at a time, latest first, while the rest still cannot be linearized:
/// what remains points at the earliest contradiction.
fn shrink(mut ops: Vec<Op>, initial: TaskStatus) -> Vec<Op> {
    ops.sort_by_key(|o| o.invoke_us);
    for i in (0..ops.len()).rev() {
        let mut fewer = ops.clone();
        fewer.remove(i);
        if !linearizable(&fewer, initial) {
            ops = fewer;
        }
    }
    ops
}

/// The sequential model: the status after `op` from `status`, or `None` if `op` cannot happen
/// there (an action its rule does not allow, a read of another status).
fn step(status: TaskStatus, op: &Op) -> Option<TaskStatus> {
    match &op.kind {
        OpKind::Act { action, to } => action.rule().from.contains(&status).then_some(*to),
        OpKind::Read(seen) => (*seen == status).then_some(status),
    }
}

/// Whether one case's operations (at most 128) have a linearization.
pub fn linearizable(ops: &[Op], initial: TaskStatus) -> bool {
    assert!(ops.len() <= 128, "partition the history further: {} operations on one case", ops.len());
    let end = |o: &Op| if o.outcome == Outcome::Unknown { u64::MAX } else { o.complete_us };
    let required: u128 =
        ops.iter().enumerate().filter(|(_, o)| o.outcome == Outcome::Ok).fold(0, |m, (i, _)| m | 1 << i);
    let mut seen: HashSet<(u128, TaskStatus)> = HashSet::new();
    let mut stack = vec![(0u128, initial)];
    while let Some((done, status)) = stack.pop() {
        if done & required == required {
            return true;
        }
        if !seen.insert((done, status)) {
            continue;
        }
        // An operation may go next only if it was invoked before every pending one completed.
        let horizon = ops
            .iter()
            .enumerate()
            .filter(|(i, _)| done & (1 << i) == 0)
            .map(|(_, o)| end(o))
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            if done & (1 << i) != 0 || op.invoke_us > horizon {
                continue;
            }
            if let Some(next) = step(status, op) {
                stack.push((done | 1 << i, next));
            }
            // An unknown operation may also never take effect.
            if op.outcome == Outcome::Unknown {
                stack.push((done | 1 << i, status));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn op(client: usize, kind: OpKind, outcome: Outcome, invoke_us: u64, complete_us: u64) -> Op {
        Op { client, case: "C1".into(), kind, outcome, invoke_us, complete_us }
    }

    fn accept() -> OpKind {
        OpKind::Act { action: CaseAction::Accept, to: Accepted }
    }

    fn start() -> OpKind {
        OpKind::Act { action: CaseAction::Start, to: InProgress }
    }

    #[test]
    fn sequential_and_concurrent_histories_are_linearizable() {
        let h = [
            op(1, accept(), Outcome::Ok, 0, 10),
            op(2, OpKind::Read(Requested), Outcome::Ok, 5, 8),
            op(2, OpKind::Read(Accepted), Outcome::Ok, 12, 14),
            op(1, start(), Outcome::Unknown, 15, 0),
            op(2, OpKind::Read(InProgress), Outcome::Ok, 30, 31),
        ];
        assert!(check(&h, Requested).is_ok());
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        // The bug a partitioned old leader answering reads would cause: the write was
        // acknowledged, then a read that began afterwards still sees the old status.
        let h = [
            op(1, accept(), Outcome::Ok, 0, 10),
            op(2, OpKind::Read(Requested), Outcome::Ok, 5, 8),
            op(3, OpKind::Read(Requested), Outcome::Ok, 20, 25),
            op(2, OpKind::Read(Accepted), Outcome::Ok, 30, 31),
        ];
        let violations = check(&h, Requested).expect_err("stale read");
        let minimal = &violations[0].minimal;
        assert_eq!(minimal.len(), 2, "{}", violations[0]);
        assert!(minimal.iter().any(|o| o.kind == accept()));
        assert!(minimal.iter().any(|o| o.kind == OpKind::Read(Requested) && o.invoke_us == 20));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = [op(1, accept(), Outcome::Ok, 0, 10), op(2, OpKind::Read(Requested), Outcome::Ok, 50, 60)];
        assert!(check(&h, Requested).is_err());
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not_but_not_before_it_was_sent() {
        let maybe =
            [op(1, accept(), Outcome::Unknown, 0, 0), op(2, OpKind::Read(Requested), Outcome::Ok, 5, 6)];
        assert!(check(&maybe, Requested).is_ok());
        let later =
            [op(1, accept(), Outcome::Unknown, 100, 0), op(2, OpKind::Read(Accepted), Outcome::Ok, 5, 6)];
        assert!(check(&later, Requested).is_err());
    }

    #[test]
    fn an_action_the_rules_forbid_cannot_explain_a_read() {
        // Start needs an accepted case: acknowledging it from Requested is a violation.
        let h = [op(1, start(), Outcome::Ok, 0, 10), op(2, OpKind::Read(InProgress), Outcome::Ok, 20, 21)];
        assert!(check(&h, Requested).is_err());
    }
}
