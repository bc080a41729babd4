//! The node's bulk QUIC protocols: other nodes fetch stored objects over `yilian-dicom/1`
//! (nodes only), clinics upload files over `yilian-upload/1` (node or client certificate plus a
//! bearer token that may write to the case).

use super::prefetch::Prefetch;
use super::{CaseTarget, Imaging, Intake, Requester};
use crate::api::access::authorize_case;
use crate::api::auth::{authenticate_token, Authenticated};
use crate::api::ApiState;
use crate::config::ImagingSettings;
use anyhow::Context;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use yilian_consensus::network::BulkHandler;
use yilian_consensus::tls::{PeerIdentity, ALPN_DICOM, ALPN_UPLOAD};
use yilian_dicom::transfer::{
    serve_fetch_connection, serve_upload_connection, StoreChunkSource, UploadLimits, UploadMeta,
    UploadReceiver, UploadSink, DEFAULT_CACHED_LISTS,
};
use yilian_dicom::Digest;
use yilian_referral::{CaseId, CaseOperation};

/// Install the bulk handler (uploads kept in `<data_dir>/uploads`) and start the prefetch loop;
/// stop the returned loop before the node shuts down.
pub async fn start_transfers(
    app: &Arc<ApiState>,
    settings: &ImagingSettings,
    data_dir: &Path,
) -> anyhow::Result<Prefetch> {
    let limits = UploadLimits { max_file_size: settings.max_object_bytes(), ..UploadLimits::default() };
    let uploads = Arc::new(
        UploadReceiver::open(&data_dir.join("uploads"), limits)
            .context("opening the upload state; check the data directory")?,
    );
    app.imaging.transfers().watch_uploads(uploads.clone());
    app.node.set_bulk_handler(Arc::new(NodeBulkHandler::new(app.clone(), uploads)));
    Prefetch::start(app.imaging.clone(), settings, data_dir)
        .await
        .context("opening the transfer state in the data directory")
}

/// Serves the bulk protocols of one node.
pub struct NodeBulkHandler {
    source: Arc<StoreChunkSource>,
    uploads: Arc<UploadReceiver>,
    app: Arc<ApiState>,
}

impl NodeBulkHandler {
    /// Serve objects from `app.imaging`'s store and take uploads into `uploads`.
    pub fn new(app: Arc<ApiState>, uploads: Arc<UploadReceiver>) -> Self {
        let source = Arc::new(StoreChunkSource::new(app.imaging.shared_store(), DEFAULT_CACHED_LISTS));
        Self { source, uploads, app }
    }
}

impl BulkHandler for NodeBulkHandler {
    fn serve(
        &self,
        alpn: Vec<u8>,
        conn: quinn::Connection,
        peer: PeerIdentity,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let remote = conn.remote_address();
        match (alpn.as_slice(), &peer) {
            (a, PeerIdentity::Node(_)) if a == ALPN_DICOM => {
                Box::pin(serve_fetch_connection(conn, self.source.clone()))
            }
            (a, PeerIdentity::Client(name)) if a == ALPN_DICOM => {
                tracing::warn!(%remote, client = %name, "refused client on the node-to-node image protocol");
                conn.close(quinn::VarInt::from_u32(3), b"image fetch is for nodes only; clients upload");
                Box::pin(std::future::ready(()))
            }
            (a, _) if a == ALPN_UPLOAD => {
                let sink = Arc::new(UploadToCase { app: self.app.clone(), source: Some(remote.ip()) });
                Box::pin(serve_upload_connection(conn, self.uploads.clone(), sink))
            }
            _ => {
                tracing::warn!(%remote, %peer, "refused bulk connection with an unknown protocol");
                conn.close(quinn::VarInt::from_u32(3), b"unknown protocol");
                Box::pin(std::future::ready(()))
            }
        }
    }
}

/// Takes uploaded files into the ingest pipeline for the case the uploader named, as the user
/// whose token came with the upload.
struct UploadToCase {
    app: Arc<ApiState>,
    source: Option<IpAddr>,
}

impl UploadToCase {
    fn authenticate(&self, meta: &UploadMeta) -> Result<Authenticated, String> {
        let Some(token) = meta.token.as_deref() else {
            return Err("the upload carries no token; log in with `yilian login` or pass --token".into());
        };
        let state = self.app.node.state().read();
        authenticate_token(&self.app, &state.region, token, None, self.source)
            .map_err(|e| e.message().to_owned())
    }

    fn imaging(&self) -> &Imaging {
        &self.app.imaging
    }
}

impl UploadSink for UploadToCase {
    async fn admit(&self, meta: UploadMeta) -> Result<UploadMeta, String> {
        let auth = self.authenticate(&meta)?;
        let case = CaseId(meta.case_id.clone());
        authorize_case(&self.app, &auth, &case, CaseOperation::Write)
            .await
            .map_err(|e| format!("case {}: {}", case, e.message()))?;
        Ok(UploadMeta { actor: auth.user.clone(), ..meta })
    }

    async fn accept(&self, file: PathBuf, digest: Digest, meta: UploadMeta) -> Result<String, String> {
        let auth = self.authenticate(&meta)?;
        let by = Requester { actor: auth.actor.clone(), provenance: auth.provenance() };
        let target = CaseTarget::Explicit(CaseId(meta.case_id.clone()));
        // The upload receiver keeps the assembled file until the file is recorded as done, so a
        // crash before that resumes from it: the store takes a copy.
        match self.imaging().ingest_file(&file, Intake::Copy, target, &by).await {
            Ok(stored) => Ok(format!(
                "stored {} {} in study {} of case {}{}",
                stored.info.sop_class_name,
                stored.info.sop_instance_uid,
                stored.info.study_instance_uid,
                stored.case_id,
                if stored.deduplicated { " (already held)" } else { "" }
            )),
            Err(refusal) => {
                tracing::info!(%digest, reason = %refusal, "uploaded file refused");
                Err(refusal.to_string())
            }
        }
    }
}
