//! The authorization code flow's browser side: the authorization URL (through the `oauth2`
//! crate: a random `state`, the PKCE S256 challenge), `state` bound to a session, single use
//! and expiring, and callbacks read and judged (`iss`, then the provider's error) before
//! the code is exchanged.

use super::Connector;
use crate::errors::{FlowError, ProviderError, StateError};
use crate::issuer::{IssuerError, IssuerPolicy, check_issuer};
use crate::tokens::TokenSet;
use keyway_manifest::model::{ErrorPhase, Grant};
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl};
use secrecy::SecretString;

/// An authorization URL to send the user to, with what the callback needs.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The URL.
    pub url: String,
    /// The `state` it carries.
    pub state: String,
    /// The PKCE verifier of its challenge, when it has one.
    pub code_verifier: Option<SecretString>,
    /// The OpenID Connect `nonce` it carries when it asks for `openid`: the code exchange's ID
    /// token must repeat it, which binds the code to this request (RFC 9700 §2.1.1).
    pub nonce: Option<String>,
}

/// What came back on the redirect URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Callback {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `iss` (RFC 9207): the issuer that answered.
    pub iss: Option<String>,
    /// The other parameters, first of each name, at most [`MAX_OTHER_PARAMS`]: where a
    /// provider that names the code otherwise (`auth.callback_code_param`) puts it.
    pub others: Vec<(String, String)>,
}

/// The most parameters of a callback kept beyond the standard ones.
pub const MAX_OTHER_PARAMS: usize = 16;

impl Callback {
    /// Reads a callback's query string (without the `?`).
    pub fn from_query(query: &str) -> Callback {
        let mut callback = Callback::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut callback.code,
                "state" => &mut callback.state,
                "error" => &mut callback.error,
                "error_description" => &mut callback.error_description,
                "iss" => &mut callback.iss,
                _ => {
                    if callback.others.len() < MAX_OTHER_PARAMS && !callback.others.iter().any(|(name, _)| *name == k) {
                        callback.others.push((k.into_owned(), v.into_owned()));
                    }
                    continue;
                }
            };
            // A repeated parameter is ambiguous: keep the first, as servers usually do.
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        callback
    }
}

/// How long a started authorization may wait for its callback.
/// Pending authorizations kept per connector; more means someone is starting flows without
/// finishing them.
const MAX_PENDING: usize = 10_000;

/// An authorization begun with [`Connector::begin_authorization`], waiting for its callback.
pub(super) struct Pending {
    session: String,
    verifier: Option<SecretString>,
    nonce: Option<String>,
    created_ms: u64,
}

impl Connector {
    /// The redirect URI the code flow sends and the code exchange repeats.
    pub(super) fn redirect_url(&self) -> Result<RedirectUrl, FlowError> {
        let uri =
            self.config.selection.redirect_uri.as_deref().ok_or_else(|| {
                FlowError::Configuration("the authorization code flow needs a redirect URI".to_owned())
            })?;
        RedirectUrl::new(uri.to_owned()).map_err(|e| FlowError::Configuration(format!("redirect URI: {e}")))
    }

