//! Mutual TLS for QUIC: building quinn configs from the CA and node certificate, and reading
//! which node a peer's certificate names.

use crate::congestion::CongestionControl;
use crate::pki::{client_name_from_dns_name, node_id_from_dns_name};
use crate::types::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use yilian_referral::wire::{ALPN_DICOM, ALPN_RAFT, ALPN_UPLOAD};
/// Every protocol a node's endpoint accepts.
pub const NODE_ALPNS: [&[u8]; 3] = [ALPN_RAFT, ALPN_DICOM, ALPN_UPLOAD];

/// Where a node's TLS material lives: the `[tls]` table of the node's config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The regional CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This node's certificate (PEM), issued by `yilian ca issue`.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// quinn server and client configs for one node.
pub struct QuicTls {
    /// Accepts only peers with a certificate from the regional CA, for every ALPN given.
    pub server: quinn::ServerConfig,
    /// Presents this node's certificate and checks the server's against the CA (first ALPN).
    pub client: quinn::ClientConfig,
    /// The same, for image transfer connections ([`ALPN_DICOM`]).
    pub dicom_client: quinn::ClientConfig,
    /// The endpoint's keys, derived from the node's private key so they survive a restart.
    pub endpoint_keys: EndpointKeys,
    /// The congestion controller of every connection built from these configs.
    pub congestion: CongestionControl,
}

/// The keys a QUIC endpoint signs its connection IDs and stateless resets with. Kept across a
/// restart, they let the restarted node recognise its previous process's connection IDs and
/// answer a peer still sending on such a connection with a stateless reset, so the peer
/// reconnects at its next packet instead of sending into a dead connection until its idle
/// timeout (and the restarted node, hearing no leader, standing for election meanwhile).
#[derive(Clone, Copy)]
pub struct EndpointKeys {
    /// Key of the HMAC behind stateless-reset tokens.
    pub reset: [u8; 32],
    /// Key of the hash that signs connection IDs.
    pub cid: u64,
}

impl EndpointKeys {
    /// The keys of the node holding `key`: hashes of the private key under their own labels,
    /// stable across restarts and secret like the key.
    fn of(key: &PrivateKeyDer<'_>) -> EndpointKeys {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update(key.secret_der());
            h.finalize().into()
        };
        let cid = derive(b"yilian quic connection id key v1\0");
        EndpointKeys {
            reset: derive(b"yilian quic stateless reset key v1\0"),
            cid: u64::from_le_bytes([cid[0], cid[1], cid[2], cid[3], cid[4], cid[5], cid[6], cid[7]]),
        }
    }
}

impl std::fmt::Debug for EndpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointKeys(..)")
    }
}

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file had no usable PEM item.
    #[error("{path} holds no {what}; generate it with `yilian ca init` / `yilian ca issue`")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// rustls refused the material.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("CA certificate unusable for client verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn refused the rustls config.
    #[error("QUIC TLS configuration rejected: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read { path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::Missing { path: path.to_owned(), what: "certificate" });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read { path: path.to_owned(), source })?
        .ok_or_else(|| TlsError::Missing { path: path.to_owned(), what: "private key" })
}

/// Close a connection after this long without any packet from the peer.
const IDLE_TIMEOUT_MS: u32 = 10_000;

/// Round-trip time assumed before the first measurement. quinn's default (333 ms, for the open
/// internet) puts the first handshake retransmission a second after the first try, longer than
/// an election timeout; hospital links are tens of milliseconds, and a low guess only costs an
/// early retransmission.
const INITIAL_RTT: Duration = Duration::from_millis(100);

fn base_transport_config(congestion: CongestionControl) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    congestion.apply(&mut t);
    t.initial_rtt(INITIAL_RTT);
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS))));
    t
}

fn transport_config(congestion: CongestionControl) -> Arc<quinn::TransportConfig> {
    Arc::new(base_transport_config(congestion))
}

/// Transport settings for the receiving end of an image fetch: the source may have at most
/// `receive_window` bytes in flight to this side on the connection (the fetcher may change it
/// later with `quinn::Connection::set_receive_window`) and `stream_window` on each stream. That
/// bounds the queue the fetch builds in a link (which Raft messages on the same link wait
/// behind) to `receive_window` / link rate, and the fetch's rate to `receive_window` / round trip.
/// What this side sends follows `congestion`.
pub fn fetch_transport_config(
    receive_window: u32,
    stream_window: u32,
    congestion: CongestionControl,
) -> Arc<quinn::TransportConfig> {
    let mut t = base_transport_config(congestion);
    t.receive_window(quinn::VarInt::from_u32(receive_window));
    t.stream_receive_window(quinn::VarInt::from_u32(stream_window));
    Arc::new(t)
}

/// Decides which CA-signed certificates are nevertheless refused at the handshake.
pub trait DenyList: Send + Sync + std::fmt::Debug {
    /// Why `cert` (already verified against the CA) is refused, or `None` to accept it.
    fn refusal(&self, cert: &CertificateDer<'_>) -> Option<String>;
}

/// Refuses nothing.
#[derive(Debug)]
pub struct NoDenyList;

impl DenyList for NoDenyList {
    fn refusal(&self, _: &CertificateDer<'_>) -> Option<String> {
        None
    }
}

/// SHA-256 (hex) of a certificate's DER bytes: how the deny list names it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of the first certificate in the PEM file `path`.
pub fn fingerprint_of_file(path: &Path) -> Result<String, TlsError> {
    let certs = load_certs(path)?;
    Ok(fingerprint(&certs[0]))
}

/// The node's certificate chain and private key (also used for HTTPS on the API).
pub fn load_identity(
    files: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    Ok((load_certs(&files.cert)?, load_key(&files.key)?))
}

/// Build quinn configs from the CA and node files: a server accepting every ALPN in `alpns`,
/// a client speaking the first of them, and a client speaking [`ALPN_DICOM`], all sending with
/// the default congestion controller.
pub fn load(files: &TlsFiles, alpns: &[&[u8]]) -> Result<QuicTls, TlsError> {
    load_with_deny_list(files, alpns, Arc::new(NoDenyList), CongestionControl::default())
}

/// [`load`], also refusing on both sides of the handshake any certificate `deny` names
/// (removed nodes), and sending with `congestion`.
pub fn load_with_deny_list(
    files: &TlsFiles,
    alpns: &[&[u8]],
    deny: Arc<dyn DenyList>,
    congestion: CongestionControl,
) -> Result<QuicTls, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(load_roots(&files.ca_cert)?);
    let chain = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;

