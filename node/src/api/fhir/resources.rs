//! Pure mapping between referral cases and FHIR R4 (4.0.1) JSON: `Task`, `ServiceRequest`,
//! searchset `Bundle`, `OperationOutcome` and the server's `CapabilityStatement`, plus reading a
//! POSTed `ServiceRequest` into the body of `POST /v1/cases` and parsing search parameters.
//!
//! Identifier systems and codings (documented in the CapabilityStatement too):
//! - [`SYSTEM_RESIDENT_ID`]: the patient's 18-character resident identity number. Accepted on
//!   create and in `patient:identifier` searches only; it is hashed into the patient key at once
//!   and never stored or answered.
//! - [`SYSTEM_PATIENT_KEY`]: the region's pseudonymous patient key, used in every answer
//!   (`Task.for`, `ServiceRequest.subject`).
//! - [`SYSTEM_SPECIALTY`]: the specialty needed, in `ServiceRequest.category[].coding[]`.
//! - [`SYSTEM_DCM`]: the modality to read, as a DICOM modality code in
//!   `ServiceRequest.orderDetail[].coding[]` (or `code.coding[]`); DX and CR both mean
//!   digital radiography.
//! - [`EXT_GREEN_CHANNEL`]: extension on ServiceRequest with `valueCode` `stroke` or
//!   `chest-pain`.

use crate::api::cases::SubmitBody;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use yilian_referral::{
    Case, CaseId, FacilityId, GreenChannel, Modality, PatientKey, Priority, SlaClock, SpecialistId,
    TaskStatus, Vitals,
};

/// Media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";
/// Identifier system of the raw resident identity number (input only, never answered).
pub const SYSTEM_RESIDENT_ID: &str = "urn:yilian:resident-id";
/// Identifier system of the pseudonymous patient key.
pub const SYSTEM_PATIENT_KEY: &str = "urn:yilian:patient-key";
/// Code system of specialties (`ServiceRequest.category`).
pub const SYSTEM_SPECIALTY: &str = "urn:yilian:specialty";
/// DICOM controlled terminology (modalities).
pub const SYSTEM_DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Extension carrying the green-channel pathway of a ServiceRequest.
pub const EXT_GREEN_CHANNEL: &str = "urn:yilian:fhir:extension:green-channel";
/// FHIR task codes.
const SYSTEM_TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";
/// System of Task.status codes, accepted in token searches.
const SYSTEM_TASK_STATUS: &str = "http://hl7.org/fhir/task-status";
/// System of ServiceRequest.status codes, accepted in token searches.
const SYSTEM_REQUEST_STATUS: &str = "http://hl7.org/fhir/request-status";
/// System of priority codes, accepted in token searches.
const SYSTEM_PRIORITY: &str = "http://hl7.org/fhir/request-priority";
/// Date the CapabilityStatement was last changed.
const CAPABILITY_DATE: &str = "2025-01-15";

// ---------------------------------------------------------------------------------------------
// Errors as OperationOutcome
// ---------------------------------------------------------------------------------------------

/// An error answered as an `OperationOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirError {
    /// HTTP status.
    pub status: StatusCode,
    /// `OperationOutcome.issue.code` (from the R4 issue-type value set).
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub diagnostics: String,
    /// FHIRPath of the element at fault, if one is.
    pub expression: Option<String>,
}

impl FhirError {
    /// An error with `status`, issue `code` and `diagnostics`.
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self { status, code, diagnostics: diagnostics.into(), expression: None }
    }

    /// An error with `status` and the issue code usual for it.
    pub fn with_status(status: StatusCode, diagnostics: impl Into<String>) -> Self {
        Self::new(status, issue_code_for(status), diagnostics)
    }

    /// The same error, naming the element at fault.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// 400: `element` is malformed (wrong JSON type, bad code).
    fn invalid(element: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", diagnostics).at(element)
    }

    /// 400: `element` is required and missing.
    fn required(element: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "required", diagnostics).at(element)
    }

    /// 422: `element` is well-formed but this server cannot act on it.
    fn unprocessable(element: &str, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, diagnostics).at(element)
    }

    /// The `OperationOutcome` resource.
    pub fn operation_outcome(&self) -> Value {
        let mut issue = json!({
            "severity": "error",
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if let Some(e) = &self.expression {
            issue["expression"] = json!([e]);
        }
        json!({ "resourceType": "OperationOutcome", "issue": [issue] })
    }
}

/// The R4 issue type usual for an HTTP status.
pub fn issue_code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid",
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 | 406 | 415 => "not-supported",
        409 => "conflict",
        422 => "business-rule",
        503 => "transient",
        504 => "timeout",
        _ => "exception",
    }
}

/// The FHIRPath of the ServiceRequest element a domain validation field comes from.
pub fn element_of_domain_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "patient_key" => "ServiceRequest.subject",
        "complaint" => "ServiceRequest.code.text",
        "specialty" => "ServiceRequest.category",
        "priority" => "ServiceRequest.priority",
        "target" => "ServiceRequest.performer",
        "origin" => "ServiceRequest.requester",
        "modality" => "ServiceRequest.orderDetail",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// An `instant` (RFC 3339, UTC, millisecond precision) from ms since the Unix epoch.
pub fn instant(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Proleptic Gregorian (year, month, day) of `days` after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------------------------
// Case → Task / ServiceRequest
// ---------------------------------------------------------------------------------------------

/// The ServiceRequest status of a case in `status`.
pub fn service_request_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Draft => "draft",
        TaskStatus::Requested
        | TaskStatus::Received
        | TaskStatus::Accepted
        | TaskStatus::Ready
        | TaskStatus::InProgress => "active",
        TaskStatus::OnHold => "on-hold",
        TaskStatus::Completed => "completed",
        TaskStatus::Rejected | TaskStatus::Cancelled | TaskStatus::Failed => "revoked",
        TaskStatus::EnteredInError => "entered-in-error",
    }
}

/// The DICOM modality code answered for `modality` (digital radiography is `DX`).
pub fn dcm_code(modality: Modality) -> (&'static str, &'static str) {
    match modality {
        Modality::Dr => ("DX", "Digital Radiography"),
        Modality::Ct => ("CT", "Computed Tomography"),
        Modality::Mr => ("MR", "Magnetic Resonance"),
        Modality::Us => ("US", "Ultrasound"),
        Modality::Ecg => ("ECG", "Electrocardiography"),
    }
}

/// The modality of a DICOM modality code, if Yilian reads it.
pub fn modality_of_dcm(code: &str) -> Option<Modality> {
    Some(match code {
        "DX" | "CR" => Modality::Dr,
        "CT" => Modality::Ct,
        "MR" => Modality::Mr,
        "US" => Modality::Us,
        "ECG" => Modality::Ecg,
        _ => return None,
    })
}

fn green_channel_code(g: GreenChannel) -> &'static str {
    match g {
        GreenChannel::Stroke => "stroke",
        GreenChannel::ChestPain => "chest-pain",
    }
}

fn patient_identifier(key: &PatientKey) -> Value {
    json!({ "identifier": { "system": SYSTEM_PATIENT_KEY, "value": key.0 } })
}

fn reference(kind: &str, id: &str) -> Value {
    json!({ "reference": format!("{kind}/{id}") })
}

/// When the case last changed.
fn last_updated(case: &Case) -> u64 {
    case.history.iter().map(|e| e.at_ms).max().unwrap_or(case.status_since_ms).max(case.status_since_ms)
}

