//! What the standard OAuth error codes mean, so a provider's refusal is understood without a
//! profile error map. A profile's map refines these (its rule wins when one matches).
//!
//! Sources: RFC 6749 sections 4.1.2.1 (authorization) and 5.2 (token), RFC 6750 section 3.1
//! (resource access), RFC 7009 section 2.2.1 (revocation), RFC 8628 section 3.5 (device
//! flow), OpenID Connect Core section 3.1.2.6 (authentication).

use keyway_manifest::model::{ErrorKind, ErrorPhase};

/// A standard error code's built-in meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardError {
    /// The `error` value on the wire.
    pub code: &'static str,
    /// Where it is defined.
    pub reference: &'static str,
    /// What to do about it.
    pub kind: ErrorKind,
    /// What it means.
    pub meaning: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

use ErrorKind::{ClientBug, FixConfiguration, Reauthorize, RetryLater};

/// Codes whose meaning depends on where they came from, first (phase-specific), then the rest.
const PHASED: &[(ErrorPhase, StandardError)] = &[
    (
        ErrorPhase::Authorize,
        StandardError {
            code: "invalid_request",
            reference: "RFC 6749 section 4.1.2.1",
            kind: ClientBug,
            meaning: "The authorization request is missing a parameter, has one twice or has an invalid one (a PKCE challenge the server insists on, for example).",
            fix: "Check the profile's PKCE policy and authorization parameters against the provider's documentation.",
        },
    ),
    (
        ErrorPhase::Authorize,
        StandardError {
            code: "unauthorized_client",
            reference: "RFC 6749 section 4.1.2.1",
            kind: FixConfiguration,
            meaning: "The app is not allowed to use the authorization code flow.",
            fix: "Enable the authorization code grant for the app in the provider's console.",
        },
    ),
    (
        ErrorPhase::Api,
        StandardError {
            code: "invalid_request",
            reference: "RFC 6750 section 3.1",
            kind: ClientBug,
            meaning: "The API request is malformed or carries the access token more than one way.",
            fix: "Report it: keyway sends the token only in the Authorization header.",
        },
    ),
];

