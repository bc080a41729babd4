//! FHIR R4 (4.0.1) facade over referral cases.
//!
//! A case is served as two resources with the case id as their id: the `ServiceRequest` (what
//! the clinic asked for) and the `Task` (the work of reading it, with the lifecycle). Endpoints,
//! all answering `application/fhir+json`, errors as `OperationOutcome`:
//!
//! - `GET /fhir/metadata`: the CapabilityStatement.
//! - `GET /fhir/Task/{id}`, `GET /fhir/ServiceRequest/{id}`: read.
//! - `GET /fhir/Task?status=&owner=&priority=&requester=&focus=&_id=&patient:identifier=` and
//!   `GET /fhir/ServiceRequest?status=&priority=&requester=&performer=&_id=&patient:identifier=`:
//!   searchset Bundles; unknown parameters are refused with 400.
//! - `GET /fhir/AuditEvent?entity=Task/{id}`: the audit trail (hash chain in extensions) as a
//!   searchset Bundle, oldest first.
//! - `POST /fhir/ServiceRequest`: submit a case as the authenticated user
//!   (staff of the requesting facility); 201 with `Location: /fhir/ServiceRequest/{id}`.
//!
//! Reads are linearizable unless `consistency=stale` is given. Acting on a case (accept, report,
//! ...) stays with `/v1/cases/{id}/{action}`. The mapping lives in [`resources`].

mod audit_event;
mod resources;

use super::access::{authorize_case, readable_cases};
use super::auth::Authenticated;
use super::{ApiError, ApiState, AppState};
use crate::patient_key::PatientKeyError;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use resources::{
    capability_statement, element_of_domain_field, parse_search, searchset, service_request, submit_body,
    task, FhirError, SearchKind, FHIR_JSON,
};
use serde_json::Value;
use std::cmp::Reverse;
use yilian_referral::{
    Case, CaseFilter, CaseId, CaseOperation, Change, DomainError, Outcome, PatientKey, Role,
};

/// The facade's routes, merged into the node's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata).fallback(method_not_allowed))
        .route("/fhir/Task", get(search_tasks).fallback(method_not_allowed))
        .route("/fhir/Task/:id", get(read_task).fallback(method_not_allowed))
        .route(
            "/fhir/ServiceRequest",
            get(search_service_requests).post(create_service_request).fallback(method_not_allowed),
        )
        .route("/fhir/ServiceRequest/:id", get(read_service_request).fallback(method_not_allowed))
        .route("/fhir/AuditEvent", get(search_audit_events).fallback(method_not_allowed))
        .route("/fhir/*rest", any(unknown_path))
}

/// An API error answered as an OperationOutcome (for refusals made before a FHIR handler runs).
pub(super) fn outcome_response(e: ApiError) -> Response {
    FhirError::from(e).into_response()
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        fhir_json(self.status, &self.operation_outcome())
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError::with_status(e.status(), e.message())
    }
}

/// A domain refusal as an OperationOutcome, naming the ServiceRequest element when known.
fn domain_error(e: DomainError) -> FhirError {
    let element = match &e {
        DomainError::Invalid { field, .. } => element_of_domain_field(field),
        _ => None,
    };
    let err = FhirError::from(ApiError::from(e));
    match element {
        Some(el) => err.at(el),
        None => err,
    }
}

/// `body` as `application/fhir+json` with `status`.
fn fhir_json(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))], body.to_string()).into_response()
}

/// The facade's base URL as the client reached it (for `fullUrl` and links).
fn base_url(app: &ApiState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)))
        .map(str::to_owned)
        .unwrap_or_else(|| app.node.info().api_addr.clone());
    format!("http://{host}/fhir")
}

/// The query string as pairs; a malformed one is a 400.
fn query_pairs(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, FhirError> {
    q.map(|Query(pairs)| pairs).map_err(|e| {
        FhirError::new(StatusCode::BAD_REQUEST, "invalid", format!("invalid query string: {}", e.body_text()))
    })
}

/// Wait until this node reflects every committed write, unless a stale read was asked for.
async fn barrier(app: &ApiState, stale: bool) -> Result<(), FhirError> {
    if !stale {
        app.node.linearizable_barrier().await.map_err(|e| FhirError::from(ApiError::from(e)))?;
    }
    Ok(())
}

/// The patient key of a resident ID; the error text never contains the ID.
fn key_for(app: &ApiState, raw_id: &str) -> Result<PatientKey, String> {
    app.patient_keys.key_for(raw_id).map_err(|e| match e {
        PatientKeyError::BadId(why) => format!("not a valid 18-character resident identity number: {why}"),
        other => other.to_string(),
    })
}

/// `GET /fhir/metadata`
async fn metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
    fhir_json(StatusCode::OK, &capability_statement(&base_url(&app, &headers)))
}