/// What the case waits for, in words (`Task.businessStatus.text`).
pub fn business_status(case: &Case) -> String {
    let who = case.owner.as_ref().map(|o| o.0.as_str());
    let reported = case.sla.reported_at_ms.is_some();
    match (case.status, who) {
        (TaskStatus::Draft, _) => "draft: not yet sent".into(),
        (s, _) if s.is_offer_stage() && case.is_unrouted() => {
            "unrouted: no eligible reader; waiting for ops".into()
        }
        (TaskStatus::Requested, Some(w)) => format!("offered to {w}"),
        (TaskStatus::Received, Some(w)) => format!("offer seen by {w}"),
        (TaskStatus::Requested | TaskStatus::Received, None) => "waiting for a reader".into(),
        (TaskStatus::Accepted, Some(w)) => format!("accepted by {w}"),
        (TaskStatus::Ready, Some(w)) if !reported => format!("accepted by rule for {w}"),
        (TaskStatus::InProgress, Some(w)) if !reported => format!("being read by {w}"),
        (TaskStatus::Ready | TaskStatus::InProgress, Some(w)) => format!("reported by {w}"),
        (TaskStatus::OnHold, _) => "on hold".into(),
        (TaskStatus::Completed, _) if reported => "reported and completed".into(),
        (TaskStatus::Rejected, _) => "rejected as unsuitable for remote reading".into(),
        (TaskStatus::Cancelled, _) => "cancelled".into(),
        (TaskStatus::Failed, _) => "failed: the reader could not finish".into(),
        (TaskStatus::EnteredInError, _) => "entered in error".into(),
        (s, _) => s.code().to_owned(),
    }
}

/// The case as a FHIR R4 `Task` (the work of reading it).
pub fn task(case: &Case) -> Value {
    let mut t = json!({
        "resourceType": "Task",
        "id": case.id.0,
        "meta": { "lastUpdated": instant(last_updated(case)) },
        "basedOn": [reference("ServiceRequest", &case.id.0)],
        "status": case.status.code(),
        "businessStatus": { "text": business_status(case) },
        "intent": "order",
        "priority": case.priority.code(),
        "code": { "coding": [{ "system": SYSTEM_TASK_CODE, "code": "fulfill" }] },
        "description": case.complaint,
        "focus": reference("ServiceRequest", &case.id.0),
        "for": patient_identifier(&case.patient),
        "authoredOn": instant(case.created_at_ms),
        "lastModified": instant(last_updated(case)),
        "requester": reference("Organization", &case.origin.0),
    });
    // The reason given for the move into the current status, if any.
    let reason = case
        .history
        .iter()
        .rev()
        .take_while(|e| e.at_ms >= case.status_since_ms)
        .find_map(|e| e.reason.as_deref().filter(|r| !r.trim().is_empty()));
    if let Some(r) = reason {
        t["statusReason"] = json!({ "text": r });
    }
    if let Some(owner) = &case.owner {
        t["owner"] = reference("Practitioner", &owner.0);
    }
    let mut period = Map::new();
    if let Some(start) = case.sla.accepted_at_ms {
        period.insert("start".into(), json!(instant(start)));
    }
    if case.status.is_terminal() {
        period.insert("end".into(), json!(instant(case.status_since_ms)));
    }
    if !period.is_empty() {
        t["executionPeriod"] = Value::Object(period);
    }
    if let Some(deadline) = case.next_deadline() {
        t["restriction"] = json!({ "period": { "end": instant(deadline) } });
    }
    let notes: Vec<Value> = case
        .sla
        .breaches
        .iter()
        .map(|b| {
            let clock = match b.clock {
                SlaClock::Accept => "acceptance",
                SlaClock::Report => "report",
            };
            json!({
                "time": instant(b.at_ms),
                "text": format!(
                    "SLA breach: the {clock} deadline {} was missed (request round {})",
                    instant(b.due_ms),
                    b.round
                ),
            })
        })
        .collect();
    if !notes.is_empty() {
        t["note"] = Value::Array(notes);
    }
    let outputs: Vec<Value> = case
        .reports
        .iter()
        .map(|r| {
            json!({
                "type": { "text": format!("report by {} at {}", r.by, instant(r.at_ms)) },
                "valueString": r.text,
            })
        })
        .collect();
    if !outputs.is_empty() {
        t["output"] = Value::Array(outputs);
    }
    t
}

/// The case as a FHIR R4 `ServiceRequest` (what the clinic asked for).
pub fn service_request(case: &Case) -> Value {
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "id": case.id.0,
        "meta": { "lastUpdated": instant(last_updated(case)) },
        "status": service_request_status(case.status),
        "intent": "order",
        "category": [{
            "coding": [{ "system": SYSTEM_SPECIALTY, "code": case.specialty }],
            "text": case.specialty,
        }],
        "priority": case.priority.code(),
        "code": { "text": case.complaint },
        "subject": patient_identifier(&case.patient),
        "authoredOn": instant(case.created_at_ms),
        "requester": reference("Organization", &case.origin.0),
    });
    if let Some(g) = case.green_channel {
        sr["extension"] = json!([{ "url": EXT_GREEN_CHANNEL, "valueCode": green_channel_code(g) }]);
    }
    if let Some(m) = case.modality {
        let (code, display) = dcm_code(m);
        sr["orderDetail"] =
            json!([{ "coding": [{ "system": SYSTEM_DCM, "code": code, "display": display }] }]);
    }
    let mut performers = Vec::new();
    if let Some(target) = &case.preferred_target {
        performers.push(reference("Organization", &target.0));
    }
    if let Some(owner) = &case.owner {
        performers.push(reference("Practitioner", &owner.0));
    }
    if !performers.is_empty() {
        sr["performer"] = Value::Array(performers);
    }
    sr
}

/// A searchset `Bundle` of `entries` (resource type, id, resource), with `total` matches.
pub fn searchset(base: &str, self_url: &str, entries: Vec<(&str, String, Value)>) -> Value {
    let total = entries.len();
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{ "relation": "self", "url": self_url }],
    });
    if total > 0 {
        b["entry"] = entries
            .into_iter()
            .map(|(kind, id, resource)| {
                json!({
                    "fullUrl": format!("{base}/{kind}/{id}"),
                    "resource": resource,
                    "search": { "mode": "match" },
                })
            })
            .collect();
    }
    b
}

// ---------------------------------------------------------------------------------------------
// CapabilityStatement
// ---------------------------------------------------------------------------------------------

/// Which resource a search is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// `GET /fhir/Task`.
    Task,
    /// `GET /fhir/ServiceRequest`.
    ServiceRequest,
}

impl SearchKind {
    /// The resource type.
    pub fn name(self) -> &'static str {
        match self {
            SearchKind::Task => "Task",
            SearchKind::ServiceRequest => "ServiceRequest",
        }
    }

    /// Search parameters supported, as (name, type, standard definition id, documentation).
    fn params(self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        match self {
            SearchKind::Task => &[
                ("_id", "token", "Resource-id", "Case id, e.g. C00000001"),
                ("status", "token", "Task-status", "Task status code; comma-separated for any of"),
                ("owner", "reference", "Task-owner", "Practitioner/<specialist id> or the bare id"),
                ("priority", "token", "Task-priority", "routine | urgent | asap | stat"),
                ("requester", "reference", "Task-requester", "Organization/<facility id> or the bare id"),
                ("focus", "reference", "Task-focus", "ServiceRequest/<case id> or the bare id"),
                ("patient", "reference", "Task-patient", PATIENT_DOC),
            ],
            SearchKind::ServiceRequest => &[
                ("_id", "token", "Resource-id", "Case id, e.g. C00000001"),
                ("status", "token", "ServiceRequest-status", "ServiceRequest status code"),
                ("priority", "token", "ServiceRequest-priority", "routine | urgent | asap | stat"),
                (
                    "requester",
                    "reference",
                    "ServiceRequest-requester",
                    "Organization/<facility id> or the bare id",
                ),
                (
                    "performer",
                    "reference",
                    "ServiceRequest-performer",
                    "Practitioner/<specialist id> (owner) or Organization/<facility id> (preferred target)",
                ),
                ("patient", "reference", "clinical-patient", PATIENT_DOC),
            ],
        }
    }
}

const PATIENT_DOC: &str = "only with the :identifier modifier (also as subject:identifier): \
     urn:yilian:resident-id|<resident ID> or urn:yilian:patient-key|<key>";

