//! The UDP relay in front of one node: packets from a peer arrive on the front socket and go to
//! the node through a socket of their own per peer address, so the node's answers can be told
//! apart and sent back to the right peer from the front socket.

use super::{NodeId, Shared, Verdict};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Largest datagram relayed (QUIC never sends more than 64 KiB).
const MAX_DATAGRAM: usize = 65_536;

/// Start relaying packets from `front` to node `node` at `socket` and back.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    node: NodeId,
    socket: SocketAddr,
    front: std::net::UdpSocket,
) -> std::io::Result<()> {
    front.set_nonblocking(true)?;
    let front = Arc::new(UdpSocket::from_std(front)?);
    let task = tokio::spawn(inbound(shared.clone(), node, socket, front));
    shared.track(task.abort_handle());
    Ok(())
}

/// A packet waiting for its release time: (when, arrival order, destination, bytes).
type Held = (Instant, u64, SocketAddr, Vec<u8>);

/// Delayed packets of one sending socket, released in order of release time and, at equal
/// times, of arrival: a paced link keeps its packets in order (as a router queue does), and
/// only jitter reorders them.
struct Later {
    queue: mpsc::UnboundedSender<(Instant, SocketAddr, Vec<u8>)>,
}

impl Later {
    fn spawn(shared: &Shared, via: Arc<UdpSocket>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(release(via, rx));
        shared.track(task.abort_handle());
        Self { queue }
    }
}

async fn release(via: Arc<UdpSocket>, mut rx: mpsc::UnboundedReceiver<(Instant, SocketAddr, Vec<u8>)>) {
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next = held.peek().map(|Reverse((at, ..))| *at);
        tokio::select! {
            got = rx.recv() => match got {
                Some((at, to, packet)) => {
                    held.push(Reverse((at, seq, to, packet)));
                    seq += 1;
                }
                None => return,
            },
            () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while held.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
                    if let Some(Reverse((_, _, to, packet))) = held.pop() {
                        // UDP: a send error loses the packet, as a router would.
                        let _ = via.send_to(&packet, to).await;
                    }
                }
            }
        }
    }
}

/// Send `packet` on `via` to `to` when `verdict` says so (delayed ones through `later`).
async fn deliver(via: &UdpSocket, later: &Later, to: SocketAddr, packet: &[u8], verdict: Verdict) {
    match verdict {
        Verdict::Drop => {}
        Verdict::After(wait) if wait.is_zero() => {
            // UDP: a send error loses the packet, as a router would.
            let _ = via.send_to(packet, to).await;
        }
        Verdict::After(wait) => {
            let _ = later.queue.send((Instant::now() + wait, to, packet.to_vec()));
        }
    }
}

/// Peer → node: relay what arrives on the front socket through the peer's own upstream socket.
async fn inbound(shared: Arc<Shared>, node: NodeId, socket: SocketAddr, front: Arc<UdpSocket>) {
    let mut upstreams: HashMap<SocketAddr, (Arc<UdpSocket>, Arc<Later>)> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let front_later = Arc::new(Later::spawn(&shared, front.clone()));
    loop {
        let Ok((len, peer)) = front.recv_from(&mut buf).await else { continue };
        let (upstream, later) = match upstreams.get(&peer) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind((socket.ip(), 0)).await else { continue };
                let u = Arc::new(u);
                let later = Arc::new(Later::spawn(&shared, u.clone()));
                let task = tokio::spawn(outbound(
                    shared.clone(),
                    node,
                    peer,
                    u.clone(),
                    front.clone(),
                    front_later.clone(),
                ));
                shared.track(task.abort_handle());
                upstreams.insert(peer, (u.clone(), later.clone()));
                (u, later)
            }
        };
        let verdict = shared.verdict(shared.node_at(peer), node, len);
        deliver(&upstream, &later, socket, &buf[..len], verdict).await;
    }
}

/// Node → peer: relay the node's answers on `upstream` back to `peer` from the front socket.
async fn outbound(
    shared: Arc<Shared>,
    node: NodeId,
    peer: SocketAddr,
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    later: Arc<Later>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, _)) = upstream.recv_from(&mut buf).await else { continue };
        let from = shared.node_at(peer);
        let verdict = match from {
            Some(to) => shared.verdict(Some(node), to, len),
            None => Verdict::After(std::time::Duration::ZERO),
        };
        deliver(&front, &later, peer, &buf[..len], verdict).await;
    }
}
