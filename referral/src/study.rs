//! Study manifests: what imaging a case carries and which nodes hold verified copies.
//!
//! Image bytes never go through Raft. The manifest does: every instance's UIDs, SOP class,
//! transfer syntax, size and SHA-256, and the set of nodes that hold a copy whose hash they
//! verified. A study is *committed* when its sender says it is complete.

use crate::case::CaseId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Whether `uid` is a DICOM UID as PS3.5 9.1 allows it: at most 64 characters, components of
/// digits separated by dots, none empty (leading zeros are tolerated: they occur in the wild).
pub fn is_dicom_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// A cluster node, as numbered by Raft.
pub type HolderNode = u64;

/// One instance of a study as the sender described it (without its holders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer Syntax UID of the stored file.
    pub transfer_syntax: String,
    /// Size of the stored Part-10 file in bytes.
    pub size: u64,
    /// SHA-256 of the stored file, 64 lowercase hex digits.
    pub sha256: String,
}

/// One instance in a manifest, with the nodes holding a verified copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInstance {
    /// What the sender described.
    pub record: InstanceRecord,
    /// Nodes holding a copy whose SHA-256 they verified.
    pub holders: BTreeSet<HolderNode>,
}

/// A study attached to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyManifest {
    /// Study Instance UID.
    pub study_uid: String,
    /// The case the study belongs to.
    pub case: CaseId,
    /// The region of the case (a copy leaving it must be de-identified).
    pub region: String,
    /// Instances by SOP Instance UID.
    pub instances: BTreeMap<String, ManifestInstance>,
    /// When the sender declared the study complete, if it has.
    pub committed_at_ms: Option<u64>,
    /// When the first instance was recorded.
    pub created_at_ms: u64,
    /// For a de-identified copy: the Study Instance UID it was made from.
    pub derived_from: Option<String>,
}

impl StudyManifest {
    /// Whether the sender declared the study complete.
    pub fn is_committed(&self) -> bool {
        self.committed_at_ms.is_some()
    }

    /// Whether this is a de-identified copy of another study.
    pub fn is_deidentified(&self) -> bool {
        self.derived_from.is_some()
    }

    /// Total bytes of all instances.
    pub fn total_bytes(&self) -> u64 {
        self.instances.values().map(|i| i.record.size).sum()
    }

    /// Whether `node` holds a verified copy of every instance.
    pub fn held_by(&self, node: HolderNode) -> bool {
        !self.instances.is_empty() && self.instances.values().all(|i| i.holders.contains(&node))
    }

    /// Instances `node` does not hold yet.
    pub fn missing_at(&self, node: HolderNode) -> impl Iterator<Item = &ManifestInstance> {
        self.instances.values().filter(move |i| !i.holders.contains(&node))
    }

    /// Nodes holding a verified copy of every instance.
    pub fn complete_holders(&self) -> BTreeSet<HolderNode> {
        let mut iter = self.instances.values();
        let Some(first) = iter.next() else { return BTreeSet::new() };
        iter.fold(first.holders.clone(), |acc, i| acc.intersection(&i.holders).copied().collect())
    }
}

/// Instances a node stored for a case's study (after validating and hashing them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceBatch {
    /// The case the study belongs to.
    pub case: CaseId,
    /// Study Instance UID.
    pub study_uid: String,
    /// The node that stored them (and so holds a verified copy).
    pub node: HolderNode,
    /// The instances.
    pub instances: Vec<InstanceRecord>,
    /// For a de-identified copy: the study it was made from.
    pub derived_from: Option<String>,
}
