//! QUIC endpoint: outgoing request/response calls and the incoming request loop.

use super::connections::{Connections, Dial};
use super::rpc::{PeerRequest, PeerResponse};
use crate::codec;
use crate::congestion::CongestionControl;
use crate::pki::node_dns_name;
use crate::tls::{
    fetch_transport_config, fingerprint, negotiated_alpn, peer_certificate, peer_identity, PeerIdentity,
    QuicTls, ALPN_RAFT,
};
use crate::types::NodeId;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::Instrument;

/// Largest message accepted on a stream (a snapshot chunk or a batch of log entries).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made; nothing was sent.
    #[error("cannot connect to node {target} at {addr}: {reason}")]
    Connect {
        /// The peer.
        target: NodeId,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request may have been sent but no valid answer arrived.
    #[error("exchange with node {target} failed: {reason}")]
    Exchange {
        /// The peer.
        target: NodeId,
        /// Why.
        reason: String,
    },
}

impl TransportError {
    /// True when the request certainly never reached the peer.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, TransportError::Connect { .. })
    }
}

/// Handles requests arriving from authenticated peers.
pub trait PeerHandler: Send + Sync + 'static {
    /// Answer `request` from the peer whose certificate names node `peer`.
    fn handle(&self, peer: NodeId, request: PeerRequest) -> impl Future<Output = PeerResponse> + Send;
}

