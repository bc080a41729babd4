//! DICOMweb served by each node under `/dicomweb` (PS3.18): STOW-RS to store, QIDO-RS to
//! search, WADO-RS to retrieve instances, metadata, frames, bulk data and rendered frames.
//! Enough for OHIF and other viewers; CORS is open so a viewer served from elsewhere can read.
//!
//! Every request needs a bearer token. Reads of a study are allowed and audited by the study's
//! case ([`guard`]); searches answer only studies the caller may read; stores are checked by the
//! domain like any other write. Handlers are thin: they parse the request, run the blocking work
//! of [`yilian_dicom::web`] on the blocking pool, and answer.

mod body;
mod guard;
mod qido;
mod stow;
mod wado;

use super::auth::require_auth;
use super::{ApiError, AppState};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use yilian_dicom::WebError;

/// The DICOMweb routes, to be nested under `/dicomweb`: authenticated, access-checked, with
/// CORS answered before authentication (browsers send preflights without credentials).
pub fn routes(state: AppState) -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    let instance = "/studies/:study/series/:series/instances/:instance";
    // Searches check access and audit per study answered themselves (`qido`); retrievals naming
    // a study are authorised and audited once by the guard.
    let searches = Router::new()
        .route("/studies", get(qido::studies).post(stow::store))
        .route("/studies/:study/series", get(qido::study_series))
        .route("/studies/:study/instances", get(qido::study_instances))
        .route("/studies/:study/series/:series/instances", get(qido::series_instances))
        .route("/series", get(qido::all_series))
        .route("/instances", get(qido::all_instances));
    let retrievals = Router::new()
        .route("/studies/:study", get(wado::study).post(stow::store_in_study))
        .route("/studies/:study/metadata", get(wado::study_metadata))
        .route("/studies/:study/series/:series", get(wado::series))
        .route("/studies/:study/series/:series/metadata", get(wado::series_metadata))
        .route(instance, get(wado::instance))
        .route(&format!("{instance}/metadata"), get(wado::instance_metadata))
        .route(&format!("{instance}/frames/:frames"), get(wado::frames))
        .route(&format!("{instance}/frames/:frames/rendered"), get(wado::rendered_frame))
        .route(&format!("{instance}/rendered"), get(wado::rendered_instance))
        .route(&format!("{instance}/bulkdata/*path"), get(wado::bulkdata))
        .route_layer(from_fn_with_state(state.clone(), guard::study_in_path));
    searches
        .merge(retrievals)
        .route_layer(from_fn_with_state(state, require_auth))
        .layer(DefaultBodyLimit::disable())
        .layer(cors)
}

/// The absolute URL of the DICOMweb root as the client reached it (for retrieve URLs and bulk
/// data URIs): `X-Forwarded-Proto`/`X-Forwarded-Host` from a reverse proxy, else the Host
/// header. Some clients (dicomweb-client) send Host without the port, so a Host without one
/// gets the port this node listens on.
fn base_url(headers: &HeaderMap, api_addr: &str) -> String {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty());
    if let Some(host) = header("x-forwarded-host") {
        let proto = header("x-forwarded-proto").unwrap_or("http");
        return format!("{proto}://{host}/dicomweb");
    }
    let port = api_addr.rsplit_once(':').map_or("80", |(_, p)| p);
    match header("host") {
        Some(host) if host.contains(':') || port == "80" => format!("http://{host}/dicomweb"),
        Some(host) => format!("http://{host}:{port}/dicomweb"),
        None => format!("http://{api_addr}/dicomweb"),
    }
}

/// Refuse a path parameter that is not a UID (digits and dots, at most 64 characters).
fn check_uid(what: &str, value: &str) -> Result<(), ApiError> {
    if yilian_referral::is_dicom_uid(value) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{what} {:?} is not a UID; give digits and dots only, e.g. 1.2.840.113619.2.55.3",
        value.chars().take(80).collect::<String>()
    )))
}

/// The Accept header, if any.
fn accept(headers: &HeaderMap) -> Option<String> {
    headers.get(axum::http::header::ACCEPT).and_then(|h| h.to_str().ok()).map(str::to_owned)
}

/// Run blocking imaging work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the imaging worker failed ({e}); retry the request")))?
}

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        let message = e.to_string();
        match e {
            WebError::BadRequest { .. } | WebError::NoPixelData => ApiError::bad_request(message),
            WebError::NoSuchFrame { .. } => ApiError::not_found(message),
            WebError::NotAcceptable { .. } => ApiError::not_acceptable(message),
            WebError::Unsupported { .. } | WebError::Render { .. } => ApiError::unprocessable(message),
            _ => ApiError::internal(message),
        }
    }
}

impl From<yilian_dicom::CatalogError> for ApiError {
    fn from(e: yilian_dicom::CatalogError) -> Self {
        ApiError::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uids_are_taken_as_uids() {
        assert!(check_uid("study", "1.2.840.10008").is_ok());
        for bad in ["", "1..2", "1.2/3", "1.a", &"1".repeat(65)] {
            assert!(check_uid("study", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_urls_keep_the_port_the_client_used() {
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&h, "127.0.0.1:7201"), "http://127.0.0.1:7201/dicomweb");
        h.insert("host", "example.org".parse().unwrap());
        assert_eq!(base_url(&h, "127.0.0.1:7201"), "http://example.org:7201/dicomweb");
        h.insert("host", "example.org:9000".parse().unwrap());
        assert_eq!(base_url(&h, "127.0.0.1:7201"), "http://example.org:9000/dicomweb");
        h.insert("x-forwarded-host", "pacs.example.org".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(base_url(&h, "127.0.0.1:7201"), "https://pacs.example.org/dicomweb");
    }
}
