//! A connector: one profile plus one tenant's configuration, turned into concrete OAuth
//! requests. The `oauth2` crate builds and reads the standard ones; the profile-driven
//! variants (JWT bearer, the device flow with Salesforce's parameter names) are plain form
//! posts behind the same interface and the same HTTP client.

use crate::clock::{Clock, SystemClock};
use crate::errors::{ConfigError, Diagnosis, DiagnosisKind, FlowError, ProviderError, StateError, matching_rule};
use crate::http::{Body, HttpClient, TransportError, post};
use crate::issuer::{IssuerError, IssuerPolicy, check_issuer};
use crate::tokens::{ExpirySource, GrantUsed, TokenOrigin, TokenSet};
use keyway_diagnostics::Severity;
use keyway_manifest::model::{ClientAuth, ErrorPhase, Grant, Pkce, Profile, TokenRequestFormat};
use keyway_validate::templates::{GuideTarget, env_value, guide_context, render, scope_entries};
use keyway_validate::urls::endpoint_problem;
use keyway_validate::{ScopePlan, Selection, check_selection};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    ErrorResponse, IntrospectionUrl, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    StandardRevocableToken, TokenIntrospectionResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest client id or secret a connection may carry.
pub const MAX_CLIENT_CREDENTIAL: usize = 2000;

/// A tenant's connector configuration: who the client is and what the connection selects.
///
/// `Debug` shows secrets as `[REDACTED]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The client id (Salesforce: Consumer Key).
    pub client_id: String,
    /// The client secret (Consumer Secret).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A second secret, tried when the provider refuses the first as `invalid_client`: keeps
    /// connections working while an admin rotates the app's credentials.
    #[serde(default)]
    pub staged_client_secret: Option<SecretString>,
    /// What the connection selects: environment, actions, custom scopes, parameters and
    /// redirect URI. Checked against the profile by [`keyway_validate::check_selection`].
    #[serde(default)]
    pub selection: Selection,
    /// Turns PKCE off (or on) where the profile makes it optional.
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Overrides the profile's `refresh.send_client_secret` to match the app's setting.
    #[serde(default)]
    pub refresh_sends_secret: Option<bool>,
    /// The PEM private key (RSA: PKCS#8 or PKCS#1; EC P-256: PKCS#8) for the JWT bearer
    /// grant and `private_key_jwt` client authentication.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// The key id (`kid`) the provider knows the private key by, sent in signed JWTs' header.
    #[serde(default)]
    pub private_key_id: Option<String>,
}

/// An authorization URL to send the user to, with what the callback needs.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The URL.
    pub url: String,
    /// The `state` it carries.
    pub state: String,
    /// The PKCE verifier of its challenge, when it has one.
    pub code_verifier: Option<SecretString>,
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
}

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
                _ => continue,
            };
            // A repeated parameter is ambiguous: keep the first, as servers usually do.
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        callback
    }
}

/// A started device authorization: show `user_code` and `verification_uri` to the user.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// A URL with the code filled in, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Seconds between polls.
    pub interval: u64,
    /// Seconds until the device code expires, when the provider says.
    pub expires_in: Option<u64>,
    device_code: SecretString,
}

/// How to poll in the device flow.
#[derive(Debug, Clone)]
pub struct DevicePolling {
    /// Added to the interval on every `slow_down` (RFC 8628: 5 seconds).
    pub slow_down_increment: Duration,
    /// Give up after this long if the provider gave no expiry.
    pub max_wait: Duration,
}

impl Default for DevicePolling {
    fn default() -> Self {
        DevicePolling { slow_down_increment: Duration::from_secs(5), max_wait: Duration::from_secs(900) }
    }
}

/// What introspection says about a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// Expiry, seconds since the epoch.
    pub exp: Option<u64>,
    /// Issue time, seconds since the epoch.
    pub iat: Option<u64>,
    /// Scopes.
    pub scopes: Option<Vec<String>>,
    /// The client the token belongs to.
    pub client_id: Option<String>,
    /// The user.
    pub username: Option<String>,
    /// The subject.
    pub sub: Option<String>,
    /// `access_token`, `refresh_token`, ...
    pub token_type: Option<String>,
}

/// Which token a revoke or introspect call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The access token.
    Access,
    /// The refresh token.
    Refresh,
}

/// How long a started authorization may wait for its callback.
const STATE_TTL_MS: u64 = 10 * 60 * 1000;
/// Pending authorizations kept per connector; more means someone is starting flows without
/// finishing them.
const MAX_PENDING: usize = 10_000;

struct Pending {
    session: String,
    verifier: Option<SecretString>,
    created_ms: u64,
}

/// The endpoints of one connection, rendered.
#[derive(Debug, Clone, Default)]
struct Endpoints {
    authorize: Option<String>,
    token: String,
    /// Where refreshes go: the profile's refresh endpoint, else the token endpoint.
    refresh: String,
    revoke: Option<String>,
    introspect: Option<String>,
    userinfo: Option<String>,
    device_start: Option<String>,
    jwt_audience: Option<String>,
}

/// One connection's view of its profile: validated configuration, rendered endpoints and the
/// scope plan, ready to run flows. Cheap to share behind an `Arc`.
pub struct Connector {
    profile: Arc<Profile>,
    config: ConnectorConfig,
    environment: String,
    plan: ScopePlan,
    endpoints: Endpoints,
    authorization_params: Vec<(String, String)>,
    token_params: Vec<(String, String)>,
    refresh_params: Vec<(String, String)>,
    pkce: bool,
    refresh_sends_secret: bool,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    pending: Mutex<HashMap<String, Pending>>,
    issuer: IssuerPolicy,
    /// Set once the staged secret was accepted and the main one refused: tried first since.
    prefer_staged: AtomicBool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("profile", &self.profile.id)
            .field("environment", &self.environment)
            .field("config", &self.config)
            .field("scopes", &self.plan.scope_string())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct ExtraFields {
    #[serde(flatten)]
    fields: Map<String, Value>,
}

impl std::fmt::Debug for ExtraFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.fields.keys()).finish()
    }
}

