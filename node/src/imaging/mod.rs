//! The node's imaging service: one ingest pipeline for every way images arrive (STOW-RS now;
//! DIMSE C-STORE and QUIC upload go through [`Imaging::ingest_file`] too), the content-addressed
//! store at `<data_dir>/objects` and the instance catalog at `<data_dir>/catalog.redb`.
//!
//! Image bytes never go through Raft. The catalog holds patient-identifying attributes and stays
//! on this node; nothing here logs them.

pub mod bulk;
pub mod deidentify;
pub mod dimse;
pub mod manifest_batch;
pub mod prefetch;
mod refusal;

pub use prefetch::TransferStats;
pub use refusal::{IngestRefusal, InstanceUids};

use manifest_batch::{Lane, ManifestBatcher, ManifestFailure};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yilian_consensus::ClusterNode;
use yilian_dicom::catalog::{catalog_attributes, tag_key};
use yilian_dicom::deid::Deidentifier;
use yilian_dicom::{
    inspect_with_header, Catalog, CatalogError, CatalogRecord, Digest, IngestLimits, InstanceInfo, Store,
    StoreError, Tag,
};
use yilian_referral::{Actor, CaseId, InstanceRecord, Provenance};

/// Accession Number (0008,0050): carries the Yilian case id of an instance.
const ACCESSION_NUMBER: Tag = Tag(0x0008, 0x0050);

/// Which case an ingested instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseTarget {
    /// The case the sender named.
    Explicit(CaseId),
    /// The case named by the file's Accession Number (0008,0050).
    FromAccession,
}

/// An instance the pipeline accepted: stored, catalogued and attached to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// The case it belongs to.
    pub case_id: CaseId,
    /// What ingest learned about it (UIDs, SOP class, transfer syntax, size, SHA-256, ...).
    pub info: InstanceInfo,
    /// True when the same bytes were already stored (nothing new was written).
    pub deduplicated: bool,
}

/// Why the imaging service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The object store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The catalog could not be opened.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The incoming directory could not be prepared.
    #[error("cannot prepare {path}: {source}; check free space and permissions of the data directory")]
    Incoming {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Who asks for an ingest, as recorded in the audit trail: the actor, and where the request
/// came from (address, purpose of use) when it arrived through the API.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The actor the manifest entry is recorded as.
    pub actor: Actor,
    /// Where the request came from.
    pub provenance: Provenance,
}

impl From<Actor> for Requester {
    fn from(actor: Actor) -> Self {
        Self { actor, provenance: Provenance::default() }
    }
}

/// The node's imaging service.
pub struct Imaging {
    node: Arc<ClusterNode>,
    manifests: ManifestBatcher,
    parts: Arc<Parts>,
}

struct Parts {
    store: Arc<Store>,
    catalog: Catalog,
    incoming: PathBuf,
    next_incoming: AtomicU64,
    deidentifier: Deidentifier,
    transfers: TransferStats,
}

impl Imaging {
    /// Open the store (`<data_dir>/objects`), the catalog (`<data_dir>/catalog.redb`) and the
    /// incoming directory (`<data_dir>/incoming`, emptied of files a crash left behind).
    /// `deidentifier` is keyed by the region's secret, so every node derives the same
    /// de-identified bytes.
    pub fn open(
        node: Arc<ClusterNode>,
        data_dir: &Path,
        deidentifier: Deidentifier,
    ) -> Result<Imaging, ImagingError> {
        let store = Arc::new(Store::open(data_dir.join("objects"))?);
        let catalog = Catalog::open(data_dir.join("catalog.redb"))?;
        let incoming = data_dir.join("incoming");
        let prepare = |source| ImagingError::Incoming { path: incoming.clone(), source };
        if incoming.is_dir() {
            std::fs::remove_dir_all(&incoming).map_err(prepare)?;
        }
        std::fs::create_dir_all(&incoming).map_err(prepare)?;
        let parts = Parts {
            store,
            catalog,
            incoming,
            next_incoming: AtomicU64::new(0),
            deidentifier,
            transfers: TransferStats::default(),
        };
        Ok(Imaging { manifests: ManifestBatcher::new(node.clone()), node, parts: Arc::new(parts) })
    }

    /// The content-addressed store.
    pub fn store(&self) -> &Store {
        &self.parts.store
    }

    /// The content-addressed store, shared (for the transfer engine).
    pub fn shared_store(&self) -> Arc<Store> {
        self.parts.store.clone()
    }

