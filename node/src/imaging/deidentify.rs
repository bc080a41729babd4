//! De-identified copies of studies leaving their region (PS3.15 Basic Profile, UIDs replaced
//! with the region-keyed [`Deidentifier`](yilian_dicom::deid::Deidentifier)), and de-identified
//! export of single instances for teaching.
//!
//! A study read by a specialist of another region is copied by one node that holds it (the
//! lowest-numbered complete holder): every instance is de-identified, ingested as an instance of
//! the copy (recorded with `derived_from`), and the copy is committed. The same input and
//! region secret give the same bytes on every node, so a copy interrupted half-way is finished
//! by running it again.

use super::{Imaging, IngestRefusal, Requester};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use yilian_dicom::Digest;
use yilian_referral::{Actor, CaseId, Change, Command, Region};

/// De-identifications running on this node.
#[derive(Default)]
pub(super) struct Deidentifications {
    busy: Arc<Mutex<BTreeSet<String>>>,
    tasks: JoinSet<()>,
}

impl Deidentifications {
    /// Start a copy of every study this node should de-identify and is not already copying.
    pub(super) fn start_wanted(&mut self, imaging: &Arc<Imaging>) {
        while self.tasks.try_join_next().is_some() {}
        let me = imaging.node().id();
        let wanted = wanted(&imaging.node().state().read().region, me);
        for (study_uid, case) in wanted {
            if !self.busy.lock().unwrap_or_else(|p| p.into_inner()).insert(study_uid.clone()) {
                continue;
            }
            let (imaging, busy) = (imaging.clone(), self.busy.clone());
            self.tasks.spawn(async move {
                match copy_study(&imaging, &study_uid, &case).await {
                    Ok(copy) => tracing::info!(study = %study_uid, %copy, "de-identified copy recorded"),
                    Err(e) => tracing::warn!(study = %study_uid, error = %e, "de-identified copy failed; will retry"),
                }
                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&study_uid);
            });
        }
    }

    /// Stop running copies (they are finished at the next start).
    pub(super) async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Studies node `me` should copy de-identified: those the region wants, plus originals of
/// copies left uncommitted by an interruption; only when `me` is the lowest complete holder.
fn wanted(region: &Region, me: u64) -> Vec<(String, CaseId)> {
    let mut out: Vec<(String, CaseId)> =
        region.deidentify_wanted(me).into_iter().map(|w| (w.study_uid, w.case)).collect();
    for copy in region.studies().filter(|s| !s.is_committed()) {
        if let Some(original) = copy.derived_from.as_ref().and_then(|uid| region.study(uid).ok()) {
            if original.held_by(me) && !out.iter().any(|(uid, _)| *uid == original.study_uid) {
                out.push((original.study_uid.clone(), original.case.clone()));
            }
        }
    }
    out.retain(|(uid, _)| {
        region.study(uid).is_ok_and(|s| s.complete_holders().iter().next().copied() == Some(me))
    });
    out
}

/// Why a de-identified copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeidentifyError {
    /// The study or one of its objects is not available here.
    #[error("{0}")]
    Unavailable(String),
    /// De-identification itself failed.
    #[error(transparent)]
    Deid(#[from] yilian_dicom::deid::DeidError),
    /// The copy could not be stored or recorded.
    #[error(transparent)]
    Ingest(#[from] IngestRefusal),
}

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Write a de-identified Part-10 copy of the stored object `digest` to a fresh temporary file.
async fn deidentified_file(imaging: &Imaging, digest: Digest) -> Result<TempFile, DeidentifyError> {
    let src = imaging
        .store()
        .locate(&digest)
        .map_err(|_| DeidentifyError::Unavailable(format!("object {digest} is not stored on this node")))?;
    let tmp = TempFile(imaging.incoming_path());
    let (deid, dst) = (imaging.deidentifier().clone(), tmp.0.clone());
    tokio::task::spawn_blocking(move || deid.deidentify_path(&src, &dst, None))
        .await
        .map_err(|e| DeidentifyError::Unavailable(format!("de-identification stopped: {e}")))??;
    Ok(tmp)
}

/// The de-identified bytes of the stored object `digest` (export for teaching).
pub async fn deidentified_bytes(imaging: &Imaging, digest: Digest) -> Result<Vec<u8>, DeidentifyError> {
    let tmp = deidentified_file(imaging, digest).await?;
    let path: &Path = &tmp.0;
    std::fs::read(path)
        .map_err(|e| DeidentifyError::Unavailable(format!("cannot read {}: {e}", path.display())))
}

/// Copy study `study_uid` of `case` de-identified, record the copy and commit it; returns the
/// copy's Study Instance UID.
pub async fn copy_study(
    imaging: &Imaging,
    study_uid: &str,
    case: &CaseId,
) -> Result<String, DeidentifyError> {
    let digests: Vec<Digest> = {
        let state = imaging.node().state().read();
        let study = state.region.study(study_uid).map_err(|e| DeidentifyError::Unavailable(e.to_string()))?;
        study.instances.values().filter_map(|i| i.record.sha256.parse().ok()).collect()
    };
    let copy_uid = imaging.deidentifier().replacement_uid(study_uid);
    let system = Requester::from(Actor::system());
    for digest in digests {
        let tmp = deidentified_file(imaging, digest).await?;
        imaging.ingest_derived(&tmp.0, case, study_uid, &system).await?;
    }
    let commit = Command::new(Actor::system(), Change::CommitStudy { study_uid: copy_uid.clone() });
    match imaging.node().write(commit).await {
        Ok(Ok(_)) => Ok(copy_uid),
        Ok(Err(refused)) => Err(DeidentifyError::Unavailable(format!("commit refused: {refused}"))),
        Err(e) => Err(DeidentifyError::Unavailable(format!("commit not possible now: {e}"))),
    }
}
