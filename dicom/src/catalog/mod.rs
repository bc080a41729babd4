//! The node-local catalog of stored instances (redb file `catalog.redb`).
//!
//! One record per SOP instance: its UIDs, SOP class, transfer syntax, the SHA-256 and size of
//! the stored file, the Yilian case it belongs to, where its pixel data lies in the file, and the
//! attributes QIDO-RS matches on ([`CATALOG_TAGS`]). Records are keyed by
//! `study/series/instance`, so a study's or a series' instances are one range read; an index
//! finds an instance by its SOP Instance UID alone.
//!
//! The catalog holds patient-identifying attributes and stays on this node: it is never
//! replicated, and nothing here logs attribute values.

mod attributes;

pub use attributes::{
    catalog_attributes, catalog_tag, read_header, tag_key, CatalogTag, Level, CATALOG_TAGS,
};

use crate::digest::Digest;
use crate::error::CatalogError;
use crate::pixel_location::PixelLocation;
use dicom_core::Tag;
use redb::{Database, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use yilian_referral::codec;

/// `study/series/instance` → encoded [`CatalogRecord`].
const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
/// SOP Instance UID → `study/series/instance`.
const BY_INSTANCE: TableDefinition<&str, &str> = TableDefinition::new("by_instance");

/// What the catalog knows about one stored instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer syntax the file is stored in.
    pub transfer_syntax_uid: String,
    /// SHA-256 of the stored file (its name in the content-addressed store), as 64 hex digits.
    pub sha256: String,
    /// Size of the stored file in bytes.
    pub size: u64,
    /// The Yilian case the instance belongs to.
    pub case_id: String,
    /// Number of frames (0 for instances without pixels).
    pub frames: u32,
    /// Where the pixel data lies in the stored file.
    pub pixel_data: Option<PixelLocation>,
    /// The [`CATALOG_TAGS`] attributes present, by [`tag_key`], as text.
    pub attributes: BTreeMap<u32, String>,
}

impl CatalogRecord {
    /// The stored file's digest.
    pub fn digest(&self) -> Result<Digest, CatalogError> {
        self.sha256
            .parse()
            .map_err(|_| CatalogError::Corrupt { reason: "a record holds a bad digest".into() })
    }

    /// The text value of a catalog attribute, if present.
    pub fn attribute(&self, tag: Tag) -> Option<&str> {
        self.attributes.get(&tag_key(tag)).map(String::as_str)
    }

    /// A catalog attribute read as an unsigned integer (first value), if present and numeric.
    pub fn number(&self, tag: Tag) -> Option<u32> {
        self.attribute(tag).and_then(|v| v.split('\\').next()).and_then(|v| v.trim().parse().ok())
    }

    fn key(&self) -> String {
        record_key(&self.study_instance_uid, &self.series_instance_uid, &self.sop_instance_uid)
    }
}

fn record_key(study: &str, series: &str, instance: &str) -> String {
    format!("{study}/{series}/{instance}")
}

