//! A Wing–Gong linearizability checker (with Porcupine-style memoisation of visited
//! (linearized set, state) pairs) for histories of operations on referral cases, partitioned per
//! case, against a sequential model of a case: its status, owner and number of reports, moved by
//! the domain's own transition table ([`CaseAction::rule`], [`CaseAction::target`]) including who
//! may act ([`Party`]).
//!
//! Outcomes: an `ok` operation took effect exactly once between its invocation and its
//! completion; a `failed` one (a definite refusal) never took effect; an `unknown` one (timeout,
//! lost connection, 503) may have taken effect at any time after its invocation, or never.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use yilian_referral::lifecycle::Party;
use yilian_referral::{CaseAction, TaskStatus};

/// The model's state of one case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseState {
    /// Lifecycle status.
    pub status: TaskStatus,
    /// The reader it is offered to or owned by.
    pub owner: Option<String>,
    /// Reports filed.
    pub reports: usize,
}

impl CaseState {
    /// A case in `status` offered to or owned by `owner`, without reports.
    pub fn new(status: TaskStatus, owner: Option<&str>) -> Self {
        Self { status, owner: owner.map(str::to_owned), reports: 0 }
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} owner {} reports {}", self.status, self.owner.as_deref().unwrap_or("-"), self.reports)
    }
}

/// Who invoked an action, as the transition table's parties see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A reader (specialist) by id: the owner party when the case is theirs.
    Reader(String),
    /// Staff of the requesting facility.
    Requester,
    /// Region operations.
    Ops,
}

/// What an operation did to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A lifecycle action by an actor.
    Act {
        /// The action.
        action: CaseAction,
        /// Who asked.
        by: Actor,
    },
    /// A linearizable read that returned the state.
    Read(CaseState),
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
            OpKind::Act { action, by } => format!("{} by {by:?}", action.name()),
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
    /// The initial state assumed.
    pub initial: CaseState,
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

