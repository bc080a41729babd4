//! Study manifests: recording stored instances, committing a study, and recording verified copies.

use super::registry::is_staff_of;
use super::{validate_id, AuditRecord, Region};
use crate::actor::{Actor, Role};
use crate::audit::AuditAction;
use crate::case::{Case, CaseId};
use crate::command::Outcome;
use crate::error::DomainError;
use crate::status::TaskStatus;
use crate::study::{HolderNode, InstanceBatch, InstanceRecord, ManifestInstance, StudyManifest};
use std::collections::BTreeSet;

/// Most instances recorded by one command.
pub const MAX_INSTANCES_PER_BATCH: usize = 10_000;
/// Most instances in one study.
pub const MAX_INSTANCES_PER_STUDY: usize = 100_000;

impl Region {
    /// Look up a study manifest.
    pub fn study(&self, study_uid: &str) -> Result<&StudyManifest, DomainError> {
        self.studies.get(study_uid).ok_or_else(|| DomainError::not_found("study", study_uid))
    }

    /// All study manifests, by Study Instance UID.
    pub fn studies(&self) -> impl Iterator<Item = &StudyManifest> {
        self.studies.values()
    }

    /// The studies attached to a case.
    pub fn studies_of(&self, case: &CaseId) -> impl Iterator<Item = &StudyManifest> {
        self.case_studies.get(case).into_iter().flatten().filter_map(|uid| self.studies.get(uid))
    }

    pub(super) fn put_study(&mut self, study: StudyManifest) {
        self.touched.push(super::EntityKey::Study(study.study_uid.clone()));
        self.index_study(&study);
        self.studies.insert(study.study_uid.clone(), study);
    }

    pub(super) fn index_study(&mut self, study: &StudyManifest) {
        self.case_studies.entry(study.case.clone()).or_default().insert(study.study_uid.clone());
    }

    pub(super) fn record_instances(
        &mut self,
        now: u64,
        actor: &Actor,
        batch: &InstanceBatch,
    ) -> Result<Outcome, DomainError> {
        validate_uid("study_uid", &batch.study_uid)?;
        if batch.instances.is_empty() || batch.instances.len() > MAX_INSTANCES_PER_BATCH {
            return Err(DomainError::invalid(
                "instances",
                format!("give 1 to {MAX_INSTANCES_PER_BATCH} instances per batch"),
            ));
        }
        for record in &batch.instances {
            validate_record(record)?;
        }
        if let Some(source) = &batch.derived_from {
            validate_uid("derived_from", source)?;
            let original = self.study(source)?;
            if original.case != batch.case {
                return Err(DomainError::invalid(
                    "derived_from",
                    format!("study `{source}` belongs to case `{}`, not `{}`", original.case, batch.case),
                ));
            }
        }
        let case = self.case(&batch.case)?.clone();
        may_add_images(actor, &case)?;
        if matches!(case.status, TaskStatus::Cancelled | TaskStatus::EnteredInError) {
            return Err(DomainError::not_allowed(
                "images-need-live-case",
                format!("case `{}` is {}; images cannot be attached to it", case.id, case.status),
            ));
        }
        let region = self.facility(&case.origin)?.region.clone();
        let mut study = match self.studies.get(&batch.study_uid) {
            Some(existing) if existing.case != batch.case => {
                return Err(DomainError::not_allowed(
                    "study-belongs-to-one-case",
                    format!(
                        "study `{}` is already attached to case `{}`; send it with that case's id",
                        batch.study_uid, existing.case
                    ),
                ))
            }
            Some(existing) => existing.clone(),
            None => StudyManifest {
                study_uid: batch.study_uid.clone(),
                case: batch.case.clone(),
                region,
                instances: Default::default(),
                committed_at_ms: None,
                created_at_ms: now,
                derived_from: batch.derived_from.clone(),
            },
        };
        let mut added = 0usize;
        let committed = study.is_committed();
        for record in &batch.instances {
            match study.instances.get_mut(&record.sop_instance_uid) {
                Some(known) if known.record == *record => {
                    known.holders.insert(batch.node);
                }
                Some(known) => {
                    return Err(DomainError::not_allowed(
                        "instance-content-fixed",
                        format!(
                        "instance `{}` is already recorded with SHA-256 {}…; a changed object needs a new \
                             SOP Instance UID",
                        record.sop_instance_uid,
                        &known.record.sha256[..12]
                    ),
                    ))
                }
                None if committed => {
                    return Err(DomainError::not_allowed(
                        "committed-study-is-closed",
                        format!(
                            "study `{}` was committed as complete; send new images as a new study",
                            study.study_uid
                        ),
                    ))
                }
                None => {
                    added += 1;
                    study.instances.insert(
                        record.sop_instance_uid.clone(),
                        ManifestInstance { record: record.clone(), holders: BTreeSet::from([batch.node]) },
                    );
                }
            }
        }
        if study.instances.len() > MAX_INSTANCES_PER_STUDY {
            return Err(DomainError::invalid(
                "instances",
                format!("a study holds at most {MAX_INSTANCES_PER_STUDY} instances"),
            ));
        }
        let detail =
            format!("{added} new instance(s), {} sent, stored at node {}", batch.instances.len(), batch.node);
        self.audit(
            now,
            actor,
            AuditRecord::new("study.record", AuditAction::C)
                .for_case(&case)
                .object(&batch.study_uid)
                .detail(Some(detail)),
        );
        Ok(self.finish_study(study))
    }