/// The server's `CapabilityStatement` (`GET /fhir/metadata`).
pub fn capability_statement(base: &str) -> Value {
    let resource = |kind: SearchKind, create: bool| {
        let mut interactions = vec![json!({ "code": "read" }), json!({ "code": "search-type" })];
        if create {
            interactions.push(json!({ "code": "create" }));
        }
        let params: Vec<Value> = kind
            .params()
            .iter()
            .map(|(name, ty, def, doc)| {
                json!({
                    "name": name,
                    "definition": format!("http://hl7.org/fhir/SearchParameter/{def}"),
                    "type": ty,
                    "documentation": doc,
                })
            })
            .collect();
        json!({
            "type": kind.name(),
            "interaction": interactions,
            "versioning": "no-version",
            "readHistory": false,
            "updateCreate": false,
            "conditionalCreate": false,
            "searchParam": params,
        })
    };
    let mut sr = resource(SearchKind::ServiceRequest, true);
    sr["documentation"] = json!(format!(
        "create: status active (or draft), intent order; subject.identifier with system \
         {SYSTEM_RESIDENT_ID} (hashed into the patient key, never stored or answered: answers use \
         {SYSTEM_PATIENT_KEY}); priority; code.text (or reasonCode[0].text) = chief complaint; \
         category coding with system {SYSTEM_SPECIALTY} = specialty; orderDetail (or code) coding \
         with system {SYSTEM_DCM} = modality (DX, CR, CT, MR, US, ECG); requester \
         Organization/<facility> (defaults to the actor's); performer[0] Organization/<preferred \
         target>; extension {EXT_GREEN_CHANNEL} valueCode stroke | chest-pain. The acting user is \
         the authenticated caller and must be staff of the requesting facility."
    ));
    let mut task = resource(SearchKind::Task, false);
    task["documentation"] = json!(
        "Read-only view of the case's lifecycle; act on it through /v1/cases/{id}/{action}. \
         owner is the offered or owning reader; restriction.period.end the next deadline."
    );
    let audit = json!({
        "type": "AuditEvent",
        "interaction": [{ "code": "search-type" }],
        "searchParam": [{
            "name": "entity",
            "definition": "http://hl7.org/fhir/SearchParameter/AuditEvent-entity",
            "type": "reference",
            "documentation": "Task/<case id>: only that case's events",
        }],
        "documentation": "The replicated, append-only, hash-chained audit trail, oldest first. Each \
                          event carries its own hash and the previous event's in extensions.",
    });
    json!({
        "resourceType": "CapabilityStatement",
        "id": "yilian",
        "name": "YilianFhirFacade",
        "title": "Yilian FHIR R4 facade",
        "status": "active",
        "date": CAPABILITY_DATE,
        "description": "Referral cases of the Yilian regional telemedicine backbone as FHIR R4 \
                        ServiceRequest (the request) and Task (the work of reading it).",
        "kind": "instance",
        "software": { "name": "Yilian", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Yilian node", "url": base },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Reads are linearizable; add consistency=stale to read this node's \
                              state as is. Unknown search parameters are refused (400).",
            "resource": [task, sr, audit],
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// Search parameters
// ---------------------------------------------------------------------------------------------

/// A parsed search: each set field is a list of alternatives, all set fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// Case ids.
    pub ids: Option<Vec<CaseId>>,
    /// Focus (ServiceRequest) ids, which are case ids too.
    pub focus: Option<Vec<CaseId>>,
    /// Task statuses (a ServiceRequest status search is expanded into these).
    pub statuses: Option<Vec<TaskStatus>>,
    /// Owners (offered or owning reader).
    pub owners: Option<Vec<SpecialistId>>,
    /// Priorities.
    pub priorities: Option<Vec<Priority>>,
    /// Requesting facilities.
    pub requesters: Option<Vec<FacilityId>>,
    /// Performers: (owner?, preferred target?) alternatives; `None` type matches either.
    pub performers: Option<Vec<(Option<&'static str>, String)>>,
    /// Patient keys.
    pub patients: Option<Vec<PatientKey>>,
    /// Whether to read this node's state as is instead of a linearizable read.
    pub stale: bool,
    /// The parameters as understood, for the Bundle's self link (no raw patient IDs).
    pub canonical: Vec<(String, String)>,
}

impl Search {
    /// Whether `case` matches.
    pub fn matches(&self, case: &Case) -> bool {
        fn any<T>(list: &Option<Vec<T>>, f: impl Fn(&T) -> bool) -> bool {
            list.as_ref().is_none_or(|l| l.iter().any(f))
        }
        any(&self.ids, |id| *id == case.id)
            && any(&self.focus, |id| *id == case.id)
            && any(&self.statuses, |s| *s == case.status)
            && any(&self.owners, |o| case.owner.as_ref() == Some(o))
            && any(&self.priorities, |p| *p == case.priority)
            && any(&self.requesters, |r| *r == case.origin)
            && any(&self.patients, |p| *p == case.patient)
            && any(&self.performers, |(kind, id)| {
                let owner = case.owner.as_ref().is_some_and(|o| o.0 == *id);
                let target = case.preferred_target.as_ref().is_some_and(|t| t.0 == *id);
                match *kind {
                    Some("Practitioner") => owner,
                    Some(_) => target,
                    None => owner || target,
                }
            })
    }

    /// The Bundle's self link under `base`.
    pub fn self_url(&self, base: &str, kind: SearchKind) -> String {
        let query: Vec<String> =
            self.canonical.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        if query.is_empty() {
            format!("{base}/{}", kind.name())
        } else {
            format!("{base}/{}?{}", kind.name(), query.join("&"))
        }
    }
}

/// Percent-encode a query component (keeps unreserved characters and `,/:`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~,/:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token value: `code` or `system|code` with the expected `system`.
fn token<'a>(param: &str, value: &'a str, system: &str) -> Result<&'a str, FhirError> {
    match value.split_once('|') {
        None => Ok(value),
        Some(("", code)) => Ok(code),
        Some((s, code)) if s == system => Ok(code),
        Some((s, _)) => Err(FhirError::invalid(
            param,
            format!("search parameter `{param}`: unknown system `{s}`; use the bare code or {system}|<code>"),
        )),
    }
}

/// A reference value: `Type/id`, an absolute URL ending in `Type/id`, or a bare id. Returns the
/// type (if given) and the id.
fn reference_value(
    param: &str,
    value: &str,
    types: &[&'static str],
) -> Result<(Option<&'static str>, String), FhirError> {
    let bad = || {
        FhirError::invalid(
            param,
            format!(
                "search parameter `{param}`: `{value}` is not a reference to {}; use <Type>/<id> or the \
                 bare id",
                types.join(" or ")
            ),
        )
    };
    let segments: Vec<&str> = value.split('/').collect();
    match segments.as_slice() {
        [id] => Ok((None, (*id).to_owned())),
        [.., kind, id] if !id.is_empty() => {
            let absolute = value.starts_with("http://") || value.starts_with("https://");
            if segments.len() > 2 && !absolute {
                return Err(bad());
            }
            let kind = types.iter().find(|t| **t == *kind).ok_or_else(bad)?;
            Ok((Some(kind), (*id).to_owned()))
        }
        _ => Err(bad()),
    }
}

/// Parse the query of a search on `kind`. `key_for` turns a resident ID into the patient key
/// (its error text must not contain the ID).
pub fn parse_search(
    kind: SearchKind,
    params: &[(String, String)],
    key_for: impl Fn(&str) -> Result<PatientKey, String>,
) -> Result<Search, FhirError> {
    let mut s = Search::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        let param = name.as_str();
        let base_name = match param {
            "patient:identifier" | "subject:identifier" => "patient",
            other => other,
        };
        let supported = kind.params().iter().any(|(n, ..)| *n == base_name)
            && (base_name != "patient" || param.ends_with(":identifier"));
        if !supported && !matches!(param, "consistency" | "_format") {
            let names: Vec<&str> = kind
                .params()
                .iter()
                .map(|(n, ..)| if *n == "patient" { "patient:identifier" } else { *n })
                .collect();
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                format!(
                    "search parameter `{param}` is not supported on {}; use {} (comma-separate \
                     alternatives), or consistency=stale",
                    kind.name(),
                    names.join(", ")
                ),
            )
            .at(param));
        }
        if seen.contains(&base_name) {
            return Err(FhirError::invalid(
                param,
                format!("give search parameter `{param}` once; separate alternatives with commas"),
            ));
        }
        seen.push(base_name);
        if value.is_empty() {
            return Err(FhirError::invalid(param, format!("search parameter `{param}` has no value")));
        }
        let values: Vec<&str> = value.split(',').collect();
        if values.iter().any(|v| v.is_empty()) {
            return Err(FhirError::invalid(param, format!("search parameter `{param}` has an empty value")));
        }
        let mut canonical = value.clone();
        match base_name {
            "consistency" => match value.as_str() {
                "stale" => s.stale = true,
                "linearizable" => s.stale = false,
                other => {
                    return Err(FhirError::invalid(
                        param,
                        format!("consistency `{other}`: use linearizable (default) or stale"),
                    ))
                }
            },
            "_format" if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") => {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("_format `{value}` is not served; this server answers application/fhir+json"),
                )
                .at(param));
            }
            "_id" => s.ids = Some(values.iter().map(|v| CaseId((*v).to_owned())).collect()),
            "status" => {
                let mut statuses = Vec::new();
                for v in &values {
                    match kind {
                        SearchKind::Task => {
                            let code = token(param, v, SYSTEM_TASK_STATUS)?;
                            statuses.push(TaskStatus::from_code(code).ok_or_else(|| {
                                FhirError::invalid(
                                    param,
                                    format!(
                                        "unknown Task status `{code}`; use a FHIR Task status such as \
                                         requested, accepted, in-progress, completed"
                                    ),
                                )
                            })?);
                        }
                        SearchKind::ServiceRequest => {
                            let code = token(param, v, SYSTEM_REQUEST_STATUS)?;
                            let known = [
                                "draft",
                                "active",
                                "on-hold",
                                "revoked",
                                "completed",
                                "entered-in-error",
                                "unknown",
                            ];
                            if !known.contains(&code) {
                                return Err(FhirError::invalid(
                                    param,
                                    format!(
                                        "unknown ServiceRequest status `{code}`; use one of {}",
                                        known.join(", ")
                                    ),
                                ));
                            }
                            statuses.extend(
                                TaskStatus::ALL.into_iter().filter(|st| service_request_status(*st) == code),
                            );
                        }
                    }
                }
                s.statuses = Some(statuses);
            }
            "priority" => {
                let mut priorities = Vec::new();
                for v in &values {
                    let code = token(param, v, SYSTEM_PRIORITY)?;
                    priorities.push(Priority::ALL.into_iter().find(|p| p.code() == code).ok_or_else(
                        || {
                            FhirError::invalid(
                                param,
                                format!("unknown priority `{code}`; use routine, urgent, asap or stat"),
                            )
                        },
                    )?);
                }
                s.priorities = Some(priorities);
            }
            "owner" => {
                let mut owners = Vec::new();
                for v in &values {
                    owners.push(SpecialistId(reference_value(param, v, &["Practitioner"])?.1));
                }
                s.owners = Some(owners);
            }
            "requester" => {
                let mut requesters = Vec::new();
                for v in &values {
                    requesters.push(FacilityId(reference_value(param, v, &["Organization"])?.1));
                }
                s.requesters = Some(requesters);
            }
            "focus" => {
                let mut focus = Vec::new();
                for v in &values {
                    focus.push(CaseId(reference_value(param, v, &["ServiceRequest"])?.1));
                }
                s.focus = Some(focus);
            }
            "performer" => {
                let mut performers = Vec::new();
                for v in &values {
                    performers.push(reference_value(param, v, &["Practitioner", "Organization"])?);
                }
                s.performers = Some(performers);
            }
            "patient" => {
                let mut keys = Vec::new();
                let mut shown = Vec::new();
                for v in &values {
                    let (system, id) = v.split_once('|').ok_or_else(|| {
                        FhirError::invalid(
                            param,
                            format!("search parameter `{param}` needs <system>|<value>: {PATIENT_DOC}"),
                        )
                    })?;
                    let key = match system {
                        SYSTEM_RESIDENT_ID => key_for(id).map_err(|e| {
                            FhirError::unprocessable(
                                param,
                                "value",
                                format!("search parameter `{param}`: {e}"),
                            )
                        })?,
                        SYSTEM_PATIENT_KEY => {
                            let key = PatientKey(id.to_owned());
                            key.validate().map_err(|_| {
                                FhirError::invalid(
                                    param,
                                    format!(
                                        "search parameter `{param}`: a {SYSTEM_PATIENT_KEY} value is 64 \
                                         lowercase hex digits"
                                    ),
                                )
                            })?;
                            key
                        }
                        _ => {
                            return Err(FhirError::invalid(
                                param,
                                format!(
                                    "search parameter `{param}`: unknown identifier system; {PATIENT_DOC}"
                                ),
                            ))
                        }
                    };
                    shown.push(format!("{SYSTEM_PATIENT_KEY}|{}", key.0));
                    keys.push(key);
                }
                // Never echo a raw resident ID back (the self link shows the keys).
                canonical = shown.join(",");
                s.patients = Some(keys);
            }
            _ => {}
        }
        if param != "consistency" {
            s.canonical.push((name.clone(), canonical));
        }
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// POSTed ServiceRequest → SubmitBody
// ---------------------------------------------------------------------------------------------