impl oauth2::ExtraTokenFields for ExtraFields {}

type TokenResponse = oauth2::StandardTokenResponse<ExtraFields, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
>;

impl Connector {
    /// Checks `config` against the profile (actions, scopes, environment, parameters,
    /// redirect URI, PKCE and grant settings) and renders the endpoints. No request is made.
    pub fn new(profile: Arc<Profile>, config: ConnectorConfig, http: HttpClient) -> Result<Connector, ConfigError> {
        let (plan, diagnostics) = check_selection(&profile, &config.selection);
        let mut errors: Vec<_> = diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect();
        let problem = |message: String, pointer: &str| {
            keyway_diagnostics::Diagnostic::new(keyway_diagnostics::Code::InvalidClientCredentials, message)
                .at_pointer(pointer)
        };
        if config.client_id.trim().is_empty() {
            errors.push(problem("the client id is empty".to_owned(), "/client_id"));
        } else if config.client_id.len() > MAX_CLIENT_CREDENTIAL {
            errors.push(problem(format!("the client id is longer than {MAX_CLIENT_CREDENTIAL} bytes"), "/client_id"));
        }
        for (pointer, secret) in
            [("/client_secret", &config.client_secret), ("/staged_client_secret", &config.staged_client_secret)]
        {
            let len = secret.as_ref().map(|s| s.expose_secret().len());
            if len.is_some_and(|len| len == 0 || len > MAX_CLIENT_CREDENTIAL) {
                errors.push(problem(format!("the secret must be 1 to {MAX_CLIENT_CREDENTIAL} bytes"), pointer));
            }
        }
        if profile.auth.client_auth == ClientAuth::PrivateKeyJwt && config.private_key.is_none() {
            errors.push(
                keyway_diagnostics::Diagnostic::new(
                    keyway_diagnostics::Code::MissingPrivateKey,
                    format!("`{}` authenticates the client with a signed JWT (`private_key_jwt`); the connection has no private key", profile.id),
                )
                .at_pointer("/private_key")
                .with_help("give the PEM private key whose public key the app registered"),
            );
        }
        let pkce = match (profile.auth.pkce, config.pkce) {
            (Pkce::Required, Some(false)) => {
                errors.push(
                    keyway_diagnostics::Diagnostic::new(
                        keyway_diagnostics::Code::PkceRequired,
                        format!("`{}` requires PKCE; it cannot be turned off", profile.id),
                    )
                    .at_pointer("/pkce")
                    .with_help(
                        "drop `--no-pkce` (or `pkce: false`): the provider refuses authorizations without a challenge",
                    ),
                );
                true
            }
            (Pkce::Off, Some(true)) => {
                errors.push(
                    keyway_diagnostics::Diagnostic::new(
                        keyway_diagnostics::Code::PkceUnsupported,
                        format!("`{}` does not support PKCE", profile.id),
                    )
                    .at_pointer("/pkce"),
                );
                false
            }
            (Pkce::Required, _) => true,
            (Pkce::Optional, choice) => choice.unwrap_or(true),
            (Pkce::Off, _) => false,
        };
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let environment = config
            .selection
            .environment
            .clone()
            .or_else(|| profile.environments.iter().find(|(_, e)| e.default).map(|(id, _)| id.clone()))
            .or_else(|| profile.environments.keys().next().cloned())
            .unwrap_or_default();
        let params: Map<String, Value> = profile
            .parameters
            .keys()
            .map(|k| (k.clone(), config.selection.parameters.get(k).map_or(Value::Null, |v| Value::String(v.clone()))))
            .collect();
        let context = minijinja::Value::from(minijinja::value::Serde(
            json!({"env": env_value(&profile, &environment), "params": params}),
        ));
        let render_url = |pointer: &str, template: &str| -> Result<String, ConfigError> {
            let rendered = render(template, &context)
                .map_err(|e| ConfigError(vec![problem(format!("{pointer} does not render: {e}"), pointer)]))?;
            endpoint_problem(&rendered).map_or(Ok(rendered.into_owned()), |why| {
                Err(ConfigError(vec![problem(format!("{pointer} renders to an unusable URL, {why}"), pointer)]))
            })
        };
        let e = &profile.auth.endpoints;
        let render_opt = |pointer: &str, t: &Option<String>| t.as_deref().map(|t| render_url(pointer, t)).transpose();
        let device_start = match &profile.auth.device {
            Some(device) => Some(render_url("/auth/device/start", &device.start)?),
            None => render_opt("/auth/endpoints/device_authorization", &e.device_authorization)?,
        };
        let jwt_audience = match &profile.auth.jwt_bearer {
            Some(jwt) => Some(
                render(&jwt.audience, &context)
                    .map_err(|e| ConfigError(vec![problem(format!("the JWT audience does not render: {e}"), "/auth")]))?
                    .into_owned(),
            ),
            None => None,
        };
        let endpoints = Endpoints {
            authorize: render_opt("/auth/endpoints/authorize", &e.authorize)?,
            token: render_url("/auth/endpoints/token", &e.token)?,
            refresh: match &e.refresh {
                Some(refresh) => render_url("/auth/endpoints/refresh", refresh)?,
                None => render_url("/auth/endpoints/token", &e.token)?,
            },
            revoke: render_opt("/auth/endpoints/revoke", &e.revoke)?,
            introspect: render_opt("/auth/endpoints/introspect", &e.introspect)?,
            userinfo: render_opt("/auth/endpoints/userinfo", &e.userinfo)?,
            device_start,
            jwt_audience,
        };
        let render_params = |map: &keyway_manifest::model::Map<String>| -> Result<Vec<(String, String)>, ConfigError> {
            map.iter()
                .map(|(k, v)| {
                    render(v, &context).map(|r| (k.clone(), r.into_owned())).map_err(|e| {
                        ConfigError(vec![problem(format!("the parameter `{k}` does not render: {e}"), "/auth")])
                    })
                })
                .collect()
        };
        let authorization_params = render_params(&profile.auth.authorization_params)?;
        let token_params = render_params(&profile.auth.token_params)?;
        let refresh_params = render_params(&profile.auth.refresh_params)?;
        let issuer = IssuerPolicy {
            issuer: match &profile.auth.issuer {
                Some(template) => Some(
                    render(template, &context)
                        .map_err(|e| {
                            ConfigError(vec![problem(format!("/auth/issuer does not render: {e}"), "/auth/issuer")])
                        })?
                        .into_owned(),
                ),
                None => None,
            },
            authorize_origin: endpoints.authorize.as_deref().and_then(crate::issuer::origin_of),
            required: profile.auth.callback_iss_required,
        };
        let refresh_sends_secret = config.refresh_sends_secret.unwrap_or_else(|| profile.auth.refresh_sends_secret());
        Ok(Connector {
            profile,
            config,
            environment,
            plan,
            endpoints,
            authorization_params,
            token_params,
            refresh_params,
            pkce,
            refresh_sends_secret,
            http,
            clock: Arc::new(SystemClock),
            pending: Mutex::new(HashMap::new()),
            issuer,
            prefer_staged: AtomicBool::new(false),
        })
    }

