//! The nemesis: plays a schedule as a timeline. Step i starts `after` past the start of step
//! i-1 and ends `hold` later, so faults overlap (a partition during a crash, a pause during a
//! membership change); each end undoes only what its start did.

use super::schedule::{Fault, Schedule};
use super::workload::Shared;
use crate::harness::TestCluster;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use yilian_node::api::NodeView;

/// How long one membership step may take before the nemesis gives up on it.
const MEMBERSHIP_STEP: Duration = Duration::from_secs(20);

/// What ending a fault must undo.
enum Undo {
    /// Start the killed node again (unless it was removed meanwhile).
    Restart(u64),
    /// SIGCONT the frozen node.
    Resume(u64),
    /// Make these directed links clean again.
    Links(Vec<(u64, u64)>),
    /// Nothing (a membership change, or a fault that found nothing to act on).
    Nothing,
}

/// Faults in force.
struct Nemesis<'a> {
    cluster: &'a mut TestCluster,
    members: &'a mut Vec<u64>,
    shared: &'a Shared,
    killed: BTreeSet<u64>,
    notes: Vec<String>,
}

/// Play `schedule` on the cluster whose voters are `members`; membership changes update
/// `members` and the clients' node list. Returns notes on faults that could not be applied.
pub(crate) async fn play(
    cluster: &mut TestCluster,
    members: &mut Vec<u64>,
    shared: &Shared,
    schedule: &Schedule,
) -> Vec<String> {
    let mut events: Vec<(Duration, bool, usize)> = Vec::new();
    let mut at = Duration::ZERO;
    for (i, step) in schedule.steps.iter().enumerate() {
        at += step.after;
        events.push((at, true, i));
        events.push((at + step.hold, false, i));
    }
    events.sort_by_key(|(t, start, i)| (*t, !*start, *i));
    let mut n = Nemesis { cluster, members, shared, killed: BTreeSet::new(), notes: Vec::new() };
    let mut undo: Vec<Option<Undo>> = (0..schedule.steps.len()).map(|_| None).collect();
    // Time spent starting faults (finding the leader, a membership change) shifts the rest of
    // the timeline, so every fault lasts as long as the schedule says.
    let mut zero = tokio::time::Instant::now();
    for (t, start, i) in events {
        tokio::time::sleep_until(zero + t).await;
        if start {
            let began = tokio::time::Instant::now();
            undo[i] = Some(n.start(&schedule.steps[i].fault).await);
            zero += began.elapsed();
        } else if let Some(u) = undo[i].take() {
            n.end(u);
        }
    }
    n.notes
}