    pub(super) fn commit_study(
        &mut self,
        now: u64,
        actor: &Actor,
        study_uid: &str,
    ) -> Result<Outcome, DomainError> {
        let mut study = self.study(study_uid)?.clone();
        let case = self.case(&study.case)?.clone();
        may_add_images(actor, &case)?;
        if study.is_committed() {
            return Ok(self.study_outcome(&study));
        }
        study.committed_at_ms = Some(now);
        let detail = format!("{} instance(s), {} bytes", study.instances.len(), study.total_bytes());
        self.audit(
            now,
            actor,
            AuditRecord::new("study.commit", AuditAction::U)
                .for_case(&case)
                .object(study_uid)
                .detail(Some(detail)),
        );
        Ok(self.finish_study(study))
    }

    pub(super) fn hold_study_copy(
        &mut self,
        now: u64,
        actor: &Actor,
        study_uid: &str,
        node: HolderNode,
        instances: &[String],
    ) -> Result<Outcome, DomainError> {
        if actor.role != Role::System {
            return Err(DomainError::not_allowed(
                "nodes-record-copies",
                "only a node that verified its copy may record it".to_owned(),
            ));
        }
        let mut study = self.study(study_uid)?.clone();
        let case = self.case(&study.case)?.clone();
        let mut added = 0usize;
        for uid in instances {
            let entry =
                study.instances.get_mut(uid).ok_or_else(|| DomainError::not_found("instance", uid))?;
            added += usize::from(entry.holders.insert(node));
        }
        if added == 0 {
            return Ok(self.study_outcome(&study));
        }
        let detail = format!("node {node} verified {added} instance(s)");
        self.audit(
            now,
            actor,
            AuditRecord::new("study.copy", AuditAction::E)
                .for_case(&case)
                .object(study_uid)
                .detail(Some(detail)),
        );
        Ok(self.finish_study(study))
    }

    fn finish_study(&mut self, study: StudyManifest) -> Outcome {
        let outcome = self.study_outcome(&study);
        self.put_study(study);
        outcome
    }

    fn study_outcome(&self, study: &StudyManifest) -> Outcome {
        Outcome::Study {
            study_uid: study.study_uid.clone(),
            case_id: study.case.clone(),
            instances: study.instances.len(),
            committed: study.is_committed(),
            holders: study.complete_holders(),
        }
    }
}

/// Who may attach images to a case or commit them: the requesting facility's staff, ops, the
/// reader who owns the case, and nodes acting for a DIMSE sender.
fn may_add_images(actor: &Actor, case: &Case) -> Result<(), DomainError> {
    let allowed = matches!(actor.role, Role::Ops | Role::System)
        || is_staff_of(actor, &case.origin)
        || is_staff_of(actor, &case.exam_facility)
        || (actor.role == Role::Specialist && case.owner.as_ref().is_some_and(|o| o.0 == actor.id));
    if allowed {
        Ok(())
    } else {
        Err(DomainError::not_allowed(
            "images-from-case-parties",
            format!(
                "only staff of `{}` or `{}`, the case's reader, or ops may attach images to case `{}`",
                case.origin, case.exam_facility, case.id
            ),
        ))
    }
}

fn validate_record(r: &InstanceRecord) -> Result<(), DomainError> {
    validate_uid("sop_instance_uid", &r.sop_instance_uid)?;
    validate_uid("series_uid", &r.series_uid)?;
    validate_uid("sop_class_uid", &r.sop_class_uid)?;
    validate_uid("transfer_syntax", &r.transfer_syntax)?;
    if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(DomainError::invalid("sha256", "must be 64 lowercase hex digits"));
    }
    if r.size == 0 {
        return Err(DomainError::invalid("size", "must be greater than 0"));
    }
    Ok(())
}