/// Options of a read: only `consistency` and `_format`.
fn read_is_stale(pairs: &[(String, String)]) -> Result<bool, FhirError> {
    let mut stale = false;
    for (name, value) in pairs {
        match (name.as_str(), value.as_str()) {
            ("consistency", "stale") => stale = true,
            ("consistency", "linearizable") => stale = false,
            ("_format", "json" | "application/json" | "application/fhir+json") => {}
            _ => {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("parameter `{name}={value}` is not supported on a read; only consistency=stale"),
                )
                .at(name.clone()))
            }
        }
    }
    Ok(stale)
}

/// Read case `id` (an audited read under the access rules) and map it with `to_resource`.
async fn read(
    app: &ApiState,
    auth: &Authenticated,
    kind: SearchKind,
    id: &str,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    to_resource: fn(&Case) -> Value,
) -> Result<Response, FhirError> {
    barrier(app, read_is_stale(&query_pairs(q)?)?).await?;
    let case = authorize_case(app, auth, &CaseId(id.to_owned()), CaseOperation::Read).await.map_err(|e| {
        if e.status() == StatusCode::NOT_FOUND {
            FhirError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{}/{id} does not exist; ids are case ids such as C00000001", kind.name()),
            )
        } else {
            FhirError::from(e)
        }
    })?;
    Ok(fhir_json(StatusCode::OK, &to_resource(&case)))
}

/// `GET /fhir/Task/{id}`
async fn read_task(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    read(&app, &auth, SearchKind::Task, &id, q, task).await
}

/// `GET /fhir/ServiceRequest/{id}`
async fn read_service_request(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    read(&app, &auth, SearchKind::ServiceRequest, &id, q, service_request).await
}

/// Search the cases the caller may see as `kind`: most urgent first, then oldest first; each
/// case answered is an audited read.
async fn search(
    app: &ApiState,
    auth: &Authenticated,
    headers: &HeaderMap,
    kind: SearchKind,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    let pairs = query_pairs(q)?;
    let search = parse_search(kind, &pairs, |id| key_for(app, id))?;
    barrier(app, search.stale).await?;
    let base = base_url(app, headers);
    let mut cases: Vec<Case> = {
        let state = app.node.state().read();
        let all = CaseFilter::default();
        state.region.find_cases(&all).filter(|c| search.matches(c)).cloned().collect()
    };
    cases.sort_by_key(|c| (Reverse(c.priority), c.created_at_ms, c.id.clone()));
    let entries = readable_cases(app, auth, cases, "case.read")
        .await?
        .iter()
        .map(|c| {
            let resource = match kind {
                SearchKind::Task => task(c),
                SearchKind::ServiceRequest => service_request(c),
            };
            (kind.name(), c.id.0.clone(), resource)
        })
        .collect();
    Ok(fhir_json(StatusCode::OK, &searchset(&base, &search.self_url(&base, kind), entries)))
}

/// `GET /fhir/Task?...`
async fn search_tasks(
    State(app): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    search(&app, &auth, &headers, SearchKind::Task, q).await
}

/// `GET /fhir/AuditEvent?entity=Task/{id}`: the audit trail (optionally one case's), oldest first.
async fn search_audit_events(
    State(app): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    auth.require(&[Role::Auditor, Role::Admin], "the audit trail")?;
    let mut case = None;
    let mut stale = false;
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "entity" => {
                let id = v.strip_prefix("Task/").unwrap_or(&v);
                case = Some(CaseId(id.to_owned()));
            }
            "consistency" if v == "stale" => stale = true,
            "_format" if v.contains("json") => {}
            other => {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("unsupported AuditEvent search parameter `{other}`; use entity=Task/<case id>"),
                ))
            }
        }
    }
    if !stale {
        app.node.linearizable_barrier().await.map_err(|e| FhirError::from(ApiError::from(e)))?;
    }
    let base = base_url(&app, &headers);
    let entries: Vec<(&str, String, Value)> = {
        let state = app.node.state().read();
        state
            .region
            .audit_events()
            .filter(|e| case.as_ref().is_none_or(|c| e.case.as_ref() == Some(c)))
            .map(|e| ("AuditEvent", e.seq.to_string(), audit_event::audit_event(e)))
            .collect()
    };
    let self_url = match &case {
        Some(c) => format!("{base}/AuditEvent?entity=Task/{c}"),
        None => format!("{base}/AuditEvent"),
    };
    Ok(fhir_json(StatusCode::OK, &searchset(&base, &self_url, entries)))
}