/// Serves connections that speak a protocol other than Raft's (image transfer, uploads).
pub trait BulkHandler: Send + Sync + 'static {
    /// Serve `conn`, which negotiated `alpn`, from the CA-verified `peer`, until it closes.
    fn serve(
        &self,
        alpn: Vec<u8>,
        conn: quinn::Connection,
        peer: PeerIdentity,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Fingerprints of the certificates each peer presented, by node id (recorded once per
/// connection, when it is made or accepted).
#[derive(Default)]
struct SeenCertificates(std::sync::Mutex<HashMap<NodeId, BTreeSet<String>>>);

impl SeenCertificates {
    fn remember(&self, id: NodeId, conn: &quinn::Connection) {
        if let Ok(cert) = peer_certificate(conn) {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(id).or_default().insert(fingerprint(&cert));
        }
    }

    fn of(&self, id: NodeId) -> Vec<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The client configs the endpoint dials with, swapped together on certificate rotation.
#[derive(Clone)]
struct Clients {
    raft: quinn::ClientConfig,
    dicom: quinn::ClientConfig,
    congestion: CongestionControl,
}

/// A node's QUIC endpoint: Raft traffic, with one cached connection per peer, plus the bulk
/// protocols handed to a [`BulkHandler`].
pub struct Transport {
    endpoint: quinn::Endpoint,
    connections: Connections,
    seen_certificates: Arc<SeenCertificates>,
    clients: std::sync::RwLock<Clients>,
    bulk: OnceLock<Arc<dyn BulkHandler>>,
}

impl Transport {
    /// Bind the endpoint on `addr` with the node's TLS configuration and its stable endpoint
    /// keys (kept for the process's life; a rotated key takes effect at the next start).
    pub fn bind(addr: SocketAddr, tls: QuicTls) -> std::io::Result<Self> {
        let keys = tls.endpoint_keys;
        let mut config =
            quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &keys.reset)));
        config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(keys.cid)));
        let socket = std::net::UdpSocket::bind(addr)?;
        let endpoint = quinn::Endpoint::new(config, Some(tls.server), socket, Arc::new(quinn::TokioRuntime))?;
        Ok(Self {
            endpoint,
            connections: Default::default(),
            seen_certificates: Default::default(),
            clients: std::sync::RwLock::new(Clients {
                raft: tls.client,
                dicom: tls.dicom_client,
                congestion: tls.congestion,
            }),
            bulk: OnceLock::new(),
        })
    }

    /// Use new TLS material for every connection made or accepted from now on (certificate
    /// rotation); open connections keep theirs until they close.
    pub fn reload(&self, tls: QuicTls) {
        self.endpoint.set_server_config(Some(tls.server));
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) =
            Clients { raft: tls.client, dicom: tls.dicom_client, congestion: tls.congestion };
        self.connections.clear();
    }

    /// Fingerprints of the certificates node `id` has presented to this node.
    pub fn certificates_seen(&self, id: NodeId) -> Vec<String> {
        self.seen_certificates.of(id)
    }

    fn clients(&self) -> Clients {
        self.clients.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Hand bulk connections (image transfer, uploads) to `handler`; only the first call counts.
    pub fn set_bulk_handler(&self, handler: Arc<dyn BulkHandler>) {
        if self.bulk.set(handler).is_err() {
            tracing::warn!("bulk handler already set; keeping the first");
        }
    }

    /// Open a new image-transfer connection to node `target` at `addr`, letting it have at most
    /// `receive_window` bytes in flight to this node, `stream_window` per stream
    /// ([`fetch_transport_config`]).
    pub async fn connect_bulk(
        &self,
        target: NodeId,
        addr: &str,
        receive_window: u32,
        stream_window: u32,
    ) -> Result<quinn::Connection, TransportError> {
        let Clients { dicom: mut client, congestion, .. } = self.clients();
        client.transport_config(fetch_transport_config(receive_window, stream_window, congestion));
        handshake(&self.endpoint, client, target, addr).await.map_err(|reason| TransportError::Connect {
            target,
            addr: addr.to_owned(),
            reason,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    async fn connection(&self, target: NodeId, addr: &str) -> Result<quinn::Connection, TransportError> {
        let (endpoint, client, peer) = (self.endpoint.clone(), self.clients().raft, addr.to_owned());
        let seen = self.seen_certificates.clone();
        let dial = move || -> Dial {
            Box::pin(async move {
                let conn = handshake(&endpoint, client, target, &peer).await.map_err(|e| {
                    tracing::warn!(target_node = target, addr = %peer, error = %e, "QUIC handshake with peer failed");
                    e
                })?;
                seen.remember(target, &conn);
                Ok(conn)
            })
        };
        self.connections.get(target, dial).await.map_err(|reason| TransportError::Connect {
            target,
            addr: addr.to_owned(),
            reason,
        })
    }

    /// Send `request` to node `target` at `addr` and wait up to `timeout` for its answer.
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        request: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        let bytes = codec::encode(request).map_err(|e| TransportError::Connect {
            target,
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        let exchange = async {
            let conn = self.connection(target, addr).await?;
            let fail = |reason: String| TransportError::Exchange { target, reason };
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| TransportError::Connect {
                target,
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?;
            send.write_all(&bytes).await.map_err(|e| fail(e.to_string()))?;
            send.finish().map_err(|e| fail(e.to_string()))?;
            let reply = recv.read_to_end(MAX_MESSAGE_BYTES).await.map_err(|e| fail(e.to_string()))?;
            codec::decode::<PeerResponse>(&reply).map_err(|e| fail(e.to_string()))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                Err(TransportError::Exchange { target, reason: format!("no answer within {timeout:?}") })
            }
        }
    }

    /// Accept connections until the endpoint closes: Raft requests go to `handler`, other
    /// protocols to the bulk handler.
    pub async fn serve<H: PeerHandler>(self: Arc<Self>, handler: Arc<H>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let handler = handler.clone();
            let me = self.clone();
            let bulk = self.bulk.get().cloned();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%remote, error = %e, "refused peer: TLS handshake failed (certificate not from our CA?)");
                        return;
                    }
                };
                let peer = match peer_identity(&conn) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(%remote, error = %e, "refused peer: certificate names no node or client");
                        conn.close(quinn::VarInt::from_u32(1), b"certificate names no node or client");
                        return;
                    }
                };
                let alpn = negotiated_alpn(&conn).unwrap_or_default();
                match (alpn.as_slice() == ALPN_RAFT, peer, bulk) {
                    (true, PeerIdentity::Node(id), _) => {
                        me.seen_certificates.remember(id, &conn);
                        serve_connection(conn, id, handler)
                            .instrument(tracing::debug_span!("peer", peer = id))
                            .await
                    }
                    (true, PeerIdentity::Client(name), _) => {
                        tracing::warn!(%remote, client = %name, "refused client on the Raft protocol");
                        conn.close(quinn::VarInt::from_u32(1), b"raft is for nodes only");
                    }
                    (false, peer, Some(bulk)) => bulk.serve(alpn, conn, peer).await,
                    (false, peer, None) => {
                        tracing::warn!(%remote, %peer, "refused bulk connection: this node serves no images yet");
                        conn.close(quinn::VarInt::from_u32(2), b"not serving images");
                    }
                }
            });
        }
    }

    /// Close the endpoint and all connections.
    pub fn close(&self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
    }
}

/// Resolve `addr` and open a QUIC connection to node `target` there with `client`.
async fn handshake(
    endpoint: &quinn::Endpoint,
    client: quinn::ClientConfig,
    target: NodeId,
    addr: &str,
) -> Result<quinn::Connection, String> {
    let sock = resolve(addr).await?;
    let connecting =
        endpoint.connect_with(client, sock, &node_dns_name(target)).map_err(|e| e.to_string())?;
    connecting.await.map_err(|e| e.to_string())
}

async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "address resolves to nothing".to_owned())
}

async fn serve_connection<H: PeerHandler>(conn: quinn::Connection, peer: NodeId, handler: Arc<H>) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let handler = handler.clone();
        tokio::spawn(async move {
            let request = match recv.read_to_end(MAX_MESSAGE_BYTES).await {
                Ok(bytes) => codec::decode::<PeerRequest>(&bytes),
                Err(e) => {
                    tracing::debug!(error = %e, "peer stream ended early");
                    return;
                }
            };
            let response = match request {
                Ok(req) => handler.handle(peer, req).await,
                Err(e) => PeerResponse::Refused(format!("undecodable request: {e}")),
            };
            let bytes = match codec::encode(&response) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode response");
                    return;
                }
            };
            if send.write_all(&bytes).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}
