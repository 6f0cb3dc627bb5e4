//! The mix-up defence (RFC 9207): an authorization response must come from the server the
//! user was sent to. This is the one check; the CLI and `keyway serve` call it through
//! [`crate::Connector::check_callback_issuer`].

/// What a connection expects of a callback's `iss`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerPolicy {
    /// The issuer the profile declares (rendered for the connection's environment).
    pub issuer: Option<String>,
    /// The origin (`scheme://host[:port]`) of the authorize endpoint the user was sent to:
    /// what an `iss` must name when the profile declares no issuer.
    pub authorize_origin: Option<String>,
    /// The server always sends `iss`: a callback without it is refused.
    pub required: bool,
}

/// Why a callback's `iss` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The server always sends `iss`, and this callback has none.
    #[error("the authorization response has no `iss`, and this provider always sends one (RFC 9207)")]
    Missing,
    /// The callback names another server. Neither value is quoted: the received one is
    /// attacker-controlled text.
    #[error("the authorization response comes from another issuer than the one the user was sent to (RFC 9207)")]
    Mismatch,
}

/// Checks a callback's `iss` (absent: `None`) against the policy. Runs before any code
/// exchange, so a mixed-up response never reaches a token endpoint.
pub fn check_issuer(policy: &IssuerPolicy, received: Option<&str>) -> Result<(), IssuerError> {
    let Some(received) = received else {
        return if policy.required { Err(IssuerError::Missing) } else { Ok(()) };
    };
    let matches = match (&policy.issuer, &policy.authorize_origin) {
        // RFC 9207 section 2.4: simple string comparison with the known issuer.
        (Some(issuer), _) => received == issuer,
        (None, Some(origin)) => origin_of(received).as_deref() == Some(origin.as_str()),
        (None, None) => false,
    };
    if matches { Ok(()) } else { Err(IssuerError::Mismatch) }
}

/// The origin (`scheme://host[:port]`) of a URL, when it is http(s).
pub fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(required: bool) -> IssuerPolicy {
        IssuerPolicy {
            issuer: Some("https://id.example.com/tenant".into()),
            authorize_origin: Some("https://id.example.com".into()),
            required,
        }
    }

    #[test]
    fn a_declared_issuer_is_compared_exactly() {
        assert_eq!(check_issuer(&declared(false), Some("https://id.example.com/tenant")), Ok(()));
        for other in ["https://id.example.com/tenant/", "https://id.example.com", "https://evil.example/tenant", ""] {
            assert_eq!(check_issuer(&declared(false), Some(other)), Err(IssuerError::Mismatch), "{other}");
        }
    }

    #[test]
    fn without_a_declared_issuer_the_origin_must_match() {
        let policy =
            IssuerPolicy { authorize_origin: Some("https://id.example.com".into()), ..IssuerPolicy::default() };
        assert_eq!(check_issuer(&policy, Some("https://id.example.com/any/path")), Ok(()));
        assert_eq!(check_issuer(&policy, Some("https://id.example.com.evil.example")), Err(IssuerError::Mismatch));
        assert_eq!(check_issuer(&policy, Some("not a url")), Err(IssuerError::Mismatch));
        assert_eq!(check_issuer(&IssuerPolicy::default(), Some("https://x")), Err(IssuerError::Mismatch));
    }

    #[test]
    fn a_missing_iss_is_refused_only_when_required() {
        assert_eq!(check_issuer(&declared(false), None), Ok(()));
        assert_eq!(check_issuer(&declared(true), None), Err(IssuerError::Missing));
    }
}