    /// The instance catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.parts.catalog
    }

    /// The region-keyed de-identifier (export for teaching, copies leaving the region).
    pub fn deidentifier(&self) -> &Deidentifier {
        &self.parts.deidentifier
    }

    /// Counters of node-to-node fetches and clinic uploads, for `/metrics`.
    pub fn transfers(&self) -> &TransferStats {
        &self.parts.transfers
    }

    /// Everything `/metrics` reports of image movement: transfers, uploads and the manifest
    /// writes ingest made.
    pub fn counters(&self) -> prefetch::TransferSnapshot {
        prefetch::TransferSnapshot { manifests: self.manifests.counters(), ..self.parts.transfers.snapshot() }
    }

    /// The cluster member this service records manifests through.
    pub fn node(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    /// Catalogue an object this node fetched from another node for `case`: check it is in the
    /// store and hashes to `digest`, inspect it and add it to the catalog. Returns its SOP
    /// Instance UID.
    pub async fn catalogue_copy(&self, case: &CaseId, digest: Digest) -> Result<String, IngestRefusal> {
        let parts = self.parts.clone();
        let case = case.clone();
        blocking(move || {
            let path = parts.store.locate(&digest).map_err(IngestRefusal::from)?;
            let (info, attributes) = inspect_for_catalog(&path)?;
            if info.sha256 != digest {
                return Err(IngestRefusal::Interrupted {
                    reason: format!("stored object {digest} hashes differently; it will be fetched again"),
                });
            }
            let sop = info.sop_instance_uid.clone();
            let record = catalog_record(&info, &case, attributes);
            parts.catalog.put(&record)?;
            Ok(sop)
        })
        .await
    }

    /// Ingest a de-identified copy of an instance of study `derived_from` for `case`, recorded
    /// in the copy's manifest as derived from it.
    pub async fn ingest_derived(
        &self,
        tmp: &Path,
        case: &CaseId,
        derived_from: &str,
        by: &Requester,
    ) -> Result<StoredInstance, IngestRefusal> {
        self.ingest(tmp, Intake::Copy, CaseTarget::Explicit(case.clone()), None, Some(derived_from), by).await
    }

    /// A fresh path in the incoming directory for a file being received (same file system as
    /// the store). The caller creates it, passes it to [`Imaging::ingest_file`] and removes it.
    pub fn incoming_path(&self) -> PathBuf {
        let n = self.parts.next_incoming.fetch_add(1, Ordering::Relaxed);
        self.parts.incoming.join(format!("in-{}-{n}.dcm", std::process::id()))
    }

    /// The stored file of a catalogued instance.
    pub fn path_of(&self, record: &CatalogRecord) -> Result<PathBuf, CatalogError> {
        Ok(self.parts.store.path_of(&record.digest()?))
    }

    /// The one ingest pipeline: validate the file at `tmp` ([`inspect_with_header`]), resolve
    /// its case, store it (deduplicated; copied or moved in as `intake` says), record it in the
    /// study's replicated manifest as `by`, and only then catalogue it.
    pub async fn ingest_file(
        &self,
        tmp: &Path,
        intake: Intake,
        target: CaseTarget,
        by: &Requester,
    ) -> Result<StoredInstance, IngestRefusal> {
        self.ingest_file_in_study(tmp, intake, target, None, by).await
    }

    /// [`Imaging::ingest_file`] for a request addressed to one study: an instance of another
    /// study is refused.
    pub async fn ingest_file_in_study(
        &self,
        tmp: &Path,
        intake: Intake,
        target: CaseTarget,
        study: Option<&str>,
        by: &Requester,
    ) -> Result<StoredInstance, IngestRefusal> {
        self.ingest(tmp, intake, target, study, None, by).await
    }

    async fn ingest(
        &self,
        tmp: &Path,
        intake: Intake,
        target: CaseTarget,
        study: Option<&str>,
        derived_from: Option<&str>,
        by: &Requester,
    ) -> Result<StoredInstance, IngestRefusal> {
        let node = self.node.clone();
        let parts = self.parts.clone();
        let path = tmp.to_owned();
        let study = study.map(str::to_owned);
        let started = Instant::now();
        let (stored, record) =
            blocking(move || prepare_blocking(&node, &parts, &path, intake, target, study.as_deref()))
                .await?;
        let prepared = Instant::now();
        self.record_in_manifest(&stored, derived_from, by).await?;
        let recorded = Instant::now();
        let parts = self.parts.clone();
        blocking(move || parts.catalog.put(&record).map_err(IngestRefusal::from)).await?;
        tracing::debug!(
            store_ms = ms(prepared - started),
            manifest_ms = ms(recorded - prepared),
            catalog_ms = ms(recorded.elapsed()),
            "instance ingest timings"
        );
        tracing::info!(
            case = %stored.case_id,
            sop_class = stored.info.sop_class_name,
            sha256 = %stored.info.sha256,
            size = stored.info.size,
            deduplicated = stored.deduplicated,
            "instance ingested"
        );
        Ok(stored)
    }

    async fn record_in_manifest(
        &self,
        stored: &StoredInstance,
        derived_from: Option<&str>,
        by: &Requester,
    ) -> Result<(), IngestRefusal> {
        let info = &stored.info;
        let lane = Lane {
            case: stored.case_id.clone(),
            study_uid: info.study_instance_uid.clone(),
            derived_from: derived_from.map(str::to_owned),
            actor: by.actor.clone(),
            provenance: by.provenance.clone(),
        };
        let record = InstanceRecord {
            sop_instance_uid: info.sop_instance_uid.clone(),
            series_uid: info.series_instance_uid.clone(),
            sop_class_uid: info.sop_class_uid.clone(),
            transfer_syntax: info.transfer_syntax_uid.clone(),
            size: info.size,
            sha256: info.sha256.to_hex(),
        };
        match self.manifests.record(lane, record).await {
            Ok(()) => Ok(()),
            Err(ManifestFailure::Refused(reason)) => Err(IngestRefusal::ManifestRefused {
                reason,
                uids: InstanceUids {
                    sop_class_uid: info.sop_class_uid.clone(),
                    sop_instance_uid: info.sop_instance_uid.clone(),
                    study_instance_uid: info.study_instance_uid.clone(),
                },
            }),
            Err(ManifestFailure::Unavailable(reason)) => Err(IngestRefusal::ManifestUnavailable { reason }),
        }
    }
}