/// Top-level ServiceRequest elements this server reads on create.
const CREATE_ELEMENTS: &[&str] = &[
    "resourceType",
    "status",
    "intent",
    "priority",
    "subject",
    "requester",
    "performer",
    "code",
    "reasonCode",
    "category",
    "orderDetail",
    "extension",
];
/// Top-level elements accepted on create and ignored (the server assigns id, meta and dates).
const IGNORED_ELEMENTS: &[&str] = &["id", "meta", "text", "language", "authoredOn"];

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, FhirError> {
    v.as_object().ok_or_else(|| FhirError::invalid(path, format!("{path} must be a JSON object")))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], FhirError> {
    match v.as_array() {
        Some(a) if !a.is_empty() => Ok(a),
        Some(_) => Err(FhirError::invalid(path, format!("{path} must not be an empty array; leave it out"))),
        None => Err(FhirError::invalid(path, format!("{path} must be a JSON array"))),
    }
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, FhirError> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(FhirError::invalid(path, format!("{path} must not be empty"))),
        None => Err(FhirError::invalid(path, format!("{path} must be a JSON string"))),
    }
}

/// Refuse elements of `map` not in `allowed` (422, naming the element).
fn only(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), FhirError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(FhirError::unprocessable(
            &format!("{path}.{k}"),
            "not-supported",
            format!(
                "{path}.{k} is not supported by this server; leave it out (supported: {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// A coding as (system, code).
type Coding<'a> = (Option<&'a str>, &'a str);

/// The codings of a CodeableConcept at `path`, and its text.
fn codeable_concept<'a>(v: &'a Value, path: &str) -> Result<(Vec<Coding<'a>>, Option<&'a str>), FhirError> {
    let map = object(v, path)?;
    only(map, path, &["coding", "text"])?;
    let text = map.get("text").map(|t| string(t, &format!("{path}.text"))).transpose()?;
    let mut codings = Vec::new();
    if let Some(list) = map.get("coding") {
        for (i, c) in array(list, &format!("{path}.coding"))?.iter().enumerate() {
            let cpath = format!("{path}.coding[{i}]");
            let cmap = object(c, &cpath)?;
            only(cmap, &cpath, &["system", "version", "code", "display", "userSelected"])?;
            let system = cmap.get("system").map(|s| string(s, &format!("{cpath}.system"))).transpose()?;
            if let Some(code) = cmap.get("code") {
                codings.push((system, string(code, &format!("{cpath}.code"))?));
            }
        }
    }
    Ok((codings, text))
}

/// The id in a reference to `kind` at `path` (`{"reference": "Kind/id"}`).
fn reference_to(v: &Value, path: &str, kind: &str) -> Result<String, FhirError> {
    let map = object(v, path)?;
    only(map, path, &["reference", "type", "display"])?;
    if let Some(t) = map.get("type") {
        if string(t, &format!("{path}.type"))? != kind {
            return Err(FhirError::unprocessable(
                &format!("{path}.type"),
                "not-supported",
                format!("{path} must reference an {kind}"),
            ));
        }
    }
    let r = map.get("reference").ok_or_else(|| {
        FhirError::required(
            &format!("{path}.reference"),
            format!("{path}.reference is required: {kind}/<id>"),
        )
    })?;
    let r = string(r, &format!("{path}.reference"))?;
    match r.strip_prefix(kind).and_then(|rest| rest.strip_prefix('/')) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id.to_owned()),
        _ => Err(FhirError::unprocessable(
            &format!("{path}.reference"),
            "not-supported",
            format!(
                "{path}.reference must be {kind}/<id> (a facility id registered in the region), not `{r}`"
            ),
        )),
    }
}

