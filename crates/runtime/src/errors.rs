//! Provider errors, read from any body shape, and what they mean according to the profile.

use crate::http::TransportError;
use keyway_diagnostics::Diagnostic;
use keyway_manifest::model::{ErrorKind, ErrorPhase, Profile};
use serde::Serialize;
use serde_json::Value;

/// An error answer from the provider, as the wire said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderError {
    /// Where it came from.
    pub phase: ErrorPhase,
    /// The HTTP status, when it came from an HTTP answer (not from a redirect).
    pub status: Option<u16>,
    /// The OAuth `error` (or an API's `errorCode`).
    pub error: String,
    /// `error_description` (or an API's `message`).
    pub description: Option<String>,
}

impl ProviderError {
    /// A refusal whose body says nothing readable: its status alone (`HTTP 401`).
    pub fn from_status(phase: ErrorPhase, status: u16) -> ProviderError {
        ProviderError { phase, status: Some(status), error: format!("HTTP {status}"), description: None }
    }

    /// Reads an error body: an OAuth JSON object, or Salesforce's API shape (an array of
    /// `{message, errorCode}`), whatever the Content-Type says (Salesforce sends none).
    pub fn from_body(phase: ErrorPhase, status: Option<u16>, body: &[u8]) -> Option<ProviderError> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let object = match &value {
            Value::Object(o) => o,
            Value::Array(items) => items.first()?.as_object()?,
            _ => return None,
        };
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(|s| truncate(s, 500));
        let error = text("error").or_else(|| text("errorCode"))?;
        let description = text("error_description").or_else(|| text("message"));
        Some(ProviderError { phase, status, error, description })
    }
}

/// Provider text is shown in errors: keep it bounded, and on one line.
fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// What the runtime does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisKind {
    /// The grant is gone: the user must connect again.
    Reauthorize,
    /// Transient: try again later.
    RetryLater,
    /// An admin must change a setting of the app or the connection.
    FixConfiguration,
    /// The client sent something wrong: a bug to report.
    ClientBug,
    /// Neither the profile's error map nor the standard codes know this error.
    Unknown,
}

impl DiagnosisKind {
    /// Every kind.
    pub const ALL: [DiagnosisKind; 5] = [
        DiagnosisKind::Reauthorize,
        DiagnosisKind::RetryLater,
        DiagnosisKind::FixConfiguration,
        DiagnosisKind::ClientBug,
        DiagnosisKind::Unknown,
    ];

    /// The kind as shown (and serialized): `retry_later`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DiagnosisKind::Reauthorize => "reauthorize",
            DiagnosisKind::RetryLater => "retry_later",
            DiagnosisKind::FixConfiguration => "fix_configuration",
            DiagnosisKind::ClientBug => "client_bug",
            DiagnosisKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for DiagnosisKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorKind> for DiagnosisKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Reauthorize => DiagnosisKind::Reauthorize,
            ErrorKind::RetryLater => DiagnosisKind::RetryLater,
            ErrorKind::FixConfiguration => DiagnosisKind::FixConfiguration,
            ErrorKind::ClientBug => DiagnosisKind::ClientBug,
        }
    }
}

/// A provider error matched against the profile's error map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// What to do about it.
    pub kind: DiagnosisKind,
    /// The id of the error-map rule that matched.
    pub rule: Option<String>,
    /// The cause, from the profile.
    pub meaning: Option<String>,
    /// The fix, rendered for this connection.
    pub hint: Option<String>,
    /// The error as the provider said it.
    pub provider: ProviderError,
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.provider.error)?;
        if let Some(d) = &self.provider.description {
            write!(f, " ({d})")?;
        }
        if let Some(m) = &self.meaning {
            write!(f, ": {m}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, " Fix: {h}")?;
        }
        Ok(())
    }
}

/// The first rule of the profile's error map that matches, or `None`.
pub(crate) fn matching_rule<'p>(
    profile: &'p Profile,
    error: &ProviderError,
) -> Option<(&'p str, &'p keyway_manifest::model::ErrorRule)> {
    profile
        .errors
        .iter()
        .find(|(_, rule)| {
            let m = &rule.matches;
            m.error.as_deref().is_none_or(|e| e == error.error)
                && m.status.is_none_or(|s| Some(s) == error.status)
                && m.during.is_none_or(|p| p == error.phase)
                && m.description.as_deref().is_none_or(|pattern| {
                    let text = error.description.as_deref().unwrap_or_default();
                    keyway_validate::compile_pattern(pattern, false).is_ok_and(|re| re.is_match(text))
                })
        })
        .map(|(id, rule)| (id.as_str(), rule))
}

