//! The one error type of the HTTP API, rendered as RFC 9457 `application/problem+json`.
//!
//! Every refusal has a stable `code` (listed in `docs/server.md`), the right status, and,
//! for configuration refusals, every diagnostic with its KW code, message, fix and a JSON
//! pointer into the request body. No message quotes a secret or a request body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyway_diagnostics::Diagnostic;
use serde::Serialize;
use utoipa::ToSchema;

/// One problem found in a request, as the validator reports it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ProblemDiagnostic {
    /// The stable diagnostic code: `KW0506`.
    pub code: String,
    /// `error`, `warning` or `note`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// JSON pointer into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl From<&Diagnostic> for ProblemDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        ProblemDiagnostic {
            code: d.code.as_str().to_owned(),
            severity: format!("{:?}", d.severity).to_lowercase(),
            message: d.message.clone(),
            fix: d.help.clone(),
            pointer: d.pointer.clone(),
        }
    }
}

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
}

/// Why an API request failed.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    diagnostics: Vec<ProblemDiagnostic>,
}

impl ApiError {
    /// A problem with a status, a stable code, a title and a detail.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, code, title, detail: detail.into(), diagnostics: Vec::new() }
    }

    /// Adds diagnostics.
    pub fn with_diagnostics(mut self, diagnostics: Vec<ProblemDiagnostic>) -> ApiError {
        self.diagnostics = diagnostics;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The diagnostics.
    pub fn diagnostics(&self) -> &[ProblemDiagnostic] {
        &self.diagnostics
    }

    /// 404 for an id that names nothing.
    pub fn not_found(what: &'static str, id: &str) -> ApiError {
        let shown: String = id.chars().take(100).flat_map(char::escape_default).collect();
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not found", format!("no {what} `{shown}`"))
    }

    /// 422 for a request the validator refused.
    pub fn invalid_configuration(diagnostics: &[Diagnostic]) -> ApiError {
        let errors: Vec<ProblemDiagnostic> =
            diagnostics.iter().filter(|d| d.is_error()).map(ProblemDiagnostic::from).collect();
        let count = errors.len();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_configuration",
            "The configuration is invalid",
            format!("{count} problem{} in the request; see `diagnostics`", if count == 1 { "" } else { "s" }),
        )
        .with_diagnostics(errors)
    }

    /// 422 for one bad field.
    pub fn invalid_field(pointer: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "The request is invalid", message.clone())
            .with_diagnostics(vec![ProblemDiagnostic {
                code: "request".to_owned(),
                severity: "error".to_owned(),
                message,
                fix: None,
                pointer: Some(pointer.to_owned()),
            }])
    }

    /// 503 when the database fails.
    pub fn store(e: &crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The database is unavailable",
            "the database could not be reached; try again",
        )
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("urn:keyway:problem:{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            diagnostics: self.diagnostics.clone(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::store(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"keyway\""));
        }
        response
    }
}
