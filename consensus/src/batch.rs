//! Group commit: queue items and hand them on in groups, a bounded number of groups at a time.
//!
//! Items that arrive while earlier groups are still in flight wait in the queue and leave
//! together in the next group, so a burst of concurrent requests costs one round (one log entry,
//! one RPC) per group instead of one per request. An item that finds a free slot leaves at
//! once, alone, so a lone caller waits no longer than without batching.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// An item that can be queued in a [`Batcher`].
pub(crate) trait Batched: Send + 'static {
    /// Its encoded size, which bounds a group's size.
    fn bytes(&self) -> usize;

    /// Whether it may share a group whose first item is `first`.
    fn joins(&self, _first: &Self) -> bool {
        true
    }
}

/// How large groups get and how many are in flight at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Groups handed on and not yet finished, at most.
    pub in_flight: usize,
    /// Items in one group, at most.
    pub max_items: usize,
    /// Encoded bytes in one group, at most (a larger single item still goes alone).
    pub max_bytes: usize,
}

/// The queue's sending side; dropping it ends the grouping task once the queue is empty.
pub(crate) struct Batcher<T> {
    queue: mpsc::UnboundedSender<T>,
}

impl<T: Batched> Batcher<T> {
    /// Start the grouping task: each group goes to `dispatch`, at most `limits.in_flight` of
    /// them running at once.
    pub(crate) fn start<F, Fut>(limits: Limits, dispatch: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(limits, rx, dispatch));
        Self { queue }
    }

    /// Queue `item`; gives it back if the grouping task has stopped (the runtime is shutting down).
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.queue.send(item).map_err(|e| e.0)
    }
}

/// Take items off the queue in groups, at most `limits.in_flight` groups at a time.
async fn run<T, F, Fut>(limits: Limits, mut queue: mpsc::UnboundedReceiver<T>, dispatch: F)
where
    T: Batched,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    let mut carried: Option<T> = None;
    loop {
        let first = match carried.take() {
            Some(item) => item,
            None => match queue.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let mut bytes = first.bytes();
        let mut group = vec![first];
        while group.len() < limits.max_items {
            match queue.try_recv() {
                Ok(item) if bytes + item.bytes() > limits.max_bytes || !item.joins(&group[0]) => {
                    carried = Some(item);
                    break;
                }
                Ok(item) => {
                    bytes += item.bytes();
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        let done = dispatch(group);
        tokio::spawn(async move {
            done.await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    struct Item {
        bytes: usize,
        key: u8,
        done: oneshot::Sender<()>,
    }

    impl Batched for Item {
        fn bytes(&self) -> usize {
            self.bytes
        }
        fn joins(&self, first: &Self) -> bool {
            self.key == first.key
        }
    }

    /// Queue items while the only slot is busy, then release it and return the groups formed.
    async fn groups_of(items: Vec<(usize, u8)>, limits: Limits) -> Vec<Vec<(usize, u8)>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (release, gate) = tokio::sync::watch::channel(false);
        let recorder = seen.clone();
        let batcher = Batcher::start(limits, move |group: Vec<Item>| {
            let recorder = recorder.clone();
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                recorder.lock().unwrap().push(group.iter().map(|i| (i.bytes, i.key)).collect());
                for item in group {
                    let _ = item.done.send(());
                }
            }
        });
        let mut waits = Vec::new();
        for (bytes, key) in items {
            let (done, wait) = oneshot::channel();
            assert!(batcher.push(Item { bytes, key, done }).is_ok());
            waits.push(wait);
        }
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for wait in waits {
            wait.await.unwrap();
        }
        let groups = seen.lock().unwrap().clone();
        groups
    }

    #[tokio::test]
    async fn groups_respect_item_byte_and_key_limits() {
        let limits = Limits { in_flight: 1, max_items: 3, max_bytes: 100 };
        let items = vec![(10, 1), (10, 1), (10, 1), (10, 1), (90, 1), (200, 1), (10, 2), (10, 2), (10, 1)];
        let groups = groups_of(items, limits).await;
        assert_eq!(
            groups,
            vec![
                vec![(10, 1), (10, 1), (10, 1)],
                vec![(10, 1), (90, 1)],
                vec![(200, 1)],
                vec![(10, 2), (10, 2)],
                vec![(10, 1)],
            ]
        );
    }
}