/// Why a flow failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// The provider answered with an error; the diagnosis says what it means.
    #[error("the provider refused the request: {0}")]
    Provider(Box<Diagnosis>),
    /// No usable answer: timeout, connection failure or a 5xx.
    #[error("{endpoint} endpoint: {source}")]
    Transport {
        /// Which endpoint.
        endpoint: &'static str,
        /// What went wrong.
        source: TransportError,
    },
    /// The answer could not be read. The body is not repeated: it may hold tokens.
    #[error("{endpoint} endpoint: unreadable answer: {detail}")]
    InvalidResponse {
        /// Which endpoint.
        endpoint: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The callback's `state` does not belong to a pending authorization of this session.
    #[error("authorization state rejected: {0}")]
    State(StateError),
    /// The callback's `iss` names another server (RFC 9207): refused before any code exchange.
    #[error("callback refused: {0}")]
    Issuer(crate::issuer::IssuerError),
    /// The profile does not offer this grant or endpoint.
    #[error("{0}")]
    Unsupported(String),
    /// A wait ran out (the device flow's user never answered).
    #[error("{0}")]
    TimedOut(&'static str),
    /// The connector configuration is not usable for this flow.
    #[error("the connection is misconfigured: {0}")]
    Configuration(String),
    /// The code exchange's ID token does not bind the code to this authorization (its `nonce`
    /// or audience), or is missing where it must: refused, nothing stored.
    #[error("the code exchange's ID token was refused: {0}")]
    IdToken(&'static str),
    /// `api.base_url` does not render to a URL this client may reach. Its fields may come from
    /// the provider's token answer (Salesforce's `instance_url`): such an answer is refused as
    /// it arrives, so nothing is stored and nothing is sent there.
    #[error("no usable API base URL: {0}")]
    ApiBaseUrl(String),
    /// The token set was issued for another connection; nothing was sent.
    #[error("the token set was issued for {found}, not for this connection ({expected}); nothing was sent")]
    ForeignTokens {
        /// Where the set was issued.
        found: Box<crate::TokenOrigin>,
        /// The connection asked to use it.
        expected: Box<crate::TokenOrigin>,
    },
}

impl FlowError {
    /// Whether retrying the same request later may succeed: transport failures, unreadable
    /// answers, and refusals diagnosed `retry_later` (`temporarily_unavailable`,
    /// `server_error`, or a profile rule saying so).
    pub fn is_transient(&self) -> bool {
        match self {
            FlowError::Transport { source, .. } => source.is_transient(),
            FlowError::InvalidResponse { .. } => true,
            FlowError::Provider(d) => d.kind == DiagnosisKind::RetryLater,
            _ => false,
        }
    }

    /// The diagnosis, when the provider answered with an error.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            FlowError::Provider(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Never issued, or already used.
    #[error("unknown or already used state")]
    Unknown,
    /// Issued to another session.
    #[error("the state belongs to another session")]
    WrongSession,
    /// Issued too long ago.
    #[error("the authorization took too long; start again")]
    Expired,
}

/// A connector configuration that fails the profile's checks.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the connector configuration is invalid ({} problem(s)): {}", .0.len(), .0.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; "))]
pub struct ConfigError(pub Vec<Diagnostic>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oauth_and_salesforce_api_error_shapes() {
        let oauth = ProviderError::from_body(
            ErrorPhase::Token,
            Some(400),
            br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
        )
        .expect("oauth error");
        assert_eq!(
            (oauth.error.as_str(), oauth.description.as_deref()),
            ("invalid_grant", Some("expired access/refresh token"))
        );
        let api = ProviderError::from_body(
            ErrorPhase::Api,
            Some(401),
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        )
        .expect("api error");
        assert_eq!(
            (api.error.as_str(), api.description.as_deref()),
            ("INVALID_SESSION_ID", Some("Session expired or invalid"))
        );
        for junk in [&b""[..], b"<html>oops</html>", b"{}", b"[]", b"\"x\"", br#"{"error": 5}"#] {
            assert_eq!(ProviderError::from_body(ErrorPhase::Token, Some(400), junk), None);
        }
    }

    #[test]
    fn provider_text_is_bounded_and_single_line() {
        let long = format!(r#"{{"error":"e","error_description":"{}\u0007\n"}}"#, "x".repeat(2000));
        let e = ProviderError::from_body(ErrorPhase::Token, None, long.as_bytes()).expect("error");
        let d = e.description.expect("description");
        assert!(d.chars().count() <= 501 && !d.contains('\n') && !d.contains('\u{7}'));
    }
}
