//! The hub's one error, and every problem code it can carry.
//!
//! A [`HubError`] is what any hub call (and the HTTP layer's own refusals: bodies, routes)
//! fails with: a [`ProblemCode`], a detail for this occurrence, an optional fix, and the
//! diagnostics of a refused configuration. The HTTP layer turns it into an RFC 9457 problem
//! document (the API) or an error page, in one place each (`http::problem`).
//!
//! Codes are listed once, below, with their HTTP status and title, like the diagnostic codes
//! of `keyway-diagnostics`. A code, once shipped, keeps its meaning; each is documented in
//! `docs/server.md` (a test compares the table with [`ProblemCode::ALL`]).

use keyway_diagnostics::Diagnostic;
use serde::Serialize;
use utoipa::ToSchema;

macro_rules! problem_codes {
    ($( $name:ident = $code:literal, $status:literal, $title:literal; )*) => {
        /// A stable problem code: what kind of refusal a request met.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $( #[doc = $title] $name, )*
        }

        impl ProblemCode {
            /// Every code, as documented.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$name,)*];

            /// The code as answered: `needs_reauth`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ProblemCode::$name => $code,)* }
            }

            /// The HTTP status a refusal with this code answers.
            pub const fn status(self) -> u16 {
                match self { $(ProblemCode::$name => $status,)* }
            }

            /// A short summary of the problem type (the problem document's `title`).
            pub const fn title(self) -> &'static str {
                match self { $(ProblemCode::$name => $title,)* }
            }
        }
    };
}