/// `GET /fhir/ServiceRequest?...`
async fn search_service_requests(
    State(app): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, FhirError> {
    search(&app, &auth, &headers, SearchKind::ServiceRequest, q).await
}

/// `POST /fhir/ServiceRequest`: submit a case.
async fn create_service_request(
    State(app): State<AppState>,
    headers: HeaderMap,
    auth: Result<Authenticated, ApiError>,
    body: Bytes,
) -> Result<Response, FhirError> {
    let auth = auth?;
    let actor = auth.actor.clone();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let media = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media != "application/fhir+json" && media != "application/json" {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!("Content-Type `{media}` is not accepted; send application/fhir+json"),
            ));
        }
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        FhirError::new(StatusCode::BAD_REQUEST, "structure", format!("the body is not valid JSON: {e}"))
    })?;
    let body = submit_body(&value, actor.facility.as_ref())?;
    // Check the resident ID here so the error names the FHIR element (and never echoes the ID).
    key_for(&app, &body.patient_id).map_err(|why| {
        FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "value",
            format!("ServiceRequest.subject.identifier.value is {why}"),
        )
        .at("ServiceRequest.subject.identifier.value")
    })?;
    let submission = body.into_submission(&app, actor.facility.as_ref())?;
    let case_id = match app.node.write(auth.command(Change::SubmitCase(submission))).await {
        Ok(Ok(Outcome::Case { case_id, .. })) => case_id,
        Ok(Ok(other)) => {
            return Err(FhirError::with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unexpected outcome of a case submission: {other:?}"),
            ))
        }
        Ok(Err(refused)) => {
            if matches!(refused, DomainError::NotAllowed { .. }) {
                let why = refused.to_string();
                super::access::audit_refused_write(&app, &auth, None, "case.create-denied", &why).await;
            }
            return Err(domain_error(refused));
        }
        Err(cluster) => return Err(ApiError::from(cluster).into()),
    };
    // The write is committed on the leader; make this node reflect it before reading it back.
    barrier(&app, false).await?;
    let resource = {
        let state = app.node.state().read();
        service_request(state.region.case(&case_id).map_err(domain_error)?)
    };
    let mut response = fhir_json(StatusCode::CREATED, &resource);
    let location = HeaderValue::from_str(&format!("/fhir/ServiceRequest/{case_id}")).map_err(|_| {
        FhirError::with_status(StatusCode::INTERNAL_SERVER_ERROR, format!("case id `{case_id}` is not ASCII"))
    })?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// A known path with a method it does not serve.
async fn method_not_allowed(method: Method, uri: Uri) -> FhirError {
    FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        format!("{method} {} is not supported; see GET /fhir/metadata", uri.path()),
    )
}

/// A path under /fhir that serves nothing.
async fn unknown_path(uri: Uri) -> FhirError {
    FhirError::new(
        StatusCode::NOT_FOUND,
        "not-supported",
        format!(
            "{} is not served: this facade serves Task and ServiceRequest (see GET /fhir/metadata)",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_do_not_conflict_and_api_errors_keep_their_status() {
        let _ = routes();
        let e = FhirError::from(ApiError::not_found("case `C1` does not exist"));
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "not-found"));
        let e = domain_error(DomainError::invalid("complaint", "must not be empty"));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.expression.as_deref(), Some("ServiceRequest.code.text"));
        assert_eq!(domain_error(DomainError::not_allowed("r", "no")).code, "forbidden");
    }

    #[test]
    fn reads_take_only_consistency() {
        let pairs = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(read_is_stale(&pairs("consistency", "stale")), Ok(true));
        assert_eq!(read_is_stale(&[]), Ok(false));
        assert_eq!(
            read_is_stale(&pairs("_summary", "true")).map_err(|e| e.status),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}