impl Nemesis<'_> {
    fn at(&self, rank: usize) -> u64 {
        self.members[rank % self.members.len()]
    }

    /// The member claiming leadership in the highest term, asking each for at most a second
    /// (a frozen node answers nothing).
    async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.members.iter().filter(|id| !self.killed.contains(id)) {
            let view = tokio::time::timeout(Duration::from_secs(1), self.cluster.view(*id)).await;
            if let Ok(Ok(v)) = view {
                if v.status.state == "Leader" && best.is_none_or(|(term, _)| v.status.term > term) {
                    best = Some((v.status.term, *id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// The node a fault names: a rank, or the leader (None when there is none right now).
    async fn target(&mut self, rank: Option<usize>, fault: &Fault) -> Option<u64> {
        let id = match rank {
            Some(r) => Some(self.at(r)),
            None => self.leader().await,
        };
        if id.is_none() {
            self.notes.push(format!("{fault}: no leader at that moment, skipped"));
        }
        id
    }

    fn cut(&self, links: Vec<(u64, u64)>) -> Undo {
        for (a, b) in &links {
            self.cluster.net().set(*a, *b, crate::netfault::LinkRule::cut());
        }
        Undo::Links(links)
    }

    fn all_links(&self) -> Vec<(u64, u64)> {
        let m = &self.members;
        m.iter().flat_map(|a| m.iter().filter(move |b| *b != a).map(move |b| (*a, *b))).collect()
    }

    async fn start(&mut self, fault: &Fault) -> Undo {
        match fault {
            Fault::KillLeader | Fault::Kill(_) => {
                let rank = if let Fault::Kill(r) = fault { Some(*r) } else { None };
                let Some(id) = self.target(rank, fault).await else { return Undo::Nothing };
                if !self.killed.insert(id) {
                    return Undo::Nothing;
                }
                self.cluster.resume(id);
                self.cluster.kill9(id);
                Undo::Restart(id)
            }
            Fault::Freeze(_) | Fault::FreezeLeader => {
                let rank = if let Fault::Freeze(r) = fault { Some(*r) } else { None };
                let Some(id) = self.target(rank, fault).await else { return Undo::Nothing };
                self.cluster.pause(id);
                Undo::Resume(id)
            }
            Fault::IsolateLeader | Fault::Isolate(_) => {
                let rank = if let Fault::Isolate(r) = fault { Some(*r) } else { None };
                let Some(id) = self.target(rank, fault).await else { return Undo::Nothing };
                let links = self.all_links().into_iter().filter(|(a, b)| *a == id || *b == id).collect();
                self.cut(links)
            }
            Fault::OneWay(a, b) => {
                let link = (self.at(*a), self.at(*b));
                self.cut(vec![link])
            }
            Fault::Degrade(rule) => {
                let links = self.all_links();
                for (a, b) in &links {
                    self.cluster.net().set(*a, *b, *rule);
                }
                Undo::Links(links)
            }
            Fault::Replace(rank) => {
                let victim = self.at(*rank);
                if let Err(e) = replace(self.cluster, self.members, self.shared, victim).await {
                    self.notes.push(format!("{fault}: {e}"));
                }
                Undo::Nothing
            }
        }
    }

    fn end(&mut self, undo: Undo) {
        match undo {
            Undo::Restart(id) => {
                self.killed.remove(&id);
                if self.members.contains(&id) {
                    self.cluster.restart(id);
                }
            }
            Undo::Resume(id) => self.cluster.resume(id),
            Undo::Links(links) => {
                for (a, b) in links {
                    self.cluster.net().set(a, b, crate::netfault::LinkRule::default());
                }
            }
            Undo::Nothing => {}
        }
    }
}

/// The voters and learners the leader of the highest term reports (a cut-off member's view
/// can be stale for as long as its partition lasts).
async fn membership(cluster: &TestCluster, members: &[u64]) -> Option<(Vec<u64>, Vec<u64>)> {
    let mut best: Option<NodeView> = None;
    for id in members {
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(1), cluster.view(*id)).await {
            let v: NodeView = v;
            if v.status.state == "Leader" && best.as_ref().is_none_or(|b| v.status.term > b.status.term) {
                best = Some(v);
            }
        }
    }
    let ids = |m: &[yilian_consensus::cluster::Member]| m.iter().map(|m| m.node_id).collect::<Vec<_>>();
    best.map(|v| (ids(&v.status.voters), ids(&v.status.learners)))
}

/// Send `request` through the members until `done` holds for the membership they report.
async fn until<F>(
    cluster: &TestCluster,
    members: &[u64],
    what: &str,
    request: F,
    done: impl Fn(&[u64], &[u64]) -> bool,
) -> Result<(), String>
where
    F: Fn(yilian_node::client::ApiClient) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
{
    let deadline = Instant::now() + MEMBERSHIP_STEP;
    let mut attempt = 0;
    loop {
        if let Some((voters, learners)) = membership(cluster, members).await {
            if done(&voters, &learners) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not take effect within {MEMBERSHIP_STEP:?}"));
        }
        let via = members[attempt % members.len()];
        attempt += 1;
        let _ = tokio::time::timeout(Duration::from_secs(5), request(cluster.api(via))).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Add a fresh node (learner, then voter) and remove `victim`, as ops would replace a machine.
async fn replace(
    cluster: &mut TestCluster,
    members: &mut Vec<u64>,
    shared: &Shared,
    victim: u64,
) -> Result<(), String> {
    let new = cluster.nodes.keys().max().copied().unwrap_or(0) + 1;
    cluster.spawn_new(new);
    // Only the new node: others may be frozen by overlapping faults.
    let api = cluster.api(new);
    crate::harness::wait_for(&format!("node {new} to answer HTTP"), Duration::from_secs(30), || {
        let api = api.clone();
        async move { api.get_text("/livez").await.is_ok() }
    })
    .await;
    let view: NodeView = cluster.view(new).await.map_err(|e| format!("new node {new}: {e:#}"))?;
    let identity = serde_json::to_value(&view.identity).map_err(|e| e.to_string())?;
    until(
        cluster,
        members,
        &format!("adding node {new} as a learner"),
        |api| {
            let body = identity.clone();
            Box::pin(async move {
                let _ = api.post::<_, Value>("/v1/cluster/learners", &body).await;
            })
        },
        |v, l| v.contains(&new) || l.contains(&new),
    )
    .await?;
    until(
        cluster,
        members,
        &format!("promoting node {new}"),
        |api| {
            Box::pin(async move {
                let _ = api.post::<_, Value>("/v1/cluster/voters", &json!({ "node_id": new })).await;
            })
        },
        |v, _| v.contains(&new),
    )
    .await?;
    members.push(new);
    let survivors: Vec<u64> = members.iter().copied().filter(|m| *m != victim).collect();
    until(
        cluster,
        &survivors,
        &format!("removing node {victim}"),
        |api| {
            Box::pin(async move {
                let _ = api.delete::<Value>(&format!("/v1/cluster/members/{victim}")).await;
            })
        },
        |v, l| !v.contains(&victim) && !l.contains(&victim),
    )
    .await?;
    *members = survivors;
    *shared.nodes.write().expect("nodes") =
        members.iter().map(|id| cluster.node(*id).api_addr.clone()).collect();
    // A frozen process would never act on SIGTERM.
    cluster.resume(victim);
    cluster.stop(victim);
    Ok(())
}