    /// Uses another clock (tests move time forward).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Connector {
        self.clock = clock;
        self
    }

    /// The profile.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The environment in use.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The scopes requested.
    pub fn scope_plan(&self) -> &ScopePlan {
        &self.plan
    }

    /// Whether authorization requests carry a PKCE challenge.
    pub fn sends_pkce(&self) -> bool {
        self.pkce
    }

    /// Whether refresh requests carry the client secret.
    pub fn refresh_sends_secret(&self) -> bool {
        self.refresh_sends_secret
    }

    /// The rendered userinfo endpoint.
    pub fn userinfo_endpoint(&self) -> Option<&str> {
        self.endpoints.userinfo.as_deref()
    }

    /// The clock the connector reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Refuses a flow the profile does not offer.
    fn require_grant(&self, grant: Grant, what: &str) -> Result<(), FlowError> {
        if self.profile.auth.grants.contains(&grant) {
            Ok(())
        } else {
            Err(FlowError::Unsupported(format!("`{}` has no {what}", self.profile.id)))
        }
    }

    fn redirect_url(&self) -> Result<RedirectUrl, FlowError> {
        let uri =
            self.config.selection.redirect_uri.as_deref().ok_or_else(|| {
                FlowError::Configuration("the authorization code flow needs a redirect URI".to_owned())
            })?;
        RedirectUrl::new(uri.to_owned()).map_err(|e| FlowError::Configuration(format!("redirect URI: {e}")))
    }

    /// The `oauth2` client, authenticating as the profile says; `private_key_jwt`'s
    /// assertion is added to each request by [`Connector::assertion_params`].
    fn client(&self, secret: Option<&SecretString>) -> OAuthClient {
        let method = self.profile.auth.client_auth.standard();
        let client = oauth2::Client::new(ClientId::new(self.config.client_id.clone())).set_auth_type(match method {
            ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        });
        match (method, secret) {
            (ClientAuth::ClientSecretPost | ClientAuth::ClientSecretBasic, Some(secret)) => {
                client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            }
            _ => client,
        }
    }

    /// `client_assertion_type` and a freshly signed `client_assertion` when the profile's
    /// client authentication is `private_key_jwt` (RFC 7523 section 2.2); nothing otherwise.
    fn assertion_params(&self) -> Result<Vec<(&'static str, String)>, FlowError> {
        if self.profile.auth.client_auth.standard() != ClientAuth::PrivateKeyJwt {
            return Ok(Vec::new());
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            jti: String,
            iat: u64,
            exp: u64,
        }
        let now = self.now_ms() / 1000;
        let claims = Claims {
            iss: &self.config.client_id,
            sub: &self.config.client_id,
            // OpenID Connect Core section 9: the token endpoint's URL is the audience.
            aud: &self.endpoints.token,
            jti: random_id(),
            iat: now,
            exp: now + 60,
        };
        let assertion = self.sign(&claims)?;
        Ok(vec![("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()), ("client_assertion", assertion)])
    }

    /// Signs claims with the configured private key (RS256 for RSA keys, ES256 for P-256),
    /// through `jsonwebtoken`.
    fn sign(&self, claims: &impl Serialize) -> Result<String, FlowError> {
        let key = self
            .config
            .private_key
            .as_ref()
            .ok_or_else(|| FlowError::Configuration("signing needs the connection's private key".to_owned()))?;
        let pem = key.expose_secret().as_bytes();
        // The key's own error text is not passed on: it can quote key material.
        let (algorithm, encoding) = match jsonwebtoken::EncodingKey::from_rsa_pem(pem) {
            Ok(key) => (jsonwebtoken::Algorithm::RS256, key),
            Err(_) => match jsonwebtoken::EncodingKey::from_ec_pem(pem) {
                Ok(key) => (jsonwebtoken::Algorithm::ES256, key),
                Err(_) => {
                    return Err(FlowError::Configuration(
                        "the private key is neither an RSA nor an EC P-256 key in PEM form".to_owned(),
                    ));
                }
            },
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = self.config.private_key_id.clone();
        jsonwebtoken::encode(&header, claims, &encoding)
            .map_err(|_| FlowError::Configuration("the JWT could not be signed with the private key".to_owned()))
    }

    /// The secrets to try, in order: main, then staged. One `None` when no secret is sent.
    fn secrets(&self, send: bool) -> Vec<Option<&SecretString>> {
        match (&self.config.client_secret, send) {
            (Some(main), true) => match &self.config.staged_client_secret {
                Some(staged) if self.prefer_staged.load(Ordering::Relaxed) => vec![Some(staged), Some(main)],
                Some(staged) => vec![Some(main), Some(staged)],
                None => vec![Some(main)],
            },
            _ => vec![None],
        }
    }

    /// Runs a token-endpoint call with each secret until one is not refused as `invalid_client`.
    ///
    /// The secret is passed by value (a cheap clone) so the returned futures stay `Send`.
    async fn with_secrets<T, F, Fut>(&self, send_secret: bool, call: F) -> Result<T, FlowError>
    where
        F: Fn(Option<SecretString>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FlowError>>,
    {
        let candidates = self.secrets(send_secret);
        let last = candidates.len() - 1;
        for (i, secret) in candidates.into_iter().enumerate() {
            match call(secret.cloned()).await {
                Err(FlowError::Provider(d)) if i < last && d.provider.error == "invalid_client" => {
                    tracing::warn!(profile = %self.profile.id, "main client secret refused; trying the staged one");
                }
                Ok(v) if i > 0 => {
                    let staged_now = !self.prefer_staged.fetch_xor(true, Ordering::Relaxed);
                    tracing::warn!(profile = %self.profile.id, staged_preferred = staged_now, "the other client secret was accepted; using it first from now on");
                    return Ok(v);
                }
                other => return other,
            }
        }
        Err(FlowError::Configuration("no client secret to try".to_owned()))
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// An authorization URL with a fresh random `state` and, per the PKCE policy, an S256
    /// challenge. Nothing is remembered: the caller keeps `state` and `code_verifier` (as
    /// `keyway authorize-url` prints them). Services use [`Connector::begin_authorization`].
    pub fn authorization_request(&self) -> Result<AuthorizationRequest, FlowError> {
        self.require_grant(Grant::AuthorizationCode, "authorization code grant")?;
        let authorize = self
            .endpoints
            .authorize
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no authorize endpoint", self.profile.id)))?;
        let auth_url = AuthUrl::new(authorize.to_owned()).map_err(|e| FlowError::Configuration(e.to_string()))?;
        let client = self.client(None).set_auth_uri(auth_url).set_redirect_uri(self.redirect_url()?);
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
        for (k, v) in &self.authorization_params {
            request = request.add_extra_param(k.as_str(), v.as_str());
        }
        let (url, state) = request.url();
        Ok(AuthorizationRequest { url: url.into(), state: state.into_secret(), code_verifier })
    }

    /// Starts an authorization for a user's session: the URL to redirect to. The state is
    /// remembered, bound to `session`, single use, and expires after ten minutes.
    pub fn begin_authorization(&self, session: &str) -> Result<String, FlowError> {
        let request = self.authorization_request()?;
        let now = self.now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, p| now.saturating_sub(p.created_ms) < STATE_TTL_MS);
        if pending.len() >= MAX_PENDING {
            return Err(FlowError::Configuration(format!(
                "{MAX_PENDING} authorizations are pending; finish or let some expire first"
            )));
        }
        pending.insert(
            request.state,
            Pending { session: session.to_owned(), verifier: request.code_verifier, created_ms: now },
        );
        Ok(request.url)
    }

    /// Finishes an authorization begun with [`Connector::begin_authorization`]: checks the
    /// state against the session, reads the provider's error if there is one, and exchanges
    /// the code.
    pub async fn complete_authorization(&self, session: &str, callback: &Callback) -> Result<TokenSet, FlowError> {
        let state = callback.state.as_deref().ok_or(FlowError::State(StateError::Unknown))?;
        let verifier = {
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match pending.get(state) {
                None => return Err(FlowError::State(StateError::Unknown)),
                // Another session's state is left alone: refusing it must not cancel the
                // rightful user's authorization.
                Some(p) if p.session != session => return Err(FlowError::State(StateError::WrongSession)),
                Some(_) => {}
            }
            let Some(p) = pending.remove(state) else { return Err(FlowError::State(StateError::Unknown)) };
            if self.now_ms().saturating_sub(p.created_ms) >= STATE_TTL_MS {
                return Err(FlowError::State(StateError::Expired));
            }
            p.verifier
        };
        self.finish_callback(callback, verifier.as_ref()).await
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
    /// token request), then the provider's error if there is one, then exchanges its code.
    pub async fn finish_callback(
        &self,
        callback: &Callback,
        verifier: Option<&SecretString>,
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
        let code = callback.code.as_deref().ok_or_else(|| FlowError::InvalidResponse {
            endpoint: "authorize",
            detail: "the callback has neither `code` nor `error`".to_owned(),
        })?;
        self.exchange_code(code, verifier).await
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(&self, code: &str, verifier: Option<&SecretString>) -> Result<TokenSet, FlowError> {
        if self.token_body() == Body::Json {
            let redirect = self.redirect_url()?;
            let mut params =
                vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect.as_str())];
            if let Some(v) = verifier {
                params.push(("code_verifier", v.expose_secret()));
            }
            params.extend(self.token_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let map = self.json_token_request(&self.endpoints.token, &params, true).await?;
            return self.token_set_from_map(&map, GrantUsed::AuthorizationCode, None).await;
        }
        let token_url = &self.token_url()?;
        let redirect = &self.redirect_url()?;
        let response = self
            .with_secrets(true, |secret: Option<SecretString>| async move {
                let secret = secret.as_ref();
                let client = self.client(secret).set_token_uri(token_url.clone());
                let mut request = client
                    .exchange_code(AuthorizationCode::new(code.to_owned()))
                    .set_redirect_uri(std::borrow::Cow::Borrowed(redirect));
                if let Some(v) = verifier {
                    request = request.set_pkce_verifier(PkceCodeVerifier::new(v.expose_secret().to_owned()));
                }
                for (k, v) in self.assertion_params()? {
                    request = request.add_extra_param(k, v);
                }
                for (k, v) in &self.token_params {
                    request = request.add_extra_param(k.as_str(), v.as_str());
                }
                request.request_async(&self.http).await.map_err(|e| self.token_error("token", e))
            })
            .await?;
        self.token_set(&response, GrantUsed::AuthorizationCode, None).await
    }

    /// Refreshes, sending the client secret or not as the profile and configuration say.
    /// The result keeps the old refresh token unless the provider rotated it.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, FlowError> {
        self.check_origin(tokens)?;
        self.require_grant(Grant::RefreshToken, "refresh token grant")?;
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| FlowError::Configuration("the token set has no refresh token".to_owned()))?;
        if self.token_body() == Body::Json {
            let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
            params.extend(self.refresh_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let map = self.json_token_request(&self.endpoints.refresh, &params, self.refresh_sends_secret).await?;
            return self.token_set_from_map(&map, GrantUsed::RefreshToken, Some(refresh_token)).await;
        }
        let refresh_url =
            &TokenUrl::new(self.endpoints.refresh.clone()).map_err(|e| FlowError::Configuration(e.to_string()))?;
        let response = self
            .with_secrets(self.refresh_sends_secret, |secret: Option<SecretString>| async move {
                let secret = secret.as_ref();
                let client = self.client(secret).set_token_uri(refresh_url.clone());
                let rt = RefreshToken::new(refresh_token.expose_secret().to_owned());
                let mut request = client.exchange_refresh_token(&rt);
                for (k, v) in self.assertion_params()? {
                    request = request.add_extra_param(k, v);
                }
                for (k, v) in &self.refresh_params {
                    request = request.add_extra_param(k.as_str(), v.as_str());
                }
                request.request_async(&self.http).await.map_err(|e| self.token_error("token", e))
            })
            .await?;
        self.token_set(&response, GrantUsed::RefreshToken, Some(refresh_token)).await
    }

    /// The client credentials grant.
    pub async fn client_credentials(&self) -> Result<TokenSet, FlowError> {
        self.require_grant(Grant::ClientCredentials, "client credentials grant")?;
        if self.config.client_secret.is_none() && self.profile.auth.client_auth.standard() != ClientAuth::PrivateKeyJwt
        {
            return Err(FlowError::Configuration("the client credentials grant needs the client secret".to_owned()));
        }
        if self.token_body() == Body::Json {
            let scope = self.plan.scope_string();
            let mut params = vec![("grant_type", "client_credentials")];
            if !scope.is_empty() {
                params.push(("scope", scope.as_str()));
            }
            let map = self.json_token_request(&self.endpoints.token, &params, true).await?;
            return self.token_set_from_map(&map, GrantUsed::ClientCredentials, None).await;
        }
        let token_url = &self.token_url()?;
        let response = self
            .with_secrets(true, |secret: Option<SecretString>| async move {
                let secret = secret.as_ref();
                let client = self.client(secret).set_token_uri(token_url.clone());
                let mut request = client.exchange_client_credentials();
                for (k, v) in self.assertion_params()? {
                    request = request.add_extra_param(k, v);
                }
                if !self.plan.scopes.is_empty() {
                    request = request.add_extra_param("scope", self.plan.scope_string());
                }
                request.request_async(&self.http).await.map_err(|e| self.token_error("token", e))
            })
            .await?;
        self.token_set(&response, GrantUsed::ClientCredentials, None).await
    }

    /// The JWT bearer grant (RFC 7523): an RS256 assertion signed with the configured private
    /// key, `iss` the client id, `sub` the user, `aud` the profile's audience.
    pub async fn jwt_bearer(&self, subject: &str) -> Result<TokenSet, FlowError> {
        self.require_grant(Grant::JwtBearer, "JWT bearer grant")?;
        if self.config.private_key.is_none() {
            return Err(FlowError::Configuration("the JWT bearer grant needs a private key".to_owned()));
        }
        let audience = self.endpoints.jwt_audience.clone().unwrap_or_else(|| self.endpoints.token.clone());
        let lifetime = self.profile.auth.jwt_bearer.as_ref().map_or(180, |j| u64::from(j.assertion_lifetime_seconds));
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
        }
        let claims =
            Claims { iss: &self.config.client_id, sub: subject, aud: &audience, exp: self.now_ms() / 1000 + lifetime };
        let assertion = self.sign(&claims)?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
        let response = self.raw_token_request("token", &self.endpoints.token, &form, None, self.token_body()).await?;
        self.token_set_from_map(&response, GrantUsed::JwtBearer, None).await
    }

    /// Starts the device flow: at the device authorization endpoint, or where the profile
    /// says (Salesforce: the token endpoint with `response_type=device_code`).
    pub async fn device_start(&self) -> Result<DeviceAuthorization, FlowError> {
        self.require_grant(Grant::DeviceCode, "device grant")?;
        let url = self
            .endpoints
            .device_start
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no device endpoint", self.profile.id)))?;
        let scope = self.plan.scope_string();
        let mut form: Vec<(&str, &str)> = vec![("client_id", self.config.client_id.as_str())];
        if !scope.is_empty() {
            form.push(("scope", scope.as_str()));
        }
        if let Some(device) = &self.profile.auth.device {
            form.extend(device.start_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let body = self.raw_token_request("device", url, &form, None, Body::Form).await?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let number = |k: &str| body.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let missing =
            |k: &str| FlowError::InvalidResponse { endpoint: "device", detail: format!("no `{k}` in the answer") };
        Ok(DeviceAuthorization {
            device_code: SecretString::from(text("device_code").ok_or_else(|| missing("device_code"))?),
            user_code: text("user_code").ok_or_else(|| missing("user_code"))?,
            verification_uri: text("verification_uri")
                .or_else(|| text("verification_url"))
                .ok_or_else(|| missing("verification_uri"))?,
            verification_uri_complete: text("verification_uri_complete"),
            interval: number("interval").unwrap_or(5),
            expires_in: number("expires_in"),
        })
    }

    /// Polls until the user approves or denies, honouring `interval`, `authorization_pending`
    /// and `slow_down`.
    pub async fn device_poll(
        &self,
        authorization: &DeviceAuthorization,
        polling: &DevicePolling,
    ) -> Result<TokenSet, FlowError> {
        let (grant_type, code_param) = match &self.profile.auth.device {
            Some(d) => (d.poll_grant_type.as_str(), d.poll_code_param.as_str()),
            None => ("urn:ietf:params:oauth:grant-type:device_code", "device_code"),
        };
        let deadline = tokio::time::Instant::now()
            + authorization.expires_in.map_or(polling.max_wait, Duration::from_secs).min(polling.max_wait);
        let mut interval = Duration::from_secs(authorization.interval);
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(FlowError::TimedOut("the device authorization expired before the user approved it"));
            }
            let result = self
                .with_secrets(true, |secret: Option<SecretString>| async move {
                    let secret = secret.as_ref();
                    let credentials = self.client_auth(secret)?;
                    let mut form =
                        vec![("grant_type", grant_type), (code_param, authorization.device_code.expose_secret())];
                    form.extend(credentials.form());
                    let basic = credentials.basic();
                    self.raw_token_request("token", &self.endpoints.token, &form, basic, self.token_body()).await
                })
                .await;
            match result {
                Ok(body) => return self.token_set_from_map(&body, GrantUsed::DeviceCode, None).await,
                Err(FlowError::Provider(d)) if d.provider.error == "authorization_pending" => {}
                Err(FlowError::Provider(d)) if d.provider.error == "slow_down" => {
                    interval += polling.slow_down_increment;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Introspects a token (RFC 7662).
    pub async fn introspect(&self, token: &SecretString, kind: TokenKind) -> Result<Introspection, FlowError> {
        let url =
            self.endpoints.introspect.as_deref().ok_or_else(|| {
                FlowError::Unsupported(format!("`{}` has no introspection endpoint", self.profile.id))
            })?;
        let url = &IntrospectionUrl::new(url.to_owned()).map_err(|e| FlowError::Configuration(e.to_string()))?;
        let response = self
            .with_secrets(true, |secret: Option<SecretString>| async move {
                let secret = secret.as_ref();
                let client = self.client(secret).set_introspection_url(url.clone());
                let access = AccessToken::new(token.expose_secret().to_owned());
                let hint = match kind {
                    TokenKind::Access => "access_token",
                    TokenKind::Refresh => "refresh_token",
                };
                let mut request = client.introspect(&access).set_token_type_hint(hint);
                for (k, v) in self.assertion_params()? {
                    request = request.add_extra_param(k, v);
                }
                request.request_async(&self.http).await.map_err(|e| self.token_error("introspect", e))
            })
            .await?;
        Ok(Introspection {
            active: response.active(),
            exp: response.exp().and_then(|t| u64::try_from(t.timestamp()).ok()),
            iat: response.iat().and_then(|t| u64::try_from(t.timestamp()).ok()),
            scopes: response.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()),
            client_id: response.client_id().map(|c| c.to_string()),
            username: response.username().map(str::to_owned),
            sub: response.sub().map(str::to_owned),
            token_type: response.token_type().map(|t| t.as_ref().to_owned()),
        })
    }

    /// Revokes a token (RFC 7009). Revoking a refresh token usually revokes its access tokens.
    pub async fn revoke(&self, token: &SecretString, kind: TokenKind) -> Result<(), FlowError> {
        // A plain form post: `oauth2` refuses revocation URLs that are not https, and the
        // test provider (like any loopback endpoint) is http.
        let url = self
            .endpoints
            .revoke
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no revocation endpoint", self.profile.id)))?;
        let hint = match kind {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        };
        self.with_secrets(true, |secret: Option<SecretString>| async move {
            let credentials = self.client_auth(secret.as_ref())?;
            let mut form = vec![("token", token.expose_secret()), ("token_type_hint", hint)];
            form.extend(credentials.form());
            let basic = credentials.basic();
            self.raw_post("revoke", url, &form, basic, Body::Form).await.map(drop)
        })
        .await
    }

    /// The connection this connector issues token sets for: its profile, environment and
    /// token endpoint host.
    pub fn origin(&self) -> TokenOrigin {
        let token_host = url::Url::parse(&self.endpoints.token)
            .ok()
            .and_then(|url| {
                let host = url.host_str()?.to_owned();
                Some(url.port().map_or(host.clone(), |port| format!("{host}:{port}")))
            })
            .unwrap_or_default();
        TokenOrigin { profile: self.profile.id.clone(), environment: self.environment.clone(), token_host }
    }

    /// Refuses a token set issued for another connection (profile, environment or token
    /// host), before any request: [`Connector::refresh`] checks it itself; callers of
    /// [`Connector::revoke`] and [`Connector::introspect`], which take a bare token, check
    /// the set it came from. A set with no recorded origin passes.
    pub fn check_origin(&self, tokens: &TokenSet) -> Result<(), FlowError> {
        match &tokens.origin {
            Some(found) if *found != self.origin() => {
                Err(FlowError::ForeignTokens { found: Box::new(found.clone()), expected: Box::new(self.origin()) })
            }
            _ => Ok(()),
        }
    }

    /// A token set from a token response obtained elsewhere (tokens a platform already holds),
    /// read exactly as this connector reads its own: kept fields, scopes, and the expiry from
    /// `expires_in`, introspection or the profile's assumed lifetime.
    pub async fn import_tokens(&self, response: &Map<String, Value>) -> Result<TokenSet, FlowError> {
        self.token_set_from_map(response, GrantUsed::AuthorizationCode, None).await
    }

    /// The API base URL of a connection: `api.base_url` rendered with its token set's kept
    /// fields (Salesforce: `instance_url`), held to the same rules as an endpoint.
    pub fn api_base_url(&self, tokens: &TokenSet) -> Result<String, FlowError> {
        let api =
            self.profile.api.as_ref().ok_or_else(|| {
                FlowError::Unsupported(format!("`{}` declares no API (`api.base_url`)", self.profile.id))
            })?;
        let params: Map<String, Value> = self
            .profile
            .parameters
            .keys()
            .map(|k| {
                let value = self.config.selection.parameters.get(k);
                (k.clone(), value.map_or(Value::Null, |v| Value::String(v.clone())))
            })
            .collect();
        let context = minijinja::Value::from(minijinja::value::Serde(json!({
            "env": env_value(&self.profile, &self.environment),
            "params": params,
            "token": tokens.fields,
        })));
        let rendered = render(&api.base_url, &context)
            .map_err(|e| FlowError::Configuration(format!("`api.base_url` does not render: {e}")))?;
        match endpoint_problem(&rendered) {
            // The URL may come from the provider's token response: name the problem, not the value.
            Some(why) => Err(FlowError::Configuration(format!("`api.base_url` renders to an unusable URL, {why}"))),
            None => Ok(rendered.trim_end_matches('/').to_owned()),
        }
    }

    /// Runs the profile's connection test (`api.verify`): a `GET` under the API base URL with
    /// the access token. Any 2xx passes; an error answer is diagnosed by the profile's error
    /// map (phase `api`); 5xx and timeouts are transient.
    pub async fn verify(&self, tokens: &TokenSet) -> Result<(), FlowError> {
        const ENDPOINT: &str = "api";
        let verify = self.profile.api.as_ref().and_then(|api| api.verify.as_ref()).ok_or_else(|| {
            FlowError::Unsupported(format!("`{}` declares no connection test (`api.verify`)", self.profile.id))
        })?;
        let url = format!("{}{}", self.api_base_url(tokens)?, verify.path);
        let request = oauth2::http::Request::builder()
            .method(oauth2::http::Method::GET)
            .uri(url.as_str())
            .header(oauth2::http::header::ACCEPT, "application/json")
            .header(oauth2::http::header::AUTHORIZATION, format!("Bearer {}", tokens.access_token.expose_secret()))
            .body(Vec::new())
            .map_err(|e| FlowError::Configuration(format!("the connection test's URL: {e}")))?;
        let response =
            self.http.send(request).await.map_err(|source| FlowError::Transport { endpoint: ENDPOINT, source })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        match ProviderError::from_body(ErrorPhase::Api, Some(status), response.body()) {
            Some(provider) => Err(FlowError::Provider(Box::new(self.diagnose(provider)))),
            None => Err(FlowError::InvalidResponse { endpoint: ENDPOINT, detail: format!("HTTP {status}") }),
        }
    }

    /// Client authentication for a plain post, as the profile says: form fields (the id,
    /// and the secret or a signed assertion), or the HTTP Basic pair.
    fn client_auth(&self, secret: Option<&SecretString>) -> Result<ClientCredentials, FlowError> {
        let id = self.config.client_id.clone();
        let mut credentials = ClientCredentials::default();
        match (self.profile.auth.client_auth.standard(), secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                credentials.basic = Some((id, secret.expose_secret().to_owned()));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                credentials.form.push(("client_id", id));
                credentials.form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            _ => {
                credentials.form.push(("client_id", id));
                credentials.form.extend(self.assertion_params()?);
            }
        }
        Ok(credentials)
    }

    /// What a provider error means, from the profile's error map, with the fix rendered for
    /// this connection.
    pub fn diagnose(&self, error: ProviderError) -> Diagnosis {
        let Some((id, rule)) = matching_rule(&self.profile, &error) else {
            return match crate::standard_errors::standard_error(&error.error, error.phase) {
                Some(standard) => Diagnosis {
                    kind: standard.kind.into(),
                    rule: None,
                    meaning: Some(format!("{} ({})", standard.meaning, standard.reference)),
                    hint: Some(standard.fix.to_owned()),
                    provider: error,
                },
                None => {
                    Diagnosis { kind: DiagnosisKind::Unknown, rule: None, meaning: None, hint: None, provider: error }
                }
            };
        };
        let scopes = scope_entries(&self.profile, &self.plan);
        let app_name = format!("{} integration", self.profile.name);
        let target = GuideTarget {
            environment: &self.environment,
            variant: None,
            plan: &self.plan,
            scopes: &scopes,
            actions: &self.config.selection.actions,
            callback_url: self.config.selection.redirect_uri.as_deref().unwrap_or_default(),
            app_name: &app_name,
            refresh_sends_secret: self.refresh_sends_secret,
        };
        let context = guide_context(&self.profile, &target);
        let hint = render(&rule.fix, &context).ok().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        Diagnosis {
            kind: rule.kind.into(),
            rule: Some(id.to_owned()),
            meaning: Some(rule.meaning.split_whitespace().collect::<Vec<_>>().join(" ")),
            hint,
            provider: error,
        }
    }

    /// How token-endpoint requests are encoded, per the profile.
    fn token_body(&self) -> Body {
        match self.profile.auth.token_request_format {
            TokenRequestFormat::Form => Body::Form,
            TokenRequestFormat::Json => Body::Json,
        }
    }

    /// A token request with a JSON body, for providers that refuse forms (the `oauth2`
    /// crate sends forms only). Client authentication as the profile says.
    async fn json_token_request(
        &self,
        url: &str,
        params: &[(&str, &str)],
        send_secret: bool,
    ) -> Result<Map<String, Value>, FlowError> {
        self.with_secrets(send_secret, |secret: Option<SecretString>| async move {
            let credentials = self.client_auth(secret.as_ref())?;
            let mut params = params.to_vec();
            params.extend(credentials.form());
            let basic = credentials.basic();
            self.raw_token_request("token", url, &params, basic, Body::Json).await
        })
        .await
    }

    fn token_url(&self) -> Result<TokenUrl, FlowError> {
        TokenUrl::new(self.endpoints.token.clone()).map_err(|e| FlowError::Configuration(e.to_string()))
    }

    fn token_error<T: ErrorResponse + Serialize + 'static>(
        &self,
        endpoint: &'static str,
        error: RequestTokenError<TransportError, T>,
    ) -> FlowError {
        match error {
            RequestTokenError::ServerResponse(response) => {
                // The standard error types serialize to the wire shape; read it back generically.
                let body = serde_json::to_vec(&response).unwrap_or_default();
                match ProviderError::from_body(ErrorPhase::Token, None, &body) {
                    Some(provider) => FlowError::Provider(Box::new(self.diagnose(provider))),
                    None => FlowError::InvalidResponse { endpoint, detail: "an error without a code".to_owned() },
                }
            }
            RequestTokenError::Request(source) => FlowError::Transport { endpoint, source },
            RequestTokenError::Parse(e, _body) => FlowError::InvalidResponse {
                endpoint,
                // Neither the body nor serde's message (which can quote values) is repeated.
                detail: format!("not the expected JSON ({:?} error at `{}`)", e.inner().classify(), e.path()),
            },
            RequestTokenError::Other(detail) => FlowError::InvalidResponse { endpoint, detail },
        }
    }

    /// A form POST whose 200 answer body is returned; any other answer is read as a
    /// provider error.
    async fn raw_post(
        &self,
        endpoint: &'static str,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        encoding: Body,
    ) -> Result<Vec<u8>, FlowError> {
        let request = post(url, form, basic, encoding).map_err(|source| FlowError::Transport { endpoint, source })?;
        let response = self.http.send(request).await.map_err(|source| FlowError::Transport { endpoint, source })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response.into_body());
        }
        match ProviderError::from_body(ErrorPhase::Token, Some(status), response.body()) {
            Some(provider) => Err(FlowError::Provider(Box::new(self.diagnose(provider)))),
            None => {
                Err(FlowError::InvalidResponse { endpoint, detail: format!("HTTP {status} without an OAuth error") })
            }
        }
    }

    async fn raw_token_request(
        &self,
        endpoint: &'static str,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        encoding: Body,
    ) -> Result<Map<String, Value>, FlowError> {
        let body = self.raw_post(endpoint, url, form, basic, encoding).await?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(FlowError::InvalidResponse { endpoint, detail: "not a JSON object".to_owned() }),
            Err(e) => Err(FlowError::InvalidResponse {
                endpoint,
                detail: format!("not JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
            }),
        }
    }

    async fn token_set(
        &self,
        response: &TokenResponse,
        grant: GrantUsed,
        previous_refresh: Option<&SecretString>,
    ) -> Result<TokenSet, FlowError> {
        let map = match serde_json::to_value(response) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(FlowError::InvalidResponse {
                    endpoint: "token",
                    detail: "unreadable token response".to_owned(),
                });
            }
        };
        self.token_set_from_map(&map, grant, previous_refresh).await
    }

    async fn token_set_from_map(
        &self,
        map: &Map<String, Value>,
        grant: GrantUsed,
        previous_refresh: Option<&SecretString>,
    ) -> Result<TokenSet, FlowError> {
        let requested: Vec<String> = self.plan.values().into_iter().map(str::to_owned).collect();
        let mut tokens =
            TokenSet::from_response(&self.profile, map, grant, self.now_ms(), &requested, previous_refresh)
                .map_err(|e| FlowError::InvalidResponse { endpoint: "token", detail: e.0 })?;
        tokens.origin = Some(self.origin());
        if tokens.expiry_source != ExpirySource::ExpiresIn
            && self.profile.auth.tokens.introspect_for_expiry
            && self.endpoints.introspect.is_some()
        {
            match self.introspect(&tokens.access_token, TokenKind::Access).await {
                Ok(Introspection { active: true, exp: Some(exp), .. }) => {
                    tokens.expires_at = Some(exp);
                    tokens.expiry_source = ExpirySource::Introspection;
                }
                Ok(_) => {
                    tracing::warn!(profile = %self.profile.id, "introspection gave no expiry; assuming the profile's lifetime")
                }
                Err(e) => {
                    tracing::warn!(profile = %self.profile.id, error = %e, "introspection failed; assuming the profile's lifetime")
                }
            }
        }
        Ok(tokens)
    }
}

/// RFC 7523 section 2.2.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A random, unguessable JWT id.
fn random_id() -> String {
    use rand::Rng as _;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(32).map(char::from).collect()
}

/// Client authentication for one plain post. Not `Debug`: it holds the secret.
#[derive(Default)]
struct ClientCredentials {
    form: Vec<(&'static str, String)>,
    basic: Option<(String, String)>,
}

impl ClientCredentials {
    fn form(&self) -> impl Iterator<Item = (&str, &str)> {
        self.form.iter().map(|(k, v)| (*k, v.as_str()))
    }

    fn basic(&self) -> Option<(&str, &str)> {
        self.basic.as_ref().map(|(id, secret)| (id.as_str(), secret.as_str()))
    }
}