/// A DICOM UID ([`crate::study::is_dicom_uid`]).
fn validate_uid(field: &str, uid: &str) -> Result<(), DomainError> {
    validate_id(field, uid)?;
    if !crate::study::is_dicom_uid(uid) {
        return Err(DomainError::invalid(
            field,
            format!("`{uid}` is not a DICOM UID (digits and dots, at most 64)"),
        ));
    }
    Ok(())
}

/// A study a node should fetch because one of its readers has the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchWant {
    /// The study to fetch (a de-identified copy when the case is from another region).
    pub study_uid: String,
    /// The case, for logs.
    pub case: CaseId,
    /// The case's priority: higher is fetched first.
    pub priority: crate::priority::Priority,
    /// Instances missing here: (SOP Instance UID, SHA-256 hex, size, nodes holding it).
    pub missing: Vec<(String, String, u64, BTreeSet<HolderNode>)>,
}

/// A study that must be de-identified before it can leave its region for a reader elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeidentifyWant {
    /// The original study.
    pub study_uid: String,
    /// The case.
    pub case: CaseId,
}

impl Region {
    /// The region a set of facilities belongs to (the first one registered), if any.
    pub fn region_of(&self, facilities: &[crate::facility::FacilityId]) -> Option<String> {
        facilities.iter().find_map(|f| self.facilities.get(f)).map(|f| f.region.clone())
    }

    /// Open cases offered to or owned by a reader at one of `facilities` (from the index of each
    /// reader's open cases, without scanning every case).
    fn cases_read_at<'a>(
        &'a self,
        facilities: &'a [crate::facility::FacilityId],
    ) -> impl Iterator<Item = &'a Case> + 'a {
        self.specialists
            .values()
            .filter(move |s| facilities.contains(&s.facility))
            .flat_map(move |s| self.index.open_cases_of(&s.id))
            .filter_map(move |id| self.cases.get(id))
    }

    /// What node `node`, serving readers at `facilities`, should prefetch: every study of a
    /// case offered to or owned by one of its readers that it does not fully hold, most urgent
    /// first. A case from another region is read from its de-identified copy only.
    pub fn prefetch_wanted(
        &self,
        node: HolderNode,
        facilities: &[crate::facility::FacilityId],
    ) -> Vec<PrefetchWant> {
        let home = self.region_of(facilities);
        let mut wants: Vec<PrefetchWant> = Vec::new();
        for case in self.cases_read_at(facilities) {
            for study in self.studies_of(&case.id) {
                let foreign = home.as_deref().is_some_and(|h| h != study.region);
                if study.is_deidentified() != foreign || study.held_by(node) {
                    continue;
                }
                let missing: Vec<_> = study
                    .missing_at(node)
                    .map(|i| {
                        (
                            i.record.sop_instance_uid.clone(),
                            i.record.sha256.clone(),
                            i.record.size,
                            i.holders.clone(),
                        )
                    })
                    .collect();
                if !missing.is_empty() {
                    wants.push(PrefetchWant {
                        study_uid: study.study_uid.clone(),
                        case: case.id.clone(),
                        priority: case.priority,
                        missing,
                    });
                }
            }
        }
        wants.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.case.cmp(&b.case)));
        wants
    }

    /// Studies node `node` holds that readers outside their region have, with no de-identified
    /// copy recorded yet: the node should make one.
    pub fn deidentify_wanted(&self, node: HolderNode) -> Vec<DeidentifyWant> {
        let mut out = Vec::new();
        for study in
            self.studies.values().filter(|s| !s.is_deidentified() && s.is_committed() && s.held_by(node))
        {
            let Ok(case) = self.case(&study.case) else { continue };
            let reader_region = case
                .owner
                .as_ref()
                .and_then(|o| self.specialists.get(o))
                .and_then(|s| self.facilities.get(&s.facility))
                .map(|f| f.region.as_str());
            let has_copy =
                self.studies_of(&case.id).any(|s| s.derived_from.as_deref() == Some(&study.study_uid));
            if case.is_open() && reader_region.is_some_and(|r| r != study.region) && !has_copy {
                out.push(DeidentifyWant { study_uid: study.study_uid.clone(), case: case.id.clone() });
            }
        }
        out
    }
}
