//! The node's DIMSE listener: C-STORE instances from modalities and PACS go through the one
//! ingest pipeline (case named by the Accession Number), C-ECHO is answered.

use super::{CaseTarget, Imaging, IngestRefusal, Intake};
use crate::config::ImagingSettings;
use anyhow::Context;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yilian_dicom::dimse::{self, InstanceSink, ReceivedInstance, Refusal, ScpConfig, StoredReply};
use yilian_dicom::IngestError;
use yilian_referral::{Actor, Role};

/// Hands instances received over DIMSE to the node's ingest pipeline.
pub struct DimseSink {
    imaging: Arc<Imaging>,
}

impl InstanceSink for DimseSink {
    fn store(&self, received: ReceivedInstance) -> impl Future<Output = Result<StoredReply, Refusal>> + Send {
        let imaging = self.imaging.clone();
        async move {
            // The sending device acts through the node; the audit trail names its AE title.
            let actor = Actor {
                role: Role::System,
                id: format!("dimse:{}", received.calling_ae.trim()),
                facility: None,
            };
            let result = imaging
                .ingest_file(&received.path, Intake::Move, CaseTarget::FromAccession, &actor.into())
                .await;
            let _ = tokio::fs::remove_file(&received.path).await;
            match result {
                Ok(stored) if stored.deduplicated => {
                    Ok(StoredReply { comment: Some("already stored".into()) })
                }
                Ok(_) => Ok(StoredReply::default()),
                Err(refusal) => {
                    tracing::info!(code = refusal.code(), calling_ae = %received.calling_ae, "C-STORE refused");
                    Err(dimse_refusal(&refusal))
                }
            }
        }
    }
}

/// The C-STORE status and comment for a refusal.
fn dimse_refusal(refusal: &IngestRefusal) -> Refusal {
    let comment = refusal.to_string();
    match refusal {
        IngestRefusal::Invalid(IngestError::TooLarge { .. }) => Refusal::out_of_resources(comment),
        IngestRefusal::Invalid(IngestError::UnsupportedSopClass { .. }) => {
            Refusal::sop_class_not_supported(comment)
        }
        IngestRefusal::Invalid(
            IngestError::MissingAttribute { .. }
            | IngestError::InvalidAttribute { .. }
            | IngestError::Inconsistent { .. },
        ) => Refusal::data_set_does_not_match_sop_class(comment),
        IngestRefusal::Invalid(_) => Refusal::cannot_understand(comment),
        IngestRefusal::NoCase { .. }
        | IngestRefusal::UnknownCase { .. }
        | IngestRefusal::ManifestRefused { .. } => Refusal::not_authorized(comment),
        _ => Refusal::processing_failure(comment),
    }
}

/// Start the DIMSE listener when `[imaging] dimse_addr` is set; it stops when `shutdown` resolves.
pub async fn start(
    settings: &ImagingSettings,
    data_dir: &Path,
    imaging: Arc<Imaging>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(addr) = settings.dimse_addr.clone() else { return Ok(()) };
    let tmp_dir = data_dir.join("incoming-dimse");
    if tmp_dir.is_dir() {
        std::fs::remove_dir_all(&tmp_dir)
            .with_context(|| format!("cannot clean {} of files left by a crash", tmp_dir.display()))?;
    }
    let cfg = ScpConfig {
        ae_title: settings.ae_title.clone(),
        max_instance_bytes: settings.max_object_bytes(),
        tmp_dir,
        idle_timeout: Duration::from_secs(60),
        ..ScpConfig::default()
    };
    cfg.validate().context("imaging settings for the DIMSE listener")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on imaging.dimse_addr {addr}; is the port in use?"))?;
    tracing::info!(%addr, ae_title = %settings.ae_title, "DIMSE listener started");
    let sink = Arc::new(DimseSink { imaging });
    tokio::spawn(async move {
        if let Err(e) = dimse::serve(listener, cfg, sink, shutdown).await {
            tracing::error!(error = %e, "DIMSE listener stopped");
        }
    });
    Ok(())
}
