//! Indexes derived from the cases: rebuilt on load, never persisted, kept in step by `put_case`.

use crate::case::{Case, CaseId};
use crate::patient::PatientKey;
use crate::specialist::SpecialistId;
use std::collections::{BTreeMap, BTreeSet};

/// Lookups the router and the leader's timer need without scanning every case.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Indexes {
    deadlines: BTreeSet<(u64, CaseId)>,
    open_by_owner: BTreeMap<SpecialistId, BTreeSet<CaseId>>,
    open_by_patient: BTreeMap<PatientKey, BTreeSet<CaseId>>,
    unrouted: BTreeSet<CaseId>,
}

impl Indexes {
    pub(super) fn insert_case(&mut self, case: &Case) {
        if !case.is_open() {
            return;
        }
        if let Some(t) = case.next_deadline() {
            self.deadlines.insert((t, case.id.clone()));
        }
        if let Some(owner) = &case.owner {
            self.open_by_owner.entry(owner.clone()).or_default().insert(case.id.clone());
        }
        self.open_by_patient.entry(case.patient.clone()).or_default().insert(case.id.clone());
        if case.is_unrouted() {
            self.unrouted.insert(case.id.clone());
        }
    }

    pub(super) fn remove_case(&mut self, case: &Case) {
        if !case.is_open() {
            return;
        }
        if let Some(t) = case.next_deadline() {
            self.deadlines.remove(&(t, case.id.clone()));
        }
        if let Some(owner) = &case.owner {
            remove_from(&mut self.open_by_owner, owner, &case.id);
        }
        remove_from(&mut self.open_by_patient, &case.patient, &case.id);
        self.unrouted.remove(&case.id);
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Cases with a deadline at or before `now`, earliest first.
    pub(super) fn due(&self, now: u64) -> Vec<CaseId> {
        self.deadlines.iter().take_while(|(t, _)| *t <= now).map(|(_, id)| id.clone()).collect()
    }

    pub(super) fn open_cases_of(&self, specialist: &SpecialistId) -> impl Iterator<Item = &CaseId> {
        self.open_by_owner.get(specialist).into_iter().flatten()
    }

    pub(super) fn open_cases_of_patient(&self, patient: &PatientKey) -> impl Iterator<Item = &CaseId> {
        self.open_by_patient.get(patient).into_iter().flatten()
    }

    pub(super) fn unrouted(&self) -> Vec<CaseId> {
        self.unrouted.iter().cloned().collect()
    }
}

fn remove_from<K: Ord>(map: &mut BTreeMap<K, BTreeSet<CaseId>>, key: &K, id: &CaseId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
