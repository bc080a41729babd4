//! The audit trail as FHIR R4 `AuditEvent` resources (ATNA / BALP style), hash chain included.

use super::resources::instant;
use serde_json::{json, Value};
use yilian_referral::{AuditAction, AuditEvent, AuditOutcome};

/// Extension URL carrying an event's own hash.
pub const HASH_EXTENSION: &str = "urn:yilian:fhir:extension:audit-hash";
/// Extension URL carrying the hash of the previous event.
pub const PREV_HASH_EXTENSION: &str = "urn:yilian:fhir:extension:audit-prev-hash";

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const PURPOSE_OF_USE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn action_code(action: AuditAction) -> &'static str {
    match action {
        AuditAction::C => "C",
        AuditAction::R => "R",
        AuditAction::U => "U",
        AuditAction::D => "D",
        AuditAction::E => "E",
    }
}

/// One audit event as an R4 `AuditEvent`; its id is the event's sequence number.
pub fn audit_event(e: &AuditEvent) -> Value {
    let (code, display) =
        if e.case.is_some() { ("110110", "Patient Record") } else { ("110100", "Application Activity") };
    let actor = match &e.actor.facility {
        Some(f) => format!("{}:{}@{}", e.actor.role, e.actor.id, f),
        None => format!("{}:{}", e.actor.role, e.actor.id),
    };
    let mut entities = Vec::new();
    if let Some(case) = &e.case {
        entities.push(json!({
            "what": { "reference": format!("Task/{case}") },
            "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
        }));
    }
    if let Some(patient) = &e.patient {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:yilian:patient-key", "value": patient.0 } },
            "type": { "system": ENTITY_TYPE, "code": "1", "display": "Person" },
        }));
    }
    if let Some(study) = &e.study {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:dicom:uid", "value": format!("urn:oid:{study}") } },
            "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
        }));
    }
    if let Some(object) = &e.object {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:yilian:object", "value": object } },
            "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
        }));
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "extension": [
            { "url": HASH_EXTENSION, "valueString": e.hash },
            { "url": PREV_HASH_EXTENSION, "valueString": e.prev_hash },
        ],
        "type": { "system": DCM, "code": code, "display": display },
        "subtype": [{ "system": "urn:yilian:audit-event-type", "code": e.event_type }],
        "action": action_code(e.action),
        "recorded": instant(e.at_ms),
        "outcome": if e.outcome == AuditOutcome::Denied { "4" } else { "0" },
        "agent": [{
            "who": { "identifier": { "system": "urn:yilian:actor", "value": actor } },
            "role": [{ "coding": [{ "system": "urn:yilian:role", "code": e.actor.role.to_string() }] }],
            "requestor": true,
        }],
        "source": {
            "observer": { "display": "Yilian regional cluster" },
            "type": [{ "system": SOURCE_TYPE, "code": "4", "display": "Application Server" }],
        },
    });
    if let Some(detail) = &e.detail {
        resource["outcomeDesc"] = json!(detail);
    }
    if let Some(source) = &e.source {
        resource["agent"][0]["network"] = json!({ "address": source, "type": "2" });
    }
    if let Some(purpose) = &e.purpose {
        resource["agent"][0]["purposeOfUse"] =
            json!([{ "coding": [{ "system": PURPOSE_OF_USE, "code": purpose }] }]);
    }
    if !entities.is_empty() {
        resource["entity"] = Value::Array(entities);
    }
    resource
}