/// Read a POSTed ServiceRequest into the body of `POST /v1/cases`. Errors name the element.
/// `default_origin` is the acting user's facility, used when `requester` is left out.
pub fn submit_body(v: &Value, default_origin: Option<&FacilityId>) -> Result<SubmitBody, FhirError> {
    let sr = v.as_object().ok_or_else(|| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            "the body must be a JSON object: a FHIR ServiceRequest",
        )
    })?;
    match sr.get("resourceType").and_then(Value::as_str) {
        Some("ServiceRequest") => {}
        Some(other) => {
            return Err(FhirError::invalid(
                "resourceType",
                format!("resourceType is `{other}`; POST /fhir/ServiceRequest takes a ServiceRequest"),
            ))
        }
        None => {
            return Err(FhirError::required("resourceType", "resourceType \"ServiceRequest\" is required"))
        }
    }
    let mut allowed: Vec<&str> = CREATE_ELEMENTS.to_vec();
    allowed.extend_from_slice(IGNORED_ELEMENTS);
    only(sr, "ServiceRequest", &allowed)?;
    let get = |name: &str| sr.get(name);

    // status and intent (both required by R4).
    let status = get("status").ok_or_else(|| {
        FhirError::required(
            "ServiceRequest.status",
            "ServiceRequest.status is required: active (send now) or draft",
        )
    })?;
    let draft = match string(status, "ServiceRequest.status")? {
        "active" => false,
        "draft" => true,
        other => {
            return Err(FhirError::unprocessable(
                "ServiceRequest.status",
                "business-rule",
                format!("ServiceRequest.status `{other}` cannot be created; use active (send now) or draft"),
            ))
        }
    };
    let intent = get("intent").ok_or_else(|| {
        FhirError::required("ServiceRequest.intent", "ServiceRequest.intent is required: order")
    })?;
    let intent = string(intent, "ServiceRequest.intent")?;
    if intent != "order" {
        return Err(FhirError::unprocessable(
            "ServiceRequest.intent",
            "business-rule",
            format!("ServiceRequest.intent `{intent}` is not accepted; a referral is an order"),
        ));
    }

    let priority = match get("priority") {
        None => Priority::Routine,
        Some(p) => {
            let code = string(p, "ServiceRequest.priority")?;
            Priority::ALL.into_iter().find(|x| x.code() == code).ok_or_else(|| {
                FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "code-invalid",
                    format!(
                        "ServiceRequest.priority `{code}` is not a request priority; use routine, \
                         urgent, asap or stat"
                    ),
                )
                .at("ServiceRequest.priority")
            })?
        }
    };

    let patient_id = resident_id(get("subject"))?;
    let (complaint, modality) = complaint_and_modality(sr)?;
    let specialty = specialty_of(get("category"))?;
    let origin = match get("requester") {
        Some(r) => FacilityId(reference_to(r, "ServiceRequest.requester", "Organization")?),
        None => default_origin.cloned().ok_or_else(|| {
            FhirError::unprocessable(
                "ServiceRequest.requester",
                "required",
                "name the requesting facility in ServiceRequest.requester: Organization/<facility id>",
            )
        })?,
    };
    let target = match get("performer") {
        None => None,
        Some(p) => Some(preferred_target(p)?),
    };
    let green_channel = match get("extension") {
        None => None,
        Some(exts) => green_channel_of(exts)?,
    };

    Ok(SubmitBody {
        patient_id,
        complaint,
        vitals: Vitals::default(),
        priority,
        green_channel,
        specialty,
        modality,
        origin: Some(origin),
        target,
        draft,
    })
}

/// The raw resident ID in `ServiceRequest.subject.identifier` (system [`SYSTEM_RESIDENT_ID`]).
fn resident_id(subject: Option<&Value>) -> Result<String, FhirError> {
    let subject = subject.ok_or_else(|| {
        FhirError::required(
            "ServiceRequest.subject",
            format!(
                "ServiceRequest.subject is required: {{\"identifier\": {{\"system\": \
                 \"{SYSTEM_RESIDENT_ID}\", \"value\": <resident ID>}}}}"
            ),
        )
    })?;
    let subject = object(subject, "ServiceRequest.subject")?;
    only(subject, "ServiceRequest.subject", &["identifier", "reference", "display", "type"])?;
    if subject.contains_key("reference") {
        return Err(FhirError::unprocessable(
            "ServiceRequest.subject.reference",
            "not-supported",
            format!(
                "ServiceRequest.subject.reference is not supported: patients are not stored here; \
                 identify the patient by ServiceRequest.subject.identifier with system \
                 {SYSTEM_RESIDENT_ID}"
            ),
        ));
    }
    let identifier = subject.get("identifier").ok_or_else(|| {
        FhirError::required(
            "ServiceRequest.subject.identifier",
            format!("ServiceRequest.subject.identifier is required, with system {SYSTEM_RESIDENT_ID}"),
        )
    })?;
    let identifier = object(identifier, "ServiceRequest.subject.identifier")?;
    only(identifier, "ServiceRequest.subject.identifier", &["use", "system", "value"])?;
    let system = identifier
        .get("system")
        .map(|s| string(s, "ServiceRequest.subject.identifier.system"))
        .transpose()?;
    if system != Some(SYSTEM_RESIDENT_ID) {
        return Err(FhirError::unprocessable(
            "ServiceRequest.subject.identifier.system",
            "value",
            format!(
                "ServiceRequest.subject.identifier.system must be {SYSTEM_RESIDENT_ID} (the patient's \
                 resident identity number; the server computes the {SYSTEM_PATIENT_KEY} key itself)"
            ),
        ));
    }
    identifier
        .get("value")
        .ok_or_else(|| {
            FhirError::required(
                "ServiceRequest.subject.identifier.value",
                "ServiceRequest.subject.identifier.value is required: the resident ID",
            )
        })
        .and_then(|v| string(v, "ServiceRequest.subject.identifier.value"))
        .map(str::to_owned)
}

/// The chief complaint (`code.text`, else the first `reasonCode[].text`) and the modality (DICOM
/// codings in `code.coding` and `orderDetail[].coding`, which must agree).
fn complaint_and_modality(sr: &Map<String, Value>) -> Result<(String, Option<Modality>), FhirError> {
    let get = |name: &str| sr.get(name);
    let mut modalities: Vec<(String, Modality)> = Vec::new();
    let mut collect_modalities = |codings: &[Coding], path: &str| -> Result<(), FhirError> {
        for (system, code) in codings {
            if *system == Some(SYSTEM_DCM) {
                let m = modality_of_dcm(code).ok_or_else(|| {
                    FhirError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "code-invalid",
                        format!(
                            "{path}: DICOM modality `{code}` is not read here; use DX, CR, CT, MR, US or ECG"
                        ),
                    )
                    .at(path)
                })?;
                modalities.push((path.to_owned(), m));
            }
        }
        Ok(())
    };
    let mut complaint = None;
    if let Some(code) = get("code") {
        let (codings, text) = codeable_concept(code, "ServiceRequest.code")?;
        collect_modalities(&codings, "ServiceRequest.code.coding")?;
        complaint = text.map(str::to_owned);
    }
    if let Some(reasons) = get("reasonCode") {
        for (i, r) in array(reasons, "ServiceRequest.reasonCode")?.iter().enumerate() {
            let (_, text) = codeable_concept(r, &format!("ServiceRequest.reasonCode[{i}]"))?;
            if complaint.is_none() {
                complaint = text.map(str::to_owned);
            }
        }
    }
    if let Some(details) = get("orderDetail") {
        for (i, d) in array(details, "ServiceRequest.orderDetail")?.iter().enumerate() {
            let path = format!("ServiceRequest.orderDetail[{i}]");
            let (codings, _) = codeable_concept(d, &path)?;
            collect_modalities(&codings, &format!("{path}.coding"))?;
        }
    }
    let complaint = complaint.ok_or_else(|| {
        FhirError::unprocessable(
            "ServiceRequest.code.text",
            "required",
            "give the chief complaint in ServiceRequest.code.text (or reasonCode[0].text)",
        )
    })?;
    let modality = match modalities.split_first() {
        None => None,
        Some(((_, first), rest)) => {
            if let Some((path, other)) = rest.iter().find(|(_, m)| m != first) {
                return Err(FhirError::unprocessable(
                    path,
                    "business-rule",
                    format!(
                        "{path} asks for modality {other} but an earlier coding asks for {first}; a \
                         case has one modality"
                    ),
                ));
            }
            Some(*first)
        }
    };
    Ok((complaint, modality))
}

