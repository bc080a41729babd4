//! Registrations and settings: facilities, specialists, policies, shifts, capacity and devices.

use super::{validate_id, validate_optional_text, validate_text, AuditRecord, EntityKey, Region};
use crate::actor::{Actor, Role};
use crate::audit::AuditAction;
use crate::case::OfferOutcome;
use crate::command::{FacilityRegistration, Outcome, SpecialistRegistration};
use crate::error::DomainError;
use crate::facility::{Capacity, CapacityDeclaration, DeviceStatus, Facility, FacilityId, FacilityLevel};
use crate::modality::Modality;
use crate::priority::RegionPolicy;
use crate::specialist::{Specialist, SpecialistId};

/// Longest service name, in bytes.
const MAX_SERVICE_BYTES: usize = 64;

impl Region {
    pub(super) fn register_facility(
        &mut self,
        now: u64,
        actor: &Actor,
        r: &FacilityRegistration,
    ) -> Result<Outcome, DomainError> {
        require_ops(actor, "ops-registers-facilities")?;
        validate_id("id", &r.id.0)?;
        validate_text("name", &r.name)?;
        validate_id("region", &r.region)?;
        if self.facilities.contains_key(&r.id) {
            return Err(DomainError::already_exists("facility", &r.id));
        }
        if let Some(parent) = &r.parent {
            let p = self.facility(parent)?;
            if p.level <= r.level {
                return Err(DomainError::invalid(
                    "parent",
                    format!("parent `{parent}` must be a higher tier than the facility"),
                ));
            }
        }
        let devices = r
            .devices
            .iter()
            .map(|m| (*m, DeviceStatus { in_service: true, reason: None, since_ms: now }))
            .collect();
        self.put_facility(Facility {
            id: r.id.clone(),
            name: r.name.clone(),
            level: r.level,
            region: r.region.clone(),
            parent: r.parent.clone(),
            location: r.location,
            devices,
            capacity: Default::default(),
        });
        self.audit(now, actor, AuditRecord::new("facility.register", AuditAction::C).object(&r.id));
        Ok(Outcome::Registered { id: r.id.0.clone() })
    }

    pub(super) fn register_specialist(
        &mut self,
        now: u64,
        actor: &Actor,
        r: &SpecialistRegistration,
    ) -> Result<Outcome, DomainError> {
        require_ops(actor, "ops-registers-specialists")?;
        validate_id("id", &r.id.0)?;
        validate_text("name", &r.name)?;
        validate_id("specialty", &r.specialty)?;
        if self.specialists.contains_key(&r.id) {
            return Err(DomainError::already_exists("specialist", &r.id));
        }
        let facility = self.facility(&r.facility)?;
        if facility.level == FacilityLevel::Township {
            return Err(DomainError::invalid(
                "facility",
                "specialists work at county or provincial hospitals",
            ));
        }
        if r.cap == 0 {
            return Err(DomainError::invalid("cap", "must be at least 1"));
        }
        for region in &r.licensed_regions {
            validate_id("licensed_regions", region)?;
        }
        let licensed_regions = if r.licensed_regions.is_empty() {
            [facility.region.clone()].into()
        } else {
            r.licensed_regions.clone()
        };
        self.put_specialist(Specialist {
            id: r.id.clone(),
            name: r.name.clone(),
            facility: r.facility.clone(),
            specialty: r.specialty.clone(),
            modalities: r.modalities.clone(),
            licensed_regions,
            cap: r.cap,
            on_shift: r.on_shift,
            shift_started_ms: r.on_shift.then_some(now),
            shift_load: 0,
        });
        self.audit(now, actor, AuditRecord::new("specialist.register", AuditAction::C).object(&r.id));
        let cases_moved = if r.on_shift { self.retry_unrouted(now) } else { Vec::new() };
        if cases_moved.is_empty() {
            Ok(Outcome::Registered { id: r.id.0.clone() })
        } else {
            Ok(Outcome::Updated { what: format!("specialist `{}` registered on shift", r.id), cases_moved })
        }
    }

    pub(super) fn set_policy(
        &mut self,
        now: u64,
        actor: &Actor,
        region: &str,
        policy: &RegionPolicy,
    ) -> Result<Outcome, DomainError> {
        require_ops(actor, "ops-sets-policy")?;
        validate_id("region", region)?;
        for (priority, t) in &policy.sla {
            if t.offer_timeout_ms == 0 || t.offer_to_accept_ms == 0 || t.accept_to_report_ms == 0 {
                return Err(DomainError::invalid(
                    "sla",
                    format!("every clock for `{priority}` must be longer than 0 ms"),
                ));
            }
        }
        self.policies.insert(region.to_owned(), policy.clone());
        self.touched.push(EntityKey::Policy(region.to_owned()));
        self.audit(now, actor, AuditRecord::new("policy.set", AuditAction::U).object(region));
        Ok(Outcome::Updated { what: format!("policy of region `{region}`"), cases_moved: Vec::new() })
    }

