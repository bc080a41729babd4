//! Indexes derived from the cases: rebuilt on load, never persisted, kept in step by `put_case`.

use crate::case::{Case, CaseId};
use crate::patient::PatientKey;
use crate::priority::Priority;
use crate::specialist::SpecialistId;
use std::collections::{BTreeMap, BTreeSet};

/// Lookups the router and the leader's timer need without scanning every case.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Indexes {
    deadlines: BTreeSet<(u64, CaseId)>,
    open_by_owner: BTreeMap<SpecialistId, BTreeSet<CaseId>>,
    load_by_owner: BTreeMap<SpecialistId, Load>,
    /// A patient's open cases that have an owner, by owner.
    owned_by_patient: BTreeMap<PatientKey, BTreeMap<SpecialistId, BTreeSet<CaseId>>>,
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
            if self.open_by_owner.entry(owner.clone()).or_default().insert(case.id.clone()) {
                self.load_by_owner.entry(owner.clone()).or_default().add(case);
            }
            let owners = self.owned_by_patient.entry(case.patient.clone()).or_default();
            owners.entry(owner.clone()).or_default().insert(case.id.clone());
        }
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
            if remove_from(&mut self.open_by_owner, owner, &case.id) {
                if let Some(load) = self.load_by_owner.get_mut(owner) {
                    load.remove(case);
                    if load.open == 0 {
                        self.load_by_owner.remove(owner);
                    }
                }
            }
            if let Some(owners) = self.owned_by_patient.get_mut(&case.patient) {
                remove_from(owners, owner, &case.id);
                if owners.is_empty() {
                    self.owned_by_patient.remove(&case.patient);
                }
            }
        }
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

    /// The summed load of the open cases `specialist` owns (kept up to date as cases change, so
    /// routing does not rescan a reader's cases for every decision).
    pub(super) fn load_of(&self, specialist: &SpecialistId) -> Load {
        self.load_by_owner.get(specialist).copied().unwrap_or_default()
    }

    /// Whether `case` is one of the open cases `specialist` owns.
    pub(super) fn owns_open(&self, specialist: &SpecialistId, case: &CaseId) -> bool {
        self.open_by_owner.get(specialist).is_some_and(|set| set.contains(case))
    }

    /// The owners of `patient`'s open cases other than `except`, each once, in the order of
    /// their earliest such case: the order a walk over the patient's open cases meets them in,
    /// without walking every case (a patient can have many open cases with one reader).
    pub(super) fn owners_of_patient(&self, patient: &PatientKey, except: &CaseId) -> Vec<&SpecialistId> {
        let Some(owners) = self.owned_by_patient.get(patient) else { return Vec::new() };
        let mut earliest: Vec<(&CaseId, &SpecialistId)> = owners
            .iter()
            .filter_map(|(owner, cases)| cases.iter().find(|id| *id != except).map(|id| (id, owner)))
            .collect();
        earliest.sort();
        earliest.into_iter().map(|(_, owner)| owner).collect()
    }

    pub(super) fn unrouted(&self) -> Vec<CaseId> {
        self.unrouted.iter().cloned().collect()
    }
}

/// A reader's load: their open cases, in count, workload units and STAT cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Load {
    /// Open cases.
    pub(super) open: u32,
    /// Workload units of the open cases.
    pub(super) open_units: u32,
    /// Open STAT cases.
    pub(super) stat: u32,
}

impl Load {
    pub(super) fn add(&mut self, case: &Case) {
        self.open += 1;
        self.open_units += case.workload_units();
        self.stat += u32::from(case.priority == Priority::Stat);
    }

    pub(super) fn remove(&mut self, case: &Case) {
        self.open = self.open.saturating_sub(1);
        self.open_units = self.open_units.saturating_sub(case.workload_units());
        self.stat = self.stat.saturating_sub(u32::from(case.priority == Priority::Stat));
    }
}

/// Remove `id` from the set under `key`; true if it was there.
fn remove_from<K: Ord>(map: &mut BTreeMap<K, BTreeSet<CaseId>>, key: &K, id: &CaseId) -> bool {
    let Some(set) = map.get_mut(key) else { return false };
    let removed = set.remove(id);
    if set.is_empty() {
        map.remove(key);
    }
    removed
}
