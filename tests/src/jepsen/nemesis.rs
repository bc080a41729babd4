//! The nemesis: applies one schedule step to the cluster, waits while it lasts, and undoes it.

use super::schedule::{Fault, Step};
use super::workload::Shared;
use crate::harness::TestCluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use yilian_node::api::NodeView;

/// How long one membership step may take before the nemesis gives up on it.
const MEMBERSHIP_STEP: Duration = Duration::from_secs(20);

/// Apply `step` to the cluster whose voters are `members`; a membership change updates
/// `members` and the clients' node list. Errors say why a fault could not be applied.
pub(crate) async fn apply(
    cluster: &mut TestCluster,
    members: &mut Vec<u64>,
    shared: &Shared,
    step: &Step,
) -> Result<(), String> {
    let at = |rank: usize| members[rank % members.len()];
    let hold = step.hold;
    match &step.fault {
        Fault::KillLeader | Fault::Kill(_) => {
            let id = match step.fault {
                Fault::Kill(r) => at(r),
                _ => cluster.wait_leader(members).await,
            };
            cluster.kill9(id);
            tokio::time::sleep(hold).await;
            cluster.restart(id);
        }
        Fault::Freeze(_) | Fault::FreezeLeader => {
            let id = match step.fault {
                Fault::Freeze(r) => at(r),
                _ => cluster.wait_leader(members).await,
            };
            cluster.pause(id);
            tokio::time::sleep(hold).await;
            cluster.resume(id);
        }
        Fault::IsolateLeader | Fault::Isolate(_) => {
            let id = match step.fault {
                Fault::Isolate(r) => at(r),
                _ => cluster.wait_leader(members).await,
            };
            cluster.net().isolate(id);
            tokio::time::sleep(hold).await;
            cluster.net().heal();
        }
        Fault::OneWay(a, b) => {
            cluster.net().cut_one_way(&[at(*a)], &[at(*b)]);
            tokio::time::sleep(hold).await;
            cluster.net().heal();
        }
        Fault::Degrade(rule) => {
            cluster.net().set_all(*rule);
            tokio::time::sleep(hold).await;
            cluster.net().heal();
        }
        Fault::Replace(rank) => replace(cluster, members, shared, at(*rank)).await?,
    }
    Ok(())
}

/// The voters and learners a member reports.
async fn membership(cluster: &TestCluster, members: &[u64]) -> Option<(Vec<u64>, Vec<u64>)> {
    for id in members {
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), cluster.view(*id)).await {
            let v: NodeView = v;
            let ids =
                |m: &[yilian_consensus::cluster::Member]| m.iter().map(|m| m.node_id).collect::<Vec<_>>();
            return Some((ids(&v.status.voters), ids(&v.status.learners)));
        }
    }
    None
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
    cluster.wait_alive().await;
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
    cluster.stop(victim);
    Ok(())
}