    let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let verifier = Arc::new(Denying { inner, deny: deny.clone() });
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    server.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server)?));
    server.transport_config(transport_config(congestion));

    let first = alpns.first().copied().unwrap_or(ALPN_RAFT);
    let client = client_config(&roots, &chain, &key, first, congestion, deny.clone())?;
    let dicom_client = client_config(&roots, &chain, &key, ALPN_DICOM, congestion, deny)?;
    Ok(QuicTls { server, client, dicom_client, endpoint_keys: EndpointKeys::of(&key), congestion })
}

/// A client-only config speaking `alpn` and sending with `congestion`, presenting the
/// certificate in `files` (a node's, or a client certificate from `yilian ca issue-client`).
pub fn client_only(
    files: &TlsFiles,
    alpn: &[u8],
    congestion: CongestionControl,
) -> Result<quinn::ClientConfig, TlsError> {
    let roots = Arc::new(load_roots(&files.ca_cert)?);
    let (certs, key) = (load_certs(&files.cert)?, load_key(&files.key)?);
    client_config(&roots, &certs, &key, alpn, congestion, Arc::new(NoDenyList))
}

fn load_roots(ca_cert: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(ca_cert)? {
        roots.add(ca)?;
    }
    Ok(roots)
}

/// A client presenting `chain`, speaking `alpn` and sending with `congestion`.
fn client_config(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    alpn: &[u8],
    congestion: CongestionControl,
    deny: Arc<dyn DenyList>,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Denying { inner, deny }))
        .with_client_auth_cert(chain.to_vec(), key.clone_key())?;
    client.alpn_protocols = vec![alpn.to_vec()];
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client)?));
    client.transport_config(transport_config(congestion));
    Ok(client)
}

/// The ALPN protocol a connection negotiated, if any.
pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
}

/// A CA verifier (`inner`, client or server side), then the deny list.
#[derive(Debug)]
struct Denying<V: ?Sized> {
    inner: Arc<V>,
    deny: Arc<dyn DenyList>,
}

impl<V: ?Sized> Denying<V> {
    /// `verified` (the CA's verdict) unless the deny list refuses `end_entity`.
    fn screen<T>(&self, end_entity: &CertificateDer<'_>, verified: T) -> Result<T, rustls::Error> {
        match self.deny.refusal(end_entity) {
            Some(why) => Err(rustls::Error::General(why)),
            None => Ok(verified),
        }
    }
}

/// Handshake signatures are checked by the inner verifier, on both sides.
macro_rules! delegate_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

impl ClientCertVerifier for Denying<dyn ClientCertVerifier> {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.screen(end_entity, verified)
    }

    delegate_signatures!();
}

impl ServerCertVerifier for Denying<WebPkiServerVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.screen(end_entity, verified)
    }

    delegate_signatures!();
}

/// Why a peer's identity could not be established.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The peer presented no certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("peer certificate unparsable: {0}")]
    Unparsable(String),
    /// The certificate names no Yilian node.
    #[error("peer certificate names no yilian node (expected a DNS SAN like node-<id>.yilian)")]
    NoNodeName,
}

/// The certificate a connected peer presented (already CA-verified by TLS).
pub fn peer_certificate(conn: &quinn::Connection) -> Result<CertificateDer<'static>, IdentityError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(IdentityError::NoCertificate)?;
    certs.first().cloned().ok_or(IdentityError::NoCertificate)
}

/// Who a connected peer's (CA-verified) certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// A cluster node.
    Node(NodeId),
    /// A client (e.g. a clinic's uploader) with the name from `yilian ca issue-client`.
    Client(String),
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerIdentity::Node(id) => write!(f, "node {id}"),
            PeerIdentity::Client(name) => write!(f, "client {name}"),
        }
    }
}

/// The node id named in the certificate a connected peer presented (already CA-verified by TLS).
pub fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, IdentityError> {
    node_id_of(&peer_certificate(conn)?)
}

/// The node or client named in the certificate a connected peer presented.
pub fn peer_identity(conn: &quinn::Connection) -> Result<PeerIdentity, IdentityError> {
    let leaf = peer_certificate(conn)?;
    let names = dns_names(&leaf)?;
    if let Some(id) = names.iter().find_map(|dns| node_id_from_dns_name(dns)) {
        return Ok(PeerIdentity::Node(id));
    }
    names
        .iter()
        .find_map(|dns| client_name_from_dns_name(dns))
        .map(|n| PeerIdentity::Client(n.to_owned()))
        .ok_or(IdentityError::NoNodeName)
}

/// The node id a certificate names in its DNS SAN `node-<id>.yilian`.
pub fn node_id_of(leaf: &CertificateDer<'_>) -> Result<NodeId, IdentityError> {
    dns_names(leaf)?.iter().find_map(|dns| node_id_from_dns_name(dns)).ok_or(IdentityError::NoNodeName)
}

fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, IdentityError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?
        .ok_or(IdentityError::NoNodeName)?;
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect())
}
