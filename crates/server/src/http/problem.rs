//! The one mapping from a [`HubError`] to an RFC 9457 `application/problem+json` answer.
//!
//! Every refusal has its code's status and title (the registry in `crate::error`), the
//! detail of this occurrence and, for configuration refusals, every diagnostic with its KW
//! code, message, fix and a JSON pointer into the request body.

use crate::error::{HubError, ProblemDiagnostic};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:keyway:problem:CODE`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The stable code.
    pub code: String,
    /// Every diagnostic, for refused configurations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<ProblemDiagnostic>,
    /// The scope the operation needs (`insufficient_scope`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The request's id (also in `X-Request-Id`): quote it when asking about this refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// The problem document of a refusal.
    pub fn of(e: &HubError) -> Problem {
        let code = e.code();
        Problem {
            type_uri: format!("urn:keyway:problem:{code}"),
            title: code.title().to_owned(),
            status: code.status(),
            detail: e.detail().to_owned(),
            code: code.as_str().to_owned(),
            diagnostics: e.diagnostics().to_vec(),
            scope: e.scope().map(|s| s.as_str().to_owned()),
            request_id: super::request_id::current(),
        }
    }
}

/// The HTTP status of a refusal.
pub fn status_of(e: &HubError) -> StatusCode {
    StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        let body = serde_json::to_vec(&Problem::of(&self)).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"keyway\""));
        }
        // RFC 6750 section 3.1: the scope the request needed.
        if let Some(scope) = self.scope() {
            let challenge = format!("Bearer realm=\"keyway\", error=\"insufficient_scope\", scope=\"{scope}\"");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