    /// An authorization URL with a fresh random `state`, per the PKCE policy an S256 challenge,
    /// and a `nonce` when it asks for `openid`. Nothing is remembered: the caller keeps
    /// `state`, `code_verifier` and `nonce` (as `keyway authorize-url` prints them). Services use
    /// [`Connector::begin_authorization`].
    pub fn authorization_request(&self) -> Result<AuthorizationRequest, FlowError> {
        self.require_grant(Grant::AuthorizationCode, "authorization code grant")?;
        let authorize = self
            .endpoints
            .authorize
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no authorize endpoint", self.profile.id)))?;
        let auth_url = AuthUrl::new(authorize.to_owned()).map_err(|e| FlowError::Configuration(e.to_string()))?;
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_redirect_uri(self.redirect_url()?);
        let mut request = client.authorize_url(CsrfToken::new_random);
        let scope = self.plan.scope_string();
        if !scope.is_empty() {
            request = request.add_extra_param("scope", scope);
        }
        let mut code_verifier = None;
        if self.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            code_verifier = Some(SecretString::from(verifier.into_secret()));
        }
        let nonce = self.plan.values().contains(&"openid").then(|| keyway_stdx::random_alphanumeric(32));
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.as_str());
        }
        for (k, v) in &self.authorization_params {
            request = request.add_extra_param(k.as_str(), v.as_str());
        }
        let (mut url, state) = request.url();
        let names = &self.profile.auth.authorization_param_names;
        if !names.is_empty() {
            // The provider reads some standard parameters under other names (or not at all).
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter_map(|(k, v)| match names.get(k.as_ref()) {
                    Some(name) if name.is_empty() => None,
                    Some(name) => Some((name.clone(), v.into_owned())),
                    None => Some((k.into_owned(), v.into_owned())),
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        Ok(AuthorizationRequest { url: url.into(), state: state.into_secret(), code_verifier, nonce })
    }

    /// Starts an authorization for a user's session: the URL to redirect to. The state is
    /// remembered, bound to `session`, single use, and expires after ten minutes.
    pub fn begin_authorization(&self, session: &str) -> Result<String, FlowError> {
        let request = self.authorization_request()?;
        let now = self.now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, p| now < crate::state_expiry(p.created_ms));
        if pending.len() >= MAX_PENDING {
            return Err(FlowError::Configuration(format!(
                "{MAX_PENDING} authorizations are pending; finish or let some expire first"
            )));
        }
        pending.insert(
            request.state,
            Pending {
                session: session.to_owned(),
                verifier: request.code_verifier,
                nonce: request.nonce,
                created_ms: now,
            },
        );
        Ok(request.url)
    }

    /// Finishes an authorization begun with [`Connector::begin_authorization`]: checks the
    /// state against the session, reads the provider's error if there is one, and exchanges
    /// the code.
    pub async fn complete_authorization(&self, session: &str, callback: &Callback) -> Result<TokenSet, FlowError> {
        let state = callback.state.as_deref().ok_or(FlowError::State(StateError::Unknown))?;
        let (verifier, nonce) = {
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(p) = pending.get(state) else { return Err(FlowError::State(StateError::Unknown)) };
            // The runtime's one state check (the server's stored states take it too).
            let verdict =
                crate::check_state(&p.session, crate::state_expiry(p.created_ms), Some(session), self.now_ms());
            // Another session's state is left alone: refusing it must not cancel the
            // rightful user's authorization.
            if verdict == Err(StateError::WrongSession) {
                return Err(FlowError::State(StateError::WrongSession));
            }
            let Some(p) = pending.remove(state) else { return Err(FlowError::State(StateError::Unknown)) };
            verdict.map_err(FlowError::State)?;
            (p.verifier, p.nonce)
        };
        self.finish_callback(callback, verifier.as_ref(), nonce.as_deref()).await
    }

    /// The mix-up defence (RFC 9207) for a callback's `iss` (absent: `None`), per the
    /// profile's `issuer` and `callback_iss_required`. [`Connector::finish_callback`] runs it
    /// first; a caller may run it earlier to refuse a callback before anything else.
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), IssuerError> {
        check_issuer(&self.issuer, iss)
    }

    /// What this connection expects of a callback's `iss`.
    pub fn issuer_policy(&self) -> &IssuerPolicy {
        &self.issuer
    }

    /// Reads a callback whose state the caller checked: its `iss` first (refused before any
    /// token request), then the provider's error if there is one, then exchanges its code
    /// with the request's PKCE verifier and checks the ID token's `nonce` (both as
    /// [`AuthorizationRequest`] gave them).
    pub async fn finish_callback(
        &self,
        callback: &Callback,
        verifier: Option<&SecretString>,
        nonce: Option<&str>,
    ) -> Result<TokenSet, FlowError> {
        self.check_callback_issuer(callback.iss.as_deref()).map_err(FlowError::Issuer)?;
        if let Some(error) = &callback.error {
            let provider = ProviderError {
                phase: ErrorPhase::Authorize,
                status: None,
                error: error.clone(),
                description: callback.error_description.clone(),
            };
            return Err(FlowError::Provider(Box::new(self.diagnose(provider))));
        }
        let code = match &self.profile.auth.callback_code_param {
            Some(name) => callback.others.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()),
            None => callback.code.as_deref(),
        };
        let code = code.ok_or_else(|| FlowError::InvalidResponse {
            endpoint: "authorize",
            detail: format!(
                "the callback has neither `{}` nor `error`",
                self.profile.auth.callback_code_param.as_deref().unwrap_or("code")
            ),
        })?;
        self.exchange_code(code, verifier, nonce).await
    }
}