/// The specialty: the one code of the `category` codings with system [`SYSTEM_SPECIALTY`].
fn specialty_of(categories: Option<&Value>) -> Result<String, FhirError> {
    let mut specialties: Vec<&str> = Vec::new();
    if let Some(categories) = categories {
        for (i, c) in array(categories, "ServiceRequest.category")?.iter().enumerate() {
            let (codings, _) = codeable_concept(c, &format!("ServiceRequest.category[{i}]"))?;
            specialties.extend(codings.iter().filter(|(s, _)| *s == Some(SYSTEM_SPECIALTY)).map(|(_, c)| *c));
        }
    }
    specialties.sort_unstable();
    specialties.dedup();
    match specialties.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(FhirError::unprocessable(
            "ServiceRequest.category",
            "required",
            format!(
                "name the specialty needed in ServiceRequest.category[0].coding[0] with system \
                 {SYSTEM_SPECIALTY}, e.g. cardiology"
            ),
        )),
        several => Err(FhirError::unprocessable(
            "ServiceRequest.category",
            "business-rule",
            format!(
                "ServiceRequest.category names several specialties ({}); a case needs one",
                several.join(", ")
            ),
        )),
    }
}

/// The preferred reading facility: `performer` with exactly one Organization.
fn preferred_target(performer: &Value) -> Result<FacilityId, FhirError> {
    match array(performer, "ServiceRequest.performer")? {
        [one] => Ok(FacilityId(reference_to(one, "ServiceRequest.performer[0]", "Organization")?)),
        _ => Err(FhirError::unprocessable(
            "ServiceRequest.performer",
            "business-rule",
            "ServiceRequest.performer takes at most one Organization: the preferred reading facility",
        )),
    }
}