/// What ingest does with the file it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// The caller keeps the file (an upload that may resume from it, a copy it still needs):
    /// the store takes a copy and the file is left in place.
    Copy,
    /// The caller hands the file over (a received temp file it would delete next): the store
    /// moves it in without writing it again; the file may be gone afterwards.
    Move,
}

/// A duration in milliseconds, for timing logs.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IngestRefusal> + Send + 'static,
) -> Result<T, IngestRefusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IngestRefusal::Interrupted { reason: e.to_string() })?
}

/// Validate, resolve the case and store; the catalog record is returned for after the manifest.
fn prepare_blocking(
    node: &ClusterNode,
    parts: &Parts,
    tmp: &Path,
    intake: Intake,
    target: CaseTarget,
    study: Option<&str>,
) -> Result<(StoredInstance, CatalogRecord), IngestRefusal> {
    let (info, attributes) = inspect_for_catalog(tmp)?;
    let uids = InstanceUids {
        sop_class_uid: info.sop_class_uid.clone(),
        sop_instance_uid: info.sop_instance_uid.clone(),
        study_instance_uid: info.study_instance_uid.clone(),
    };
    if let Some(expected) = study {
        if expected != info.study_instance_uid {
            return Err(IngestRefusal::WrongStudy {
                expected: expected.to_owned(),
                found: info.study_instance_uid.clone(),
                uids,
            });
        }
    }
    let case_id = match target {
        CaseTarget::Explicit(id) => id,
        CaseTarget::FromAccession => match attributes.get(&tag_key(ACCESSION_NUMBER)) {
            Some(accession) => CaseId(accession.clone()),
            None => return Err(IngestRefusal::NoCase { uids }),
        },
    };
    if node.state().read().region.case(&case_id).is_err() {
        return Err(IngestRefusal::UnknownCase { case_id: case_id.0, uids });
    }
    let put = match intake {
        Intake::Move => parts.store.adopt_file(tmp, &info.sha256, info.size)?,
        Intake::Copy => {
            let put = parts.store.put_file(tmp)?;
            if put.digest != info.sha256 {
                return Err(IngestRefusal::Interrupted {
                    reason: "the file changed while it was being ingested".into(),
                });
            }
            put
        }
    };
    let record = catalog_record(&info, &case_id, attributes);
    Ok((StoredInstance { case_id, info, deduplicated: put.deduplicated }, record))
}

/// Validate the file at `path` and read its catalog attributes, parsing it once.
fn inspect_for_catalog(path: &Path) -> Result<(InstanceInfo, BTreeMap<u32, String>), IngestRefusal> {
    let (info, header) = inspect_with_header(path, &IngestLimits::default())?;
    Ok((info, catalog_attributes(&header)))
}

/// The catalog record of an inspected, stored instance of `case`.
fn catalog_record(info: &InstanceInfo, case: &CaseId, attributes: BTreeMap<u32, String>) -> CatalogRecord {
    CatalogRecord {
        study_instance_uid: info.study_instance_uid.clone(),
        series_instance_uid: info.series_instance_uid.clone(),
        sop_instance_uid: info.sop_instance_uid.clone(),
        sop_class_uid: info.sop_class_uid.clone(),
        transfer_syntax_uid: info.transfer_syntax_uid.clone(),
        sha256: info.sha256.to_hex(),
        size: info.size,
        case_id: case.0.clone(),
        frames: info.frames,
        pixel_data: info.pixel_data.clone(),
        attributes,
    }
}
