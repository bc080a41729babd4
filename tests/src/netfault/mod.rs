//! Network fault injection in user space: one UDP relay in front of each node's QUIC socket.
//! Nodes advertise their relay's address (`advertise_addr`), so every packet between two nodes
//! passes a relay, which applies the [`LinkRule`] of its directed link: cut (one-way or two-way
//! partitions), loss, delay, jitter (reordering) and a bandwidth cap. Each link draws from its
//! own RNG seeded from the network's seed and the link's ends, so a fault schedule replays.
//!
//! Packets from addresses that are not a node's socket (a CLI upload, say) are relayed untouched.

mod link;
mod relay;

pub use link::{LinkRule, Verdict};

use link::Link;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::AbortHandle;

/// Node ids as the cluster knows them.
pub type NodeId = u64;

/// Packet counts since the network was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets relayed (at once or late).
    pub forwarded: u64,
    /// Packets relayed after a delay.
    pub delayed: u64,
    /// Packets dropped by a cut, loss or a full shaper queue.
    pub dropped: u64,
}

/// State shared by the relays.
pub(crate) struct Shared {
    seed: u64,
    /// Node whose QUIC socket is bound at an address.
    sockets: Mutex<HashMap<SocketAddr, NodeId>>,
    links: Mutex<HashMap<(NodeId, NodeId), Link>>,
    forwarded: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    pub(crate) fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.sockets.lock().expect("sockets").get(&addr).copied()
    }

    /// The verdict for a packet of `len` bytes from node `from` to node `to` (None: not a node).
    pub(crate) fn verdict(&self, from: Option<NodeId>, to: NodeId, len: usize) -> Verdict {
        let verdict = match from {
            Some(from) if from != to => {
                let mut links = self.links.lock().expect("links");
                links
                    .entry((from, to))
                    .or_insert_with(|| Link::new(link_seed(self.seed, from, to)))
                    .verdict(len, Instant::now())
            }
            _ => Verdict::After(std::time::Duration::ZERO),
        };
        match verdict {
            Verdict::Drop => self.dropped.fetch_add(1, Ordering::Relaxed),
            Verdict::After(d) if !d.is_zero() => self.delayed.fetch_add(1, Ordering::Relaxed),
            Verdict::After(_) => self.forwarded.fetch_add(1, Ordering::Relaxed),
        };
        verdict
    }

    pub(crate) fn track(&self, task: AbortHandle) {
        self.tasks.lock().expect("tasks").push(task);
    }
}

/// The seed of link `from → to`'s RNG: a SplitMix64 step over the network seed and the ends.
fn link_seed(seed: u64, from: NodeId, to: NodeId) -> u64 {
    let mut z = seed ^ from.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ to.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The relays of one test cluster and the rules of its links. Dropping it stops the relays.
pub struct Network {
    shared: Arc<Shared>,
    relays: Mutex<BTreeMap<NodeId, SocketAddr>>,
}

impl Network {
    /// A network without relays whose links draw randomness from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                seed,
                sockets: Default::default(),
                links: Default::default(),
                forwarded: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                tasks: Default::default(),
            }),
            relays: Default::default(),
        }
    }

    /// Put a relay in front of node `id`, whose QUIC socket is bound at `socket`; returns the
    /// relay's address, which the node must advertise. Must run inside a Tokio runtime.
    pub fn add_node(&self, id: NodeId, socket: SocketAddr) -> std::io::Result<SocketAddr> {
        let front = std::net::UdpSocket::bind((socket.ip(), 0))?;
        let addr = front.local_addr()?;
        self.shared.sockets.lock().expect("sockets").insert(socket, id);
        relay::spawn(self.shared.clone(), id, socket, front)?;
        self.relays.lock().expect("relays").insert(id, addr);
        Ok(addr)
    }

    /// Apply `rule` to packets from `from` to `to`.
    pub fn set(&self, from: NodeId, to: NodeId, rule: LinkRule) {
        let mut links = self.shared.links.lock().expect("links");
        links.entry((from, to)).or_insert_with(|| Link::new(link_seed(self.shared.seed, from, to))).set(rule);
    }

    /// The rule in force from `from` to `to`.
    pub fn rule(&self, from: NodeId, to: NodeId) -> LinkRule {
        self.shared.links.lock().expect("links").get(&(from, to)).map(Link::rule).unwrap_or_default()
    }

    /// Nodes with a relay.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.relays.lock().expect("relays").keys().copied().collect()
    }

    /// Cut every link from a node of `from` to a node of `to` (a one-way partition).
    pub fn cut_one_way(&self, from: &[NodeId], to: &[NodeId]) {
        for a in from {
            for b in to.iter().filter(|b| *b != a) {
                self.set(*a, *b, LinkRule::cut());
            }
        }
    }

    /// Cut every link between `side` and `other`, both ways.
    pub fn partition(&self, side: &[NodeId], other: &[NodeId]) {
        self.cut_one_way(side, other);
        self.cut_one_way(other, side);
    }

    /// Cut node `id` off from every other node, both ways.
    pub fn isolate(&self, id: NodeId) {
        let others: Vec<NodeId> = self.nodes().into_iter().filter(|n| *n != id).collect();
        self.partition(&[id], &others);
    }

    /// Apply `rule` to every link between nodes, both ways.
    pub fn set_all(&self, rule: LinkRule) {
        let nodes = self.nodes();
        for a in &nodes {
            for b in nodes.iter().filter(|b| *b != a) {
                self.set(*a, *b, rule);
            }
        }
    }

    /// Make every link clean again.
    pub fn heal(&self) {
        self.set_all(LinkRule::default());
        for link in self.shared.links.lock().expect("links").values_mut() {
            link.set(LinkRule::default());
        }
    }

    /// Packet counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            delayed: self.shared.delayed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for task in self.shared.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
