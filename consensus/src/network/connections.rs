//! One cached QUIC connection per peer for Raft calls.
//!
//! A missing connection is dialled by a task of its own whose result every waiting caller
//! shares. A caller's timeout (a heartbeat's is one heartbeat interval) therefore never cuts a
//! handshake off: a handshake slower than one call still completes and the next call uses it,
//! where cancelling it with each call would never connect at all. A dead peer is dialled by one
//! attempt at a time, each bounded by [`DIAL_TIMEOUT`], so a restarted peer is reached within
//! about one attempt.

use crate::types::NodeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long one dialling attempt may take before the next call starts another.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// A dialling attempt: a QUIC connection or why there is none.
pub(crate) type Dial = Pin<Box<dyn Future<Output = Result<quinn::Connection, String>> + Send>>;

type Outcome = Option<Result<quinn::Connection, String>>;

enum Slot {
    Connected(quinn::Connection),
    Dialling(watch::Receiver<Outcome>),
}

/// The connections to peers, by node id.
#[derive(Default)]
pub(crate) struct Connections {
    slots: Arc<Mutex<HashMap<NodeId, Slot>>>,
}

impl Connections {
    /// The open connection to `target`, or the outcome of dialling it: joining the attempt
    /// under way, or starting one with `dial`.
    pub(crate) async fn get(
        &self,
        target: NodeId,
        dial: impl FnOnce() -> Dial,
    ) -> Result<quinn::Connection, String> {
        let mut outcome = {
            let mut slots = lock(&self.slots);
            match slots.get(&target) {
                Some(Slot::Connected(conn)) if conn.close_reason().is_none() => return Ok(conn.clone()),
                Some(Slot::Dialling(rx)) => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    slots.insert(target, Slot::Dialling(rx.clone()));
                    tokio::spawn(settle(self.slots.clone(), target, dial(), tx, rx.clone()));
                    rx
                }
            }
        };
        let settled =
            outcome.wait_for(Option::is_some).await.map_err(|_| "the dialling task ended".to_owned())?;
        match &*settled {
            Some(result) => result.clone(),
            None => Err("the dialling task ended without an outcome".to_owned()),
        }
    }

    /// Forget every connection (new TLS material); open ones stay open for their users.
    pub(crate) fn clear(&self) {
        lock(&self.slots).clear();
    }
}

/// Run `dial` to its end (or [`DIAL_TIMEOUT`]), record the connection in the slot it was started
/// for (unless the slot was cleared meanwhile) and tell the waiting callers.
async fn settle(
    slots: Arc<Mutex<HashMap<NodeId, Slot>>>,
    target: NodeId,
    dial: Dial,
    tx: watch::Sender<Outcome>,
    mine: watch::Receiver<Outcome>,
) {
    let result = tokio::time::timeout(DIAL_TIMEOUT, dial)
        .await
        .unwrap_or_else(|_| Err(format!("no QUIC handshake within {DIAL_TIMEOUT:?}")));
    {
        let mut slots = lock(&slots);
        if matches!(slots.get(&target), Some(Slot::Dialling(rx)) if rx.same_channel(&mine)) {
            match &result {
                Ok(conn) => slots.insert(target, Slot::Connected(conn.clone())),
                Err(_) => slots.remove(&target),
            };
        }
    }
    let _ = tx.send(Some(result));
}

fn lock(slots: &Mutex<HashMap<NodeId, Slot>>) -> MutexGuard<'_, HashMap<NodeId, Slot>> {
    slots.lock().unwrap_or_else(|p| p.into_inner())
}