/// Check every case's history (operations grouped by case, each starting at its state in
/// `initial`; a case missing there starts as requested with no owner).
pub fn check(history: &[Op], initial: &BTreeMap<String, CaseState>) -> Result<(), Vec<Violation>> {
    let mut by_case: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history.iter().filter(|o| o.outcome != Outcome::Failed) {
        by_case.entry(&op.case).or_default().push(op.clone());
    }
    let violations: Vec<Violation> = by_case
        .into_iter()
        .filter_map(|(case, ops)| {
            let start =
                initial.get(case).cloned().unwrap_or_else(|| CaseState::new(TaskStatus::Requested, None));
            (!linearizable(&ops, &start)).then(|| Violation {
                case: case.to_owned(),
                minimal: shrink(ops, &start),
                initial: start,
            })
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Drop operations one at a time, latest first, while the rest still cannot be linearized:
/// what remains points at the earliest contradiction.
fn shrink(mut ops: Vec<Op>, initial: &CaseState) -> Vec<Op> {
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

/// The sequential model: the state after `op` from `state`, or `None` if `op` cannot happen
/// there (an action its rule does not allow from that status or to that actor, a read of
/// another state).
pub fn step(state: &CaseState, op: &OpKind) -> Option<CaseState> {
    let (action, by) = match op {
        OpKind::Read(seen) => return (seen == state).then(|| state.clone()),
        OpKind::Act { action, by } => (action, by),
    };
    let rule = action.rule();
    let party_allowed = match by {
        Actor::Reader(id) => rule.by.contains(&Party::Owner) && state.owner.as_deref() == Some(id.as_str()),
        Actor::Requester => rule.by.contains(&Party::Requester),
        Actor::Ops => rule.by.contains(&Party::Ops),
    };
    if !party_allowed || !rule.from.contains(&state.status) {
        return None;
    }
    let mut next = state.clone();
    next.status = action.target(state.status);
    match action {
        // Passing the case to the reader who already holds it is refused.
        CaseAction::Assign { to } | CaseAction::HandOff { to } if state.owner.as_ref() == Some(&to.0) => {
            return None
        }
        CaseAction::Assign { to } | CaseAction::HandOff { to } => next.owner = Some(to.0.clone()),
        CaseAction::Report { .. } => next.reports += 1,
        // Closing a case that is still on offer withdraws the offer.
        CaseAction::Cancel | CaseAction::EnterInError if state.status.is_offer_stage() => next.owner = None,
        _ => {}
    }
    Some(next)
}

/// Whether one case's operations (at most 128) have a linearization.
pub fn linearizable(ops: &[Op], initial: &CaseState) -> bool {
    assert!(ops.len() <= 128, "partition the history further: {} operations on one case", ops.len());
    let end = |o: &Op| if o.outcome == Outcome::Unknown { u64::MAX } else { o.complete_us };
    let required: u128 =
        ops.iter().enumerate().filter(|(_, o)| o.outcome == Outcome::Ok).fold(0, |m, (i, _)| m | 1 << i);
    let mut seen: HashSet<(u128, CaseState)> = HashSet::new();
    let mut stack = vec![(0u128, initial.clone())];
    while let Some((done, state)) = stack.pop() {
        if done & required == required {
            return true;
        }
        if !seen.insert((done, state.clone())) {
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
            if let Some(next) = step(&state, &op.kind) {
                stack.push((done | 1 << i, next));
            }
            // An unknown operation may also never take effect.
            if op.outcome == Outcome::Unknown {
                stack.push((done | 1 << i, state.clone()));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use yilian_referral::SpecialistId;
    use TaskStatus::*;

    const DR: &str = "DR";

    fn op(client: usize, kind: OpKind, outcome: Outcome, invoke_us: u64, complete_us: u64) -> Op {
        Op { client, case: "C1".into(), kind, outcome, invoke_us, complete_us }
    }

    fn by_reader(action: CaseAction) -> OpKind {
        OpKind::Act { action, by: Actor::Reader(DR.into()) }
    }

    fn accept() -> OpKind {
        by_reader(CaseAction::Accept)
    }

    fn start() -> OpKind {
        by_reader(CaseAction::Start)
    }

    fn read(status: TaskStatus) -> OpKind {
        OpKind::Read(CaseState::new(status, Some(DR)))
    }

    fn initial() -> BTreeMap<String, CaseState> {
        BTreeMap::from([("C1".to_owned(), CaseState::new(Requested, Some(DR)))])
    }

    #[test]
    fn sequential_and_concurrent_histories_are_linearizable() {
        let h = [
            op(1, accept(), Outcome::Ok, 0, 10),
            op(2, read(Requested), Outcome::Ok, 5, 8),
            op(2, read(Accepted), Outcome::Ok, 12, 14),
            op(1, start(), Outcome::Unknown, 15, 0),
            op(2, read(InProgress), Outcome::Ok, 30, 31),
        ];
        assert!(check(&h, &initial()).is_ok());
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        // The bug a partitioned old leader answering reads would cause: the write was
        // acknowledged, then a read that began afterwards still sees the old status.
        let h = [
            op(1, accept(), Outcome::Ok, 0, 10),
            op(2, read(Requested), Outcome::Ok, 5, 8),
            op(3, read(Requested), Outcome::Ok, 20, 25),
            op(2, read(Accepted), Outcome::Ok, 30, 31),
        ];
        let violations = check(&h, &initial()).expect_err("stale read");
        let minimal = &violations[0].minimal;
        assert_eq!(minimal.len(), 2, "{}", violations[0]);
        assert!(minimal.iter().any(|o| o.kind == accept()));
        assert!(minimal.iter().any(|o| o.kind == read(Requested) && o.invoke_us == 20));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = [op(1, accept(), Outcome::Ok, 0, 10), op(2, read(Requested), Outcome::Ok, 50, 60)];
        assert!(check(&h, &initial()).is_err());
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not_but_not_before_it_was_sent() {
        let maybe = [op(1, accept(), Outcome::Unknown, 0, 0), op(2, read(Requested), Outcome::Ok, 5, 6)];
        assert!(check(&maybe, &initial()).is_ok());
        let later = [op(1, accept(), Outcome::Unknown, 100, 0), op(2, read(Accepted), Outcome::Ok, 5, 6)];
        assert!(check(&later, &initial()).is_err());
    }

    #[test]
    fn an_action_the_rules_forbid_cannot_explain_a_read() {
        // Start needs an accepted case: acknowledging it from Requested is a violation.
        let h = [op(1, start(), Outcome::Ok, 0, 10), op(2, read(InProgress), Outcome::Ok, 20, 21)];
        assert!(check(&h, &initial()).is_err());
    }

    #[test]
    fn only_the_owner_acts_as_owner_and_assign_moves_ownership() {
        let assign =
            OpKind::Act { action: CaseAction::Assign { to: SpecialistId("DR2".into()) }, by: Actor::Ops };
        let accept_by = |who: &str| OpKind::Act { action: CaseAction::Accept, by: Actor::Reader(who.into()) };
        let ok = [
            op(1, assign.clone(), Outcome::Ok, 0, 10),
            op(2, accept_by("DR2"), Outcome::Ok, 20, 30),
            op(3, OpKind::Read(CaseState::new(Accepted, Some("DR2"))), Outcome::Ok, 40, 41),
        ];
        assert!(check(&ok, &initial()).is_ok());
        // DR's acknowledged accept after the case went to DR2 has no explanation.
        let bad = [op(1, assign, Outcome::Ok, 0, 10), op(2, accept_by(DR), Outcome::Ok, 20, 30)];
        assert!(check(&bad, &initial()).is_err());
    }

    #[test]
    fn cancelling_an_offer_withdraws_it_and_assigning_to_the_holder_is_refused() {
        let cancel = OpKind::Act { action: CaseAction::Cancel, by: Actor::Requester };
        let h = [
            op(1, cancel, Outcome::Ok, 0, 10),
            op(2, OpKind::Read(CaseState::new(Cancelled, None)), Outcome::Ok, 20, 21),
        ];
        assert!(check(&h, &initial()).is_ok());
        let to_holder =
            OpKind::Act { action: CaseAction::Assign { to: SpecialistId(DR.into()) }, by: Actor::Ops };
        assert!(check(&[op(1, to_holder, Outcome::Ok, 0, 10)], &initial()).is_err());
    }

    #[test]
    fn reports_are_counted_and_concurrent_ones_in_any_order() {
        let report = || by_reader(CaseAction::Report { text: "findings".into() });
        let started = CaseState::new(InProgress, Some(DR));
        let h = [
            op(1, report(), Outcome::Ok, 0, 10),
            op(2, report(), Outcome::Unknown, 2, 0),
            op(3, OpKind::Read(CaseState { reports: 1, ..started.clone() }), Outcome::Ok, 11, 12),
            op(3, OpKind::Read(CaseState { reports: 2, ..started.clone() }), Outcome::Ok, 13, 14),
        ];
        let init = BTreeMap::from([("C1".to_owned(), started.clone())]);
        assert!(check(&h, &init).is_ok());
        // Two reports seen, then one again: a report vanished.
        let lost = [
            op(3, OpKind::Read(CaseState { reports: 2, ..started.clone() }), Outcome::Ok, 13, 14),
            op(3, OpKind::Read(CaseState { reports: 1, ..started.clone() }), Outcome::Ok, 15, 16),
        ];
        assert!(check(&lost, &init).is_err());
    }
}
