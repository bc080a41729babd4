//! Access to DICOMweb reads follows the referral: a GET naming a study in its path is allowed
//! only when the caller may read that study's case, and the read is audited with the study UID.
//! Searches, even those scoped to one study, filter their answers instead (see `qido`), so they
//! are not routed through this guard and each study is audited once; stores are
//! checked by the domain when their manifest entries are recorded.

use crate::api::access::authorize_study_read;
use crate::api::auth::Authenticated;
use crate::api::AppState;
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// Middleware: authorize (and audit) a read of the study named by the `study` path parameter.
pub async fn study_in_path(
    State(app): State<AppState>,
    auth: Option<Authenticated>,
    params: Option<Path<HashMap<String, String>>>,
    request: Request,
    next: Next,
) -> Response {
    let study = params.and_then(|Path(mut p)| p.remove("study"));
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    if let (true, Some(study), Some(auth)) = (reading, study, auth) {
        if let Err(bad) = super::check_uid("study", &study) {
            return bad.into_response();
        }
        if let Err(refused) = authorize_study_read(&app, &auth, &study).await {
            return refused.into_response();
        }
    }
    next.run(request).await
}