const ANY_PHASE: &[StandardError] = &[
    StandardError {
        code: "invalid_request",
        reference: "RFC 6749 section 5.2",
        kind: ClientBug,
        meaning: "The request is missing a parameter, repeats one, or has an invalid one (a PKCE verifier, a redirect URI that differs from the authorization request's).",
        fix: "Check the profile's token parameters, PKCE policy and redirect URI against the provider's documentation.",
    },
    StandardError {
        code: "invalid_client",
        reference: "RFC 6749 section 5.2",
        kind: FixConfiguration,
        meaning: "The provider does not accept the client's credentials: unknown client id, wrong secret or key, or another client authentication method than the app's.",
        fix: "Check the client id and secret (or private key) and the profile's `client_auth` against the app's settings.",
    },
    StandardError {
        code: "invalid_grant",
        reference: "RFC 6749 section 5.2",
        kind: Reauthorize,
        meaning: "The code, refresh token or assertion is invalid, expired, revoked, already used, or was issued to another client or redirect URI.",
        fix: "Connect the account again (authorize anew).",
    },
    StandardError {
        code: "unauthorized_client",
        reference: "RFC 6749 section 5.2",
        kind: FixConfiguration,
        meaning: "The app is not allowed to use this grant.",
        fix: "Enable the grant for the app in the provider's console.",
    },
    StandardError {
        code: "unsupported_grant_type",
        reference: "RFC 6749 section 5.2",
        kind: FixConfiguration,
        meaning: "The provider does not support this grant.",
        fix: "Remove the grant from the profile's `auth.grants`, or use another flow.",
    },
    StandardError {
        code: "invalid_scope",
        reference: "RFC 6749 section 5.2",
        kind: FixConfiguration,
        meaning: "A requested scope is unknown, malformed, or more than the app or the user may have.",
        fix: "Request only scopes the app is allowed (check the selected actions, custom scopes and the app's scopes).",
    },
    StandardError {
        code: "access_denied",
        reference: "RFC 6749 section 4.1.2.1, RFC 8628 section 3.5",
        kind: Reauthorize,
        meaning: "The user (or the provider's policy) declined the authorization.",
        fix: "Ask the user to connect again and approve access.",
    },
    StandardError {
        code: "unsupported_response_type",
        reference: "RFC 6749 section 4.1.2.1",
        kind: FixConfiguration,
        meaning: "The provider does not issue authorization codes to this app.",
        fix: "Enable the authorization code flow for the app.",
    },
    StandardError {
        code: "server_error",
        reference: "RFC 6749 section 4.1.2.1",
        kind: RetryLater,
        meaning: "The provider failed while handling the request.",
        fix: "Try again later.",
    },
    StandardError {
        code: "temporarily_unavailable",
        reference: "RFC 6749 section 4.1.2.1",
        kind: RetryLater,
        meaning: "The provider is overloaded or down for maintenance.",
        fix: "Try again later.",
    },
    StandardError {
        code: "invalid_token",
        reference: "RFC 6750 section 3.1",
        kind: Reauthorize,
        meaning: "The access token is expired, revoked or malformed.",
        fix: "Refresh the token; if that fails, connect the account again.",
    },
    StandardError {
        code: "insufficient_scope",
        reference: "RFC 6750 section 3.1",
        kind: FixConfiguration,
        meaning: "The access token lacks a scope the call needs.",
        fix: "Select the action that needs it (or add the scope) and connect again.",
    },
    StandardError {
        code: "unsupported_token_type",
        reference: "RFC 7009 section 2.2.1",
        kind: FixConfiguration,
        meaning: "The provider cannot revoke this kind of token.",
        fix: "Revoke the other token of the set (`--token refresh` or `--token access`), or skip revocation for this provider.",
    },
    StandardError {
        code: "authorization_pending",
        reference: "RFC 8628 section 3.5",
        kind: RetryLater,
        meaning: "The user has not finished approving the device yet.",
        fix: "Keep polling at the given interval.",
    },
    StandardError {
        code: "slow_down",
        reference: "RFC 8628 section 3.5",
        kind: RetryLater,
        meaning: "Polling too often.",
        fix: "Poll five seconds less often from now on.",
    },
    StandardError {
        code: "expired_token",
        reference: "RFC 8628 section 3.5",
        kind: Reauthorize,
        meaning: "The device code expired before the user approved it.",
        fix: "Start the device flow again.",
    },
    StandardError {
        code: "interaction_required",
        reference: "OpenID Connect Core section 3.1.2.6",
        kind: Reauthorize,
        meaning: "The provider needs the user to interact, and the request asked it not to.",
        fix: "Connect again without `prompt=none`.",
    },
    StandardError {
        code: "login_required",
        reference: "OpenID Connect Core section 3.1.2.6",
        kind: Reauthorize,
        meaning: "The user must sign in, and the request asked for no prompt.",
        fix: "Connect again without `prompt=none`.",
    },
    StandardError {
        code: "consent_required",
        reference: "OpenID Connect Core section 3.1.2.6",
        kind: Reauthorize,
        meaning: "The user must consent, and the request asked for no prompt.",
        fix: "Connect again without `prompt=none`.",
    },
    StandardError {
        code: "account_selection_required",
        reference: "OpenID Connect Core section 3.1.2.6",
        kind: Reauthorize,
        meaning: "The user must choose an account, and the request asked for no prompt.",
        fix: "Connect again without `prompt=none`.",
    },
];

/// The built-in meaning of a standard `error` code received in `phase`, if it is one.
pub fn standard_error(code: &str, phase: ErrorPhase) -> Option<&'static StandardError> {
    PHASED
        .iter()
        .find(|(p, e)| *p == phase && e.code == code)
        .map(|(_, e)| e)
        .or_else(|| ANY_PHASE.iter().find(|e| e.code == code))
}

/// Every standard code keyway knows (for documentation and tests).
pub fn standard_codes() -> impl Iterator<Item = &'static str> {
    ANY_PHASE.iter().map(|e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_once() {
        let mut codes: Vec<_> = standard_codes().collect();
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count);
    }

    #[test]
    fn phase_specific_meanings_win() {
        let authorize = standard_error("invalid_request", ErrorPhase::Authorize).expect("known");
        let token = standard_error("invalid_request", ErrorPhase::Token).expect("known");
        assert_ne!(authorize.reference, token.reference);
        assert_eq!(standard_error("no_such_code", ErrorPhase::Token), None);
    }
}