/// The node-local instance catalog.
pub struct Catalog {
    db: Database,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

impl Catalog {
    /// Open (creating if needed) the catalog database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref();
        let db = Database::create(path)
            .map_err(|e| CatalogError::Open { path: path.to_owned(), reason: e.to_string() })?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(INSTANCES).map_err(db_err)?;
        tx.open_table(BY_INSTANCE).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Catalog { db })
    }

    /// Record an instance, replacing an earlier record of the same SOP Instance UID.
    pub fn put(&self, record: &CatalogRecord) -> Result<(), CatalogError> {
        let bytes = codec::encode(record).map_err(|e| CatalogError::Corrupt { reason: e.to_string() })?;
        let key = record.key();
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut index = tx.open_table(BY_INSTANCE).map_err(db_err)?;
            let mut instances = tx.open_table(INSTANCES).map_err(db_err)?;
            let previous = index.insert(record.sop_instance_uid.as_str(), key.as_str()).map_err(db_err)?;
            if let Some(previous) = previous {
                let previous = previous.value().to_owned();
                if previous != key {
                    instances.remove(previous.as_str()).map_err(db_err)?;
                }
            }
            instances.insert(key.as_str(), bytes.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// The record of the instance with this SOP Instance UID.
    pub fn instance(&self, sop_instance_uid: &str) -> Result<Option<CatalogRecord>, CatalogError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let index = tx.open_table(BY_INSTANCE).map_err(db_err)?;
        let Some(key) = index.get(sop_instance_uid).map_err(db_err)? else { return Ok(None) };
        let instances = tx.open_table(INSTANCES).map_err(db_err)?;
        let found = instances.get(key.value()).map_err(db_err)?;
        found.map(|v| decode(v.value())).transpose()
    }

    /// Every instance of a study, in key order.
    pub fn study(&self, study_instance_uid: &str) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.prefixed(&format!("{study_instance_uid}/"))
    }

    /// Every instance of a series of a study, in key order.
    pub fn series(
        &self,
        study_instance_uid: &str,
        series_instance_uid: &str,
    ) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.prefixed(&format!("{study_instance_uid}/{series_instance_uid}/"))
    }

    /// Every instance in the catalog, in key order (grouped by study, then series).
    pub fn all(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.prefixed("")
    }

    /// Number of instances in the catalog.
    pub fn len(&self) -> Result<u64, CatalogError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let instances = tx.open_table(INSTANCES).map_err(db_err)?;
        instances.len().map_err(db_err)
    }

    /// Whether the catalog holds no instance.
    pub fn is_empty(&self) -> Result<bool, CatalogError> {
        Ok(self.len()? == 0)
    }

    fn prefixed(&self, prefix: &str) -> Result<Vec<CatalogRecord>, CatalogError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let instances = tx.open_table(INSTANCES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in instances.range(prefix..).map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push(decode(value.value())?);
        }
        Ok(out)
    }
}

fn decode(bytes: &[u8]) -> Result<CatalogRecord, CatalogError> {
    codec::decode(bytes).map_err(|e| CatalogError::Corrupt { reason: e.to_string() })
}

fn db_err(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Database { reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(study: &str, series: &str, sop: &str) -> CatalogRecord {
        CatalogRecord {
            study_instance_uid: study.into(),
            series_instance_uid: series.into(),
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            sha256: Digest::of_bytes(sop.as_bytes()).to_hex(),
            size: 10,
            case_id: "C00000001".into(),
            frames: 1,
            pixel_data: Some(PixelLocation::Native { offset: 100, length: 8 }),
            attributes: BTreeMap::from([(tag_key(Tag(0x0008, 0x0060)), "CT".into())]),
        }
    }

    #[test]
    fn records_are_found_by_study_series_and_instance_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.redb");
        {
            let catalog = Catalog::open(&path).unwrap();
            catalog.put(&record("1.1", "1.1.1", "1.1.1.1")).unwrap();
            catalog.put(&record("1.1", "1.1.1", "1.1.1.2")).unwrap();
            catalog.put(&record("1.1", "1.1.2", "1.1.2.1")).unwrap();
            catalog.put(&record("1.10", "1.10.1", "1.10.1.1")).unwrap();
            catalog.put(&record("1.1", "1.1.1", "1.1.1.1")).unwrap();
        }
        let catalog = Catalog::open(&path).unwrap();
        assert_eq!(catalog.len().unwrap(), 4);
        assert_eq!(catalog.study("1.1").unwrap().len(), 3);
        assert_eq!(catalog.series("1.1", "1.1.1").unwrap().len(), 2);
        assert_eq!(catalog.study("1.10").unwrap().len(), 1);
        let found = catalog.instance("1.1.2.1").unwrap().unwrap();
        assert_eq!(found, record("1.1", "1.1.2", "1.1.2.1"));
        assert_eq!(found.attribute(Tag(0x0008, 0x0060)), Some("CT"));
        assert!(catalog.instance("9.9").unwrap().is_none());
        assert_eq!(catalog.all().unwrap().len(), 4);
    }
}