/// The green channel named by an [`EXT_GREEN_CHANNEL`] extension. Other (non-modifier)
/// extensions are ignored, as FHIR's extensibility rules allow.
fn green_channel_of(extensions: &Value) -> Result<Option<GreenChannel>, FhirError> {
    let mut found = None;
    for (i, e) in array(extensions, "ServiceRequest.extension")?.iter().enumerate() {
        let path = format!("ServiceRequest.extension[{i}]");
        let map = object(e, &path)?;
        let url = map
            .get("url")
            .ok_or_else(|| FhirError::required(&format!("{path}.url"), format!("{path}.url is required")))
            .and_then(|u| string(u, &format!("{path}.url")))?;
        if url != EXT_GREEN_CHANNEL {
            continue;
        }
        only(map, &path, &["url", "valueCode"])?;
        let element = format!("{path}.valueCode");
        let code = map
            .get("valueCode")
            .ok_or_else(|| {
                FhirError::required(&element, format!("{element} is required: stroke or chest-pain"))
            })
            .and_then(|c| string(c, &element))?;
        found = Some(match code {
            "stroke" => GreenChannel::Stroke,
            "chest-pain" => GreenChannel::ChestPain,
            other => {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "code-invalid",
                    format!("{element} `{other}` is not a green channel; use stroke or chest-pain"),
                )
                .at(element))
            }
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yilian_referral::case::{CaseEvent, Report, Routing, SlaBreach, SlaState};
    use yilian_referral::Actor;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const RAW_ID: &str = "11010119900307001X";

    fn case() -> Case {
        Case {
            id: CaseId("C00000007".into()),
            patient: PatientKey(KEY.into()),
            complaint: "chest pain for 2 h".into(),
            vitals: Vitals::default(),
            priority: Priority::Urgent,
            green_channel: None,
            specialty: "cardiology".into(),
            modality: Some(Modality::Ecg),
            origin: FacilityId("TS".into()),
            requester: "nurse".into(),
            exam_facility: FacilityId("TS".into()),
            preferred_target: Some(FacilityId("CTY".into())),
            created_at_ms: 1_735_689_600_123,
            status: TaskStatus::Requested,
            status_since_ms: 1_735_689_600_123,
            owner: Some(SpecialistId("DR".into())),
            routing: Routing { offer_deadline_ms: Some(1_735_691_400_123), ..Routing::default() },
            sla: SlaState {
                requested_at_ms: 1_735_689_600_123,
                accept_due_ms: 1_735_693_200_123,
                ..SlaState::default()
            },
            reports: Vec::new(),
            transfers: Vec::new(),
            history: vec![CaseEvent {
                at_ms: 1_735_689_600_123,
                actor: Actor::staff("nurse", "TS"),
                rule: "submitted".into(),
                from: TaskStatus::Draft,
                to: TaskStatus::Requested,
                owner: Some(SpecialistId("DR".into())),
                reason: None,
                audit_seq: 1,
            }],
        }
    }

    fn good_request() -> Value {
        json!({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "priority": "urgent",
            "subject": { "identifier": { "system": SYSTEM_RESIDENT_ID, "value": RAW_ID } },
            "requester": { "reference": "Organization/TS" },
            "performer": [{ "reference": "Organization/CTY" }],
            "code": { "text": "chest pain for 2 h" },
            "category": [{ "coding": [{ "system": SYSTEM_SPECIALTY, "code": "cardiology" }] }],
            "orderDetail": [{ "coding": [{ "system": SYSTEM_DCM, "code": "ECG" }] }],
        })
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().map(|m| m.remove(key));
        v
    }

    fn refused(v: &Value) -> FhirError {
        submit_body(v, None).expect_err("must be refused")
    }

    #[test]
    fn instants_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(instant(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(instant(1_735_689_600_123), "2025-01-01T00:00:00.123Z");
        assert_eq!(instant(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn task_carries_lifecycle_owner_deadline_and_pseudonymous_subject() {
        let t = task(&case());
        assert_eq!(t["resourceType"], "Task");
        assert_eq!(t["id"], "C00000007");
        assert_eq!(t["status"], "requested");
        assert_eq!(t["intent"], "order");
        assert_eq!(t["priority"], "urgent");
        assert_eq!(t["focus"]["reference"], "ServiceRequest/C00000007");
        assert_eq!(t["for"]["identifier"]["system"], SYSTEM_PATIENT_KEY);
        assert_eq!(t["for"]["identifier"]["value"], KEY);
        assert_eq!(t["owner"]["reference"], "Practitioner/DR");
        assert_eq!(t["requester"]["reference"], "Organization/TS");
        assert_eq!(t["businessStatus"]["text"], "offered to DR");
        assert_eq!(t["authoredOn"], "2025-01-01T00:00:00.123Z");
        // The offer lapses before the accept clock: that is the next deadline.
        assert_eq!(t["restriction"]["period"]["end"], "2025-01-01T00:30:00.123Z");
        assert!(t.get("output").is_none() && t.get("note").is_none() && t.get("statusReason").is_none());
    }

    #[test]
    fn task_shows_reports_breaches_and_reasons() {
        let mut c = case();
        c.status = TaskStatus::InProgress;
        c.status_since_ms += 10_000;
        c.sla.accepted_at_ms = Some(c.created_at_ms + 5_000);
        c.sla.report_due_ms = Some(c.created_at_ms + 60_000);
        c.sla.reported_at_ms = Some(c.created_at_ms + 20_000);
        c.sla.breaches.push(SlaBreach { round: 0, clock: SlaClock::Accept, due_ms: 1, at_ms: 2 });
        c.reports.push(Report { text: "sinus rhythm".into(), by: SpecialistId("DR".into()), at_ms: 3 });
        c.history.push(CaseEvent {
            at_ms: c.status_since_ms,
            actor: Actor::specialist("DR"),
            rule: "owner-or-requester-resumes".into(),
            from: TaskStatus::OnHold,
            to: TaskStatus::InProgress,
            owner: Some(SpecialistId("DR".into())),
            reason: Some("images arrived".into()),
            audit_seq: 9,
        });
        let t = task(&c);
        assert_eq!(t["status"], "in-progress");
        assert_eq!(t["businessStatus"]["text"], "reported by DR");
        assert_eq!(t["statusReason"]["text"], "images arrived");
        assert_eq!(t["output"][0]["valueString"], "sinus rhythm");
        assert!(t["output"][0]["type"]["text"].as_str().is_some_and(|s| s.contains("DR")));
        assert!(t["note"][0]["text"].as_str().is_some_and(|s| s.contains("acceptance")));
        assert_eq!(t["executionPeriod"]["start"], instant(c.created_at_ms + 5_000));
        assert!(t.get("restriction").is_none(), "report filed: no deadline left");
        c.routing.unrouted_since_ms = Some(1);
        c.status = TaskStatus::Requested;
        assert!(business_status(&c).starts_with("unrouted"));
    }

    #[test]
    fn service_request_maps_status_codings_and_performers() {
        let mut c = case();
        c.green_channel = Some(GreenChannel::ChestPain);
        let sr = service_request(&c);
        assert_eq!(sr["status"], "active");
        assert_eq!(sr["intent"], "order");
        assert_eq!(sr["code"]["text"], "chest pain for 2 h");
        assert_eq!(sr["category"][0]["coding"][0]["system"], SYSTEM_SPECIALTY);
        assert_eq!(sr["category"][0]["coding"][0]["code"], "cardiology");
        assert_eq!(sr["orderDetail"][0]["coding"][0]["code"], "ECG");
        assert_eq!(sr["subject"]["identifier"]["system"], SYSTEM_PATIENT_KEY);
        assert_eq!(sr["performer"][0]["reference"], "Organization/CTY");
        assert_eq!(sr["performer"][1]["reference"], "Practitioner/DR");
        assert_eq!(sr["extension"][0]["valueCode"], "chest-pain");
        let expected = [
            (TaskStatus::Draft, "draft"),
            (TaskStatus::Received, "active"),
            (TaskStatus::OnHold, "on-hold"),
            (TaskStatus::Completed, "completed"),
            (TaskStatus::Rejected, "revoked"),
            (TaskStatus::Cancelled, "revoked"),
            (TaskStatus::Failed, "revoked"),
            (TaskStatus::EnteredInError, "entered-in-error"),
        ];
        for (status, code) in expected {
            assert_eq!(service_request_status(status), code, "{status}");
        }
        for m in [Modality::Dr, Modality::Ct, Modality::Mr, Modality::Us, Modality::Ecg] {
            assert_eq!(modality_of_dcm(dcm_code(m).0), Some(m));
        }
        assert_eq!(modality_of_dcm("CR"), Some(Modality::Dr));
    }

    #[test]
    fn bundle_and_outcome_shapes() {
        let b = searchset("http://h/fhir", "http://h/fhir/Task", vec![("Task", "C1".into(), json!({}))]);
        assert_eq!(b["total"], 1);
        assert_eq!(b["entry"][0]["fullUrl"], "http://h/fhir/Task/C1");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
        let empty = searchset("http://h/fhir", "http://h/fhir/Task", Vec::new());
        assert!(empty.get("entry").is_none(), "FHIR JSON has no empty arrays");
        let oo = FhirError::invalid("ServiceRequest.x", "bad x").operation_outcome();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["code"], "invalid");
        assert_eq!(oo["issue"][0]["expression"][0], "ServiceRequest.x");
        assert_eq!(issue_code_for(StatusCode::NOT_FOUND), "not-found");
    }

    #[test]
    fn capability_statement_lists_what_search_accepts() {
        let cs = capability_statement("http://h/fhir");
        assert_eq!(cs["fhirVersion"], FHIR_VERSION);
        let resources = cs["rest"][0]["resource"].as_array().expect("resources");
        for r in resources {
            let kind = match r["type"].as_str() {
                Some("Task") => SearchKind::Task,
                Some("ServiceRequest") => SearchKind::ServiceRequest,
                // Searched by its own handler (`entity` only); covered by the audit trail test.
                Some("AuditEvent") => continue,
                other => panic!("unexpected {other:?}"),
            };
            for p in r["searchParam"].as_array().expect("params") {
                let name = p["name"].as_str().expect("name");
                let name = if name == "patient" { "patient:identifier" } else { name };
                let value = if name == "patient:identifier" {
                    format!("{SYSTEM_PATIENT_KEY}|{KEY}")
                } else {
                    "x".into()
                };
                let err = parse_search(kind, &[(name.to_owned(), value)], |_| Err("unused".into())).err();
                assert!(
                    err.as_ref().is_none_or(|e| e.code != "not-supported"),
                    "{name} on {kind:?}: {err:?}"
                );
            }
        }
        let creates: Vec<&Value> =
            resources.iter().flat_map(|r| r["interaction"].as_array().into_iter().flatten()).collect();
        assert_eq!(creates.iter().filter(|i| i["code"] == "create").count(), 1);
    }

    #[test]
    fn a_good_service_request_becomes_a_submission() {
        let b = submit_body(&good_request(), None).expect("good");
        assert_eq!(b.patient_id, RAW_ID);
        assert_eq!(b.complaint, "chest pain for 2 h");
        assert_eq!(b.priority, Priority::Urgent);
        assert_eq!(b.specialty, "cardiology");
        assert_eq!(b.modality, Some(Modality::Ecg));
        assert_eq!(b.origin, Some(FacilityId("TS".into())));
        assert_eq!(b.target, Some(FacilityId("CTY".into())));
        assert!(!b.draft && b.green_channel.is_none());

        let minimal = without(without(without(good_request(), "priority"), "requester"), "orderDetail");
        let minimal = with(without(minimal, "code"), "reasonCode", json!([{ "text": "palpitations" }]));
        let minimal = with(minimal, "status", json!("draft"));
        let minimal = with(minimal, "id", json!("ignored"));
        let b = submit_body(&minimal, Some(&FacilityId("TS2".into()))).expect("minimal");
        assert_eq!(b.priority, Priority::Routine);
        assert_eq!(b.origin, Some(FacilityId("TS2".into())));
        assert_eq!(b.complaint, "palpitations");
        assert!(b.draft && b.modality.is_none());

        let cr = with(
            good_request(),
            "code",
            json!({
                "text": "x",
                "coding": [
                    { "system": SYSTEM_DCM, "code": "CR" },
                    { "system": "http://loinc.org", "code": "1" },
                ],
            }),
        );
        let cr = with(cr, "orderDetail", json!([{ "coding": [{ "system": SYSTEM_DCM, "code": "DX" }] }]));
        assert_eq!(submit_body(&cr, None).expect("CR and DX agree").modality, Some(Modality::Dr));

        let green = with(
            good_request(),
            "extension",
            json!([
                { "url": EXT_GREEN_CHANNEL, "valueCode": "stroke" },
                { "url": "urn:other", "valueString": "ignored" },
            ]),
        );
        assert_eq!(submit_body(&green, None).expect("green").green_channel, Some(GreenChannel::Stroke));
    }

    #[test]
    fn bad_service_requests_are_refused_naming_the_element() {
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!([]), 400, ""),
            (with(good_request(), "resourceType", json!("Task")), 400, "resourceType"),
            (without(good_request(), "status"), 400, "ServiceRequest.status"),
            (with(good_request(), "status", json!("completed")), 422, "ServiceRequest.status"),
            (without(good_request(), "intent"), 400, "ServiceRequest.intent"),
            (with(good_request(), "intent", json!("plan")), 422, "ServiceRequest.intent"),
            (with(good_request(), "priority", json!(5)), 400, "ServiceRequest.priority"),
            (with(good_request(), "priority", json!("high")), 400, "ServiceRequest.priority"),
            (without(good_request(), "subject"), 400, "ServiceRequest.subject"),
            (
                with(good_request(), "subject", json!({ "reference": "Patient/1" })),
                422,
                "ServiceRequest.subject.reference",
            ),
            (
                with(
                    good_request(),
                    "subject",
                    json!({ "identifier": { "system": SYSTEM_PATIENT_KEY, "value": KEY } }),
                ),
                422,
                "ServiceRequest.subject.identifier.system",
            ),
            (
                with(good_request(), "subject", json!({ "identifier": { "system": SYSTEM_RESIDENT_ID } })),
                400,
                "ServiceRequest.subject.identifier.value",
            ),
            (with(good_request(), "note", json!([{ "text": "x" }])), 422, "ServiceRequest.note"),
            (with(good_request(), "code", json!({ "coding": [] })), 400, "ServiceRequest.code.coding"),
            (
                with(good_request(), "code", json!({ "coding": [{ "code": "x" }] })),
                422,
                "ServiceRequest.code.text",
            ),
            (
                with(good_request(), "category", json!([{ "text": "cardiology" }])),
                422,
                "ServiceRequest.category",
            ),
            (
                with(
                    good_request(),
                    "orderDetail",
                    json!([{ "coding": [{ "system": SYSTEM_DCM, "code": "PT" }] }]),
                ),
                422,
                "ServiceRequest.orderDetail[0].coding",
            ),
            (
                with(
                    good_request(),
                    "code",
                    json!({ "text": "x", "coding": [{ "system": SYSTEM_DCM, "code": "CT" }] }),
                ),
                422,
                "ServiceRequest.orderDetail[0].coding",
            ),
            (
                with(good_request(), "requester", json!({ "reference": "Practitioner/DR" })),
                422,
                "ServiceRequest.requester.reference",
            ),
            (
                with(
                    good_request(),
                    "performer",
                    json!([{ "reference": "Organization/A" }, { "reference": "Organization/B" }]),
                ),
                422,
                "ServiceRequest.performer",
            ),
            (
                with(
                    good_request(),
                    "extension",
                    json!([{ "url": EXT_GREEN_CHANNEL, "valueCode": "burns" }]),
                ),
                400,
                "ServiceRequest.extension[0].valueCode",
            ),
        ];
        for (body, status, element) in cases {
            let e = refused(&body);
            assert_eq!(e.status.as_u16(), status, "{body}: {e:?}");
            if !element.is_empty() {
                assert_eq!(e.expression.as_deref(), Some(element), "{body}: {e:?}");
                assert!(e.diagnostics.contains(element.split('[').next().unwrap_or(element)), "{e:?}");
            }
            assert!(!e.diagnostics.contains(RAW_ID), "never echo the resident ID: {e:?}");
        }
        let no_origin = without(good_request(), "requester");
        assert_eq!(refused(&no_origin).expression.as_deref(), Some("ServiceRequest.requester"));
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn search(kind: SearchKind, pairs: &[(&str, &str)]) -> Result<Search, FhirError> {
        parse_search(kind, &params(pairs), |raw| {
            if raw == RAW_ID {
                Ok(PatientKey(KEY.into()))
            } else {
                Err("not a valid 18-character resident identity number".into())
            }
        })
    }

    #[test]
    fn searches_parse_tokens_references_and_alternatives() {
        let c = case();
        let s = search(
            SearchKind::Task,
            &[("status", "requested,accepted"), ("owner", "Practitioner/DR"), ("priority", "urgent")],
        )
        .expect("parse");
        assert!(s.matches(&c));
        assert_eq!(s.statuses, Some(vec![TaskStatus::Requested, TaskStatus::Accepted]));
        for (k, v) in [
            ("owner", "DR"),
            ("owner", "http://h/fhir/Practitioner/DR"),
            ("requester", "Organization/TS"),
            ("focus", "ServiceRequest/C00000007"),
            ("_id", "C00000001,C00000007"),
            ("status", "http://hl7.org/fhir/task-status|requested"),
            ("priority", "|urgent"),
        ] {
            assert!(search(SearchKind::Task, &[(k, v)]).expect(v).matches(&c), "{k}={v}");
        }
        for (k, v) in [("owner", "OTHER"), ("status", "completed"), ("priority", "stat"), ("focus", "C9")] {
            assert!(!search(SearchKind::Task, &[(k, v)]).expect(v).matches(&c), "{k}={v}");
        }
        let sr =
            search(SearchKind::ServiceRequest, &[("status", "active"), ("performer", "Organization/CTY")])
                .expect("sr");
        assert!(sr.matches(&c));
        assert!(search(SearchKind::ServiceRequest, &[("performer", "Practitioner/DR")])
            .expect("p")
            .matches(&c));
        assert!(!search(SearchKind::ServiceRequest, &[("performer", "Practitioner/CTY")])
            .expect("p")
            .matches(&c));
        assert!(!search(SearchKind::ServiceRequest, &[("status", "revoked")]).expect("r").matches(&c));
        let stale =
            search(SearchKind::Task, &[("consistency", "stale"), ("_format", "json")]).expect("stale");
        assert!(
            stale.stale
                && stale.self_url("http://h/fhir", SearchKind::Task) == "http://h/fhir/Task?_format=json"
        );
    }

    #[test]
    fn patient_search_hashes_and_never_echoes_the_resident_id() {
        let c = case();
        let value = format!("{SYSTEM_RESIDENT_ID}|{RAW_ID}");
        let s = search(SearchKind::Task, &[("patient:identifier", &value)]).expect("patient");
        assert!(s.matches(&c));
        let link = s.self_url("http://h/fhir", SearchKind::Task);
        assert!(!link.contains(RAW_ID) && link.contains(KEY), "{link}");
        let by_key = format!("{SYSTEM_PATIENT_KEY}|{KEY}");
        assert!(search(SearchKind::ServiceRequest, &[("subject:identifier", &by_key)])
            .expect("key")
            .matches(&c));
        let bad = format!("{SYSTEM_RESIDENT_ID}|110101199003070010");
        let e = search(SearchKind::Task, &[("patient:identifier", &bad)]).expect_err("bad id");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!e.diagnostics.contains("110101199003070010"));
    }

    #[test]
    fn bad_searches_are_400_naming_the_parameter() {
        for pairs in [
            vec![("name", "x")],
            vec![("patient", "Patient/1")],
            vec![("owner", "DR")], // not a ServiceRequest parameter
            vec![("status:not", "requested")],
            vec![("_count", "10")],
        ] {
            let e = search(SearchKind::ServiceRequest, &pairs).expect_err("unknown");
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "not-supported"), "{pairs:?}");
            assert_eq!(e.expression.as_deref(), Some(pairs[0].0));
        }
        for pairs in [
            vec![("status", "bogus")],
            vec![("status", "")],
            vec![("status", "requested,")],
            vec![("status", "requested"), ("status", "accepted")],
            vec![("status", "http://other|requested")],
            vec![("owner", "Organization/DR")],
            vec![("owner", "a/Practitioner/DR")],
            vec![("priority", "high")],
            vec![("patient:identifier", "no-system")],
            vec![("patient:identifier", "urn:yilian:patient-key|11010119900307001X")],
            vec![("consistency", "sometimes")],
            vec![("_format", "xml")],
        ] {
            let e = search(SearchKind::Task, &pairs).expect_err("bad");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{pairs:?}");
            assert_eq!(e.expression.as_deref(), Some(pairs[0].0), "{pairs:?}");
        }
    }
}