    pub(super) fn set_shift(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &SpecialistId,
        on_shift: bool,
    ) -> Result<Outcome, DomainError> {
        let mut s = self.specialist(id)?.clone();
        let is_self = actor.role == Role::Specialist && actor.id == id.0;
        if !is_self && actor.role != Role::Ops {
            return Err(DomainError::not_allowed(
                "specialist-or-ops-sets-shift",
                format!("only specialist `{id}` or ops may change their shift"),
            ));
        }
        if on_shift && !s.on_shift {
            s.shift_started_ms = Some(now);
            s.shift_load = 0;
        }
        s.on_shift = on_shift;
        self.put_specialist(s);
        let what = format!("specialist `{id}` {}", if on_shift { "on shift" } else { "off shift" });
        self.audit(
            now,
            actor,
            AuditRecord::new("specialist.shift", AuditAction::U).object(id).detail(Some(&*what)),
        );
        let cases_moved = if on_shift {
            self.retry_unrouted(now)
        } else {
            let pending: Vec<_> = self
                .index
                .open_cases_of(id)
                .filter(|c| self.cases.get(*c).is_some_and(|c| c.status.is_offer_stage()))
                .cloned()
                .collect();
            for case in &pending {
                self.withdraw_offer_and_reroute(
                    now,
                    actor,
                    case,
                    OfferOutcome::Withdrawn,
                    "owner-went-off-shift",
                    None,
                );
            }
            pending
        };
        Ok(Outcome::Updated { what, cases_moved })
    }

    pub(super) fn declare_capacity(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &FacilityId,
        service: &str,
        capacity: Capacity,
    ) -> Result<Outcome, DomainError> {
        validate_service(service)?;
        let mut f = self.facility(id)?.clone();
        require_staff_or_ops(actor, id, "facility-staff-declares-capacity")?;
        f.capacity
            .insert(service.to_owned(), CapacityDeclaration { capacity, at_ms: now, by: actor.id.clone() });
        self.put_facility(f);
        let what = format!("capacity of `{id}` for `{service}`: {capacity}");
        self.audit(
            now,
            actor,
            AuditRecord::new("facility.capacity", AuditAction::U).object(id).detail(Some(&*what)),
        );
        Ok(Outcome::Updated { what, cases_moved: Vec::new() })
    }

    pub(super) fn set_device(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &FacilityId,
        modality: Modality,
        in_service: bool,
        reason: Option<&str>,
    ) -> Result<Outcome, DomainError> {
        let mut f = self.facility(id)?.clone();
        require_staff_or_ops(actor, id, "facility-staff-sets-device")?;
        validate_optional_text("reason", reason)?;
        if !in_service && reason.is_none() {
            return Err(DomainError::invalid("reason", "say why the device is out of service"));
        }
        f.devices
            .insert(modality, DeviceStatus { in_service, reason: reason.map(str::to_owned), since_ms: now });
        self.put_facility(f);
        let what =
            format!("{modality} at `{id}` {}", if in_service { "back in service" } else { "out of service" });
        self.audit(
            now,
            actor,
            AuditRecord::new("facility.device", AuditAction::U).object(id).detail(Some(&*what)),
        );
        let cases_moved = if in_service { Vec::new() } else { self.move_exams_off(now, actor, id, modality) };
        Ok(Outcome::Updated { what, cases_moved })
    }
}

pub(super) fn require_ops(actor: &Actor, rule: &str) -> Result<(), DomainError> {
    if actor.role == Role::Ops {
        Ok(())
    } else {
        Err(DomainError::not_allowed(rule, format!("only ops may do this; {} is {}", actor.id, actor.role)))
    }
}

/// Staff of `facility` (or ops).
pub(super) fn require_staff_or_ops(
    actor: &Actor,
    facility: &FacilityId,
    rule: &str,
) -> Result<(), DomainError> {
    if actor.role == Role::Ops || is_staff_of(actor, facility) {
        Ok(())
    } else {
        Err(DomainError::not_allowed(rule, format!("only staff of `{facility}` or ops may do this")))
    }
}

pub(super) fn is_staff_of(actor: &Actor, facility: &FacilityId) -> bool {
    actor.role == Role::ClinicStaff && actor.facility.as_ref() == Some(facility)
}

pub(super) fn validate_service(service: &str) -> Result<(), DomainError> {
    let ok = !service.is_empty()
        && service.len() <= MAX_SERVICE_BYTES
        && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "service",
            format!("use lowercase letters, digits and '-', at most {MAX_SERVICE_BYTES} bytes (e.g. rehab-stroke)"),
        ))
    }
}