problem_codes! {
    // Requests.
    Unauthorized = "unauthorized", 401, "Unauthorized";
    InsufficientScope = "insufficient_scope", 403, "The API key lacks the scope this operation needs";
    RouteNotFound = "route_not_found", 404, "Not found";
    MethodNotAllowed = "method_not_allowed", 405, "Method not allowed";
    NotFound = "not_found", 404, "Not found";
    MalformedJson = "malformed_json", 400, "The body is not valid JSON";
    BodyUnreadable = "body_unreadable", 400, "The body could not be read";
    BodyTooLarge = "body_too_large", 413, "The body is too large";
    UnsupportedMediaType = "unsupported_media_type", 415, "The body must be JSON";
    InvalidRequest = "invalid_request", 422, "The request is invalid";
    InvalidQuery = "invalid_query", 400, "The query is invalid";
    RequestTimeout = "request_timeout", 408, "The request body did not arrive in time";
    TooManyConnections = "too_many_connections", 503, "Too many connections";
    // Integrations and profiles.
    InvalidConfiguration = "invalid_configuration", 422, "The configuration is invalid";
    Conflict = "conflict", 409, "The integration changed meanwhile";
    IntegrationInUse = "integration_in_use", 409, "The integration has connections";
    NoIntegrations = "no_integrations", 409, "There is nothing to connect";
    ProfileUnavailable = "profile_unavailable", 409, "The integration's profile is not loaded";
    ProfilesInvalid = "profiles_invalid", 422, "The profiles have errors";
    ReloadFailed = "reload_failed", 503, "Reload failed";
    // Connections and tokens.
    ConnectionPending = "connection_pending", 409, "The connection has no tokens yet";
    ConnectionRevoked = "connection_revoked", 409, "The connection was revoked";
    NeedsReauth = "needs_reauth", 409, "The connection needs to be authorized again";
    RefreshRefused = "refresh_refused", 409, "The provider refused the refresh";
    ProviderUnavailable = "provider_unavailable", 503, "The provider is unavailable";
    NoAccessToken = "no_access_token", 409, "The connection holds entered credentials, not an access token";
    InvalidCredentials = "invalid_credentials", 422, "Check the credential fields";
    CredentialsRefused = "credentials_refused", 422, "The provider refused these credentials";
    // The database and the keys.
    StoreUnavailable = "store_unavailable", 503, "The database is unavailable";
    RowUnreadable = "row_unreadable", 500, "A stored row cannot be read";
    SecretUndecryptable = "secret_undecryptable", 500, "A stored secret cannot be decrypted";
    TokensUnreadable = "tokens_unreadable", 500, "The stored tokens are unreadable";
    // The connect page and the callback.
    SessionInvalid = "session_invalid", 403, "This connect link is invalid, used or expired";
    SessionMissing = "session_missing", 403, "No connect session";
    SessionExpired = "session_expired", 403, "This connect session has expired";
    CrossSite = "cross_site", 403, "Refused";
    IntegrationNotAllowed = "integration_not_allowed", 403, "This integration is not offered in this session";
    InvalidParameters = "invalid_parameters", 422, "Check the highlighted fields";
    DuplicateParameter = "duplicate_parameter", 400, "A field was sent twice";
    FlowUnsupported = "flow_unsupported", 409, "The profile has no authorization code flow";
    StateMissing = "state_missing", 400, "The provider's answer has no state";
    StateUnknown = "state_unknown", 400, "This sign-in answer is unknown or was already used";
    StateWrongSession = "state_wrong_session", 400, "This sign-in answer belongs to another browser session";
    StateExpired = "state_expired", 400, "The sign-in took too long";
    CallbackMismatch = "callback_mismatch", 400, "This answer arrived at another provider's callback";
    IssuerMismatch = "issuer_mismatch", 400, "The answer does not come from the authorization server you were sent to";
    NonceMismatch = "nonce_mismatch", 400, "The answer was issued for another sign-in";
    ProviderRefused = "provider_refused", 400, "The provider refused";
    ExchangeFailed = "exchange_failed", 502, "Signing in could not be finished";
    // The guide page.
    GuideProfileUnknown = "guide_profile_unknown", 404, "No such guide";
    GuideRequestInvalid = "guide_request_invalid", 400, "This selection has no guide";
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a request, as the validator (or the request check) reports it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ProblemDiagnostic {
    /// The stable diagnostic code (`KW0506`), or `request` for a request field's problem.
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

/// Why a hub call failed. Never quotes a secret or a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct HubError {
    code: ProblemCode,
    detail: String,
    fix: Option<String>,
    diagnostics: Vec<ProblemDiagnostic>,
    scope: Option<crate::domain::Scope>,
}

impl HubError {
    /// A refusal with its code and what went wrong this time.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> HubError {
        HubError { code, detail: detail.into(), fix: None, diagnostics: Vec::new(), scope: None }
    }

    /// Adds what to do about it (shown on pages).
    #[must_use]
    pub fn with_fix(mut self, fix: impl Into<String>) -> HubError {
        self.fix = Some(fix.into());
        self
    }

    /// Adds diagnostics.
    #[must_use]
    pub fn with_diagnostics(mut self, diagnostics: Vec<ProblemDiagnostic>) -> HubError {
        self.diagnostics = diagnostics;
        self
    }

    /// Adds the scope the refused operation needs (`insufficient_scope`).
    #[must_use]
    pub fn with_scope(mut self, scope: crate::domain::Scope) -> HubError {
        self.scope = Some(scope);
        self
    }

    /// The scope the refused operation needs.
    pub fn scope(&self) -> Option<crate::domain::Scope> {
        self.scope
    }

    /// The same refusal, told in other words (a page's, say).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> HubError {
        self.detail = detail.into();
        self
    }

    /// An id that names nothing.
    pub fn not_found(what: &str, id: &str) -> HubError {
        let shown: String = id.chars().take(100).flat_map(char::escape_default).collect();
        HubError::new(ProblemCode::NotFound, format!("no {what} `{shown}`"))
    }

    /// A configuration the validator refused: its errors, located.
    pub fn invalid_configuration(diagnostics: &[Diagnostic]) -> HubError {
        let errors: Vec<ProblemDiagnostic> =
            diagnostics.iter().filter(|d| d.is_error()).map(ProblemDiagnostic::from).collect();
        let count = errors.len();
        HubError::new(
            ProblemCode::InvalidConfiguration,
            format!("{count} problem{} in the request; see `diagnostics`", if count == 1 { "" } else { "s" }),
        )
        .with_diagnostics(errors)
    }

    /// One bad field of a request.
    pub fn invalid_field(pointer: &str, message: impl Into<String>) -> HubError {
        HubError::invalid_field_with_fix(pointer, message, None)
    }

    /// One bad field of a request, and how to fix it.
    pub fn invalid_field_with_fix(pointer: &str, message: impl Into<String>, fix: Option<String>) -> HubError {
        let message = message.into();
        HubError::new(ProblemCode::InvalidRequest, message.clone()).with_diagnostics(vec![ProblemDiagnostic {
            code: "request".to_owned(),
            severity: "error".to_owned(),
            message,
            fix,
            pointer: Some(pointer.to_owned()),
        }])
    }

    /// The code.
    pub fn code(&self) -> ProblemCode {
        self.code
    }

    /// What went wrong this time.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What to do.
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }

    /// The diagnostics of a refused configuration.
    pub fn diagnostics(&self) -> &[ProblemDiagnostic] {
        &self.diagnostics
    }

    /// Per-field messages of a refused connect form: (parameter name, message).
    pub fn field_errors(&self) -> impl Iterator<Item = (&str, String)> {
        self.diagnostics.iter().filter_map(|d| {
            let pointer = d.pointer.as_deref()?;
            let name = pointer.strip_prefix("/parameters/").or_else(|| pointer.strip_prefix("/fields/"))?;
            let text = match &d.fix {
                Some(fix) => format!("{}. {fix}", d.message.trim_end_matches('.')),
                None => d.message.clone(),
            };
            Some((name, text))
        })
    }
}

impl From<crate::store::StoreError> for HubError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        tracing::error!(error = %e, "store failure");
        match e {
            StoreError::Database(_) => {
                HubError::new(ProblemCode::StoreUnavailable, "the database could not be reached; try again")
                    .with_fix("Try again in a moment.")
            }
            // Names the row and column, never a value.
            StoreError::Corrupt { .. } => {
                HubError::new(ProblemCode::RowUnreadable, e.to_string()).with_fix("Restore the row from a backup.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert!((400..600).contains(&code.status()), "{code}");
            assert!(!code.title().is_empty());
        }
    }
}
