//! The UDP relay in front of one node: packets from a peer arrive on the front socket and go to
//! the node through a socket of their own per peer address, so the node's answers can be told
//! apart and sent back to the right peer from the front socket.

use super::{NodeId, Shared, Verdict};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

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

/// Send `packet` on `via` to `to` when `verdict` says so.
async fn deliver(via: &Arc<UdpSocket>, to: SocketAddr, packet: &[u8], verdict: Verdict) {
    match verdict {
        Verdict::Drop => {}
        Verdict::After(wait) if wait.is_zero() => {
            // UDP: a send error loses the packet, as a router would.
            let _ = via.send_to(packet, to).await;
        }
        Verdict::After(wait) => {
            let (via, packet) = (via.clone(), packet.to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = via.send_to(&packet, to).await;
            });
        }
    }
}

/// Peer → node: relay what arrives on the front socket through the peer's own upstream socket.
async fn inbound(shared: Arc<Shared>, node: NodeId, socket: SocketAddr, front: Arc<UdpSocket>) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, peer)) = front.recv_from(&mut buf).await else { continue };
        let upstream = match upstreams.get(&peer) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind((socket.ip(), 0)).await else { continue };
                let u = Arc::new(u);
                let task = tokio::spawn(outbound(shared.clone(), node, peer, u.clone(), front.clone()));
                shared.track(task.abort_handle());
                upstreams.insert(peer, u.clone());
                u
            }
        };
        let verdict = shared.verdict(shared.node_at(peer), node, len);
        deliver(&upstream, socket, &buf[..len], verdict).await;
    }
}

/// Node → peer: relay the node's answers on `upstream` back to `peer` from the front socket.
async fn outbound(
    shared: Arc<Shared>,
    node: NodeId,
    peer: SocketAddr,
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, _)) = upstream.recv_from(&mut buf).await else { continue };
        let from = shared.node_at(peer);
        let verdict = match from {
            Some(to) => shared.verdict(Some(node), to, len),
            None => Verdict::After(std::time::Duration::ZERO),
        };
        deliver(&front, peer, &buf[..len], verdict).await;
    }
}
