//! A connector: one profile plus one tenant's configuration, turned into concrete OAuth
//! requests. The files follow the flows' seams:
//!
//! - this file: [`ConnectorConfig`], [`Connector::new`] (the configuration checked against the
//!   profile), accessors, and the connection token sets are issued for;
//! - `endpoints.rs`: how endpoints are rendered at runtime (once, in [`Connector::new`]);
//! - `authorize.rs`: the authorization URL, `state` bound to a session, PKCE, `nonce`,
//!   callbacks;
//! - `token_endpoint.rs`: the one path of every request to the authorization server, and
//!   token sets read from its answers;
//! - `grants.rs`: the code, refresh, client credentials and JWT bearer grants' parameters;
//! - `id_token.rs`: the OpenID Connect ID token's `nonce`, checked at the code exchange;
//! - `device.rs`: the device flow (start, then polling the token endpoint);
//! - `client_auth.rs`: client authentication per `client_auth`, and the staged secret;
//! - `jwt.rs`: JWTs signed with the connection's private key;
//! - `introspection.rs`, `revocation.rs`: RFC 7662 and RFC 7009;
//! - `diagnose.rs`: provider errors through the profile's error map;
//! - `api.rs`: the API base URL and the connection test;
//! - `credential.rs`: what a credential puts on a request to the provider's API.
//!
//! The `oauth2` crate is kept for what it does well: the authorization URL, its random
//! `state` and the PKCE S256 challenge. Every request to the authorization server (each grant
//! at the token endpoint, device authorization, introspection, revocation) is one plain post
//! through `token_endpoint.rs`, so there is one body encoding (form, or JSON per
//! `token_request_format`), one client authentication and one reading of answers and errors.

mod api;
mod authorize;
mod client_auth;
mod credential;
mod device;
mod diagnose;
mod endpoints;
mod exchange;
mod grants;
mod id_token;
mod introspection;
mod jwt;
mod revocation;
mod token_endpoint;

pub use authorize::{AuthorizationRequest, Callback};
pub use credential::RequestCredential;
pub use device::{DeviceAuthorization, DevicePolling};
pub use introspection::Introspection;

use crate::clock::{Clock, SystemClock};
use crate::errors::{ConfigError, FlowError};
use crate::http::HttpClient;
use crate::issuer::IssuerPolicy;
use crate::tokens::{TokenOrigin, TokenSet};
use authorize::Pending;
use endpoints::Endpoints;
use keyway_diagnostics::{Code, Diagnostic, Severity};
use keyway_manifest::model::{ClientAuth, Grant, Pkce, Profile};
use keyway_validate::{ScopePlan, Selection, check_selection};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

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

/// Which token a revoke or introspect call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The access token.
    Access,
    /// The refresh token.
    Refresh,
}

impl TokenKind {
    /// The `token_type_hint` that names it (RFC 7009, RFC 7662).
    fn hint(self) -> &'static str {
        match self {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        }
    }
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

/// A connection setting the profile refuses, at its place in the configuration.
fn invalid_parameter(message: String, pointer: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidParameter, message).at_pointer(pointer)
}

impl Connector {
    /// Checks `config` against the profile (actions, scopes, environment, parameters,
    /// redirect URI, PKCE and grant settings) and renders the endpoints. No request is made.
    pub fn new(profile: Arc<Profile>, config: ConnectorConfig, http: HttpClient) -> Result<Connector, ConfigError> {
        let (plan, diagnostics) = check_selection(&profile, &config.selection);
        let mut errors: Vec<_> = diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect();
        let credential_problem = |message: String, pointer: &str| {
            Diagnostic::new(Code::InvalidClientCredentials, message).at_pointer(pointer)
        };
        let oauth = profile.auth.is_oauth2();
        if !oauth {
            // The end user's fields are the credential; an app's client credentials mean nothing.
            if !config.client_id.is_empty() || config.client_secret.is_some() || config.staged_client_secret.is_some() {
                errors.push(credential_problem(
                    format!(
                        "`{}` links accounts with `{}`, not an OAuth client: give no client id or secret",
                        profile.id,
                        profile.auth.kind.as_str()
                    ),
                    "/client_id",
                ));
            }
        } else if config.client_id.trim().is_empty() {
            errors.push(credential_problem("the client id is empty".to_owned(), "/client_id"));
        } else if config.client_id.len() > MAX_CLIENT_CREDENTIAL {
            errors.push(credential_problem(
                format!("the client id is longer than {MAX_CLIENT_CREDENTIAL} bytes"),
                "/client_id",
            ));
        }
        for (pointer, secret) in
            [("/client_secret", &config.client_secret), ("/staged_client_secret", &config.staged_client_secret)]
        {
            let len = secret.as_ref().map(|s| s.expose_secret().len());
            if len.is_some_and(|len| len == 0 || len > MAX_CLIENT_CREDENTIAL) {
                errors.push(credential_problem(
                    format!("the secret must be 1 to {MAX_CLIENT_CREDENTIAL} bytes"),
                    pointer,
                ));
            }
        }
        if profile.auth.client_auth == ClientAuth::PrivateKeyJwt && config.private_key.is_none() {
            errors.push(
                Diagnostic::new(
                    Code::MissingPrivateKey,
                    format!("`{}` authenticates the client with a signed JWT (`private_key_jwt`); the connection has no private key", profile.id),
                )
                .at_pointer("/private_key")
                .with_help("give the PEM private key whose public key the app registered"),
            );
        }
        let pkce = match (profile.auth.pkce.unwrap_or(Pkce::Off), config.pkce) {
            (Pkce::Required, Some(false)) => {
                errors.push(
                    Diagnostic::new(
                        Code::PkceRequired,
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
                    Diagnostic::new(Code::PkceUnsupported, format!("`{}` does not support PKCE", profile.id))
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
        let rendered = endpoints::render_connection(&profile, &config.selection, &environment)?;
        let refresh_sends_secret = config.refresh_sends_secret.unwrap_or_else(|| profile.auth.refresh_sends_secret());
        Ok(Connector {
            profile,
            config,
            environment,
            plan,
            endpoints: rendered.endpoints,
            authorization_params: rendered.authorization_params,
            token_params: rendered.token_params,
            refresh_params: rendered.refresh_params,
            pkce,
            refresh_sends_secret,
            http,
            clock: Arc::new(SystemClock),
            pending: Mutex::new(HashMap::new()),
            issuer: rendered.issuer,
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

    /// Refuses a flow the profile does not offer.
    fn require_grant(&self, grant: Grant, what: &str) -> Result<(), FlowError> {
        if self.profile.auth.grants.contains(&grant) {
            Ok(())
        } else {
            Err(FlowError::Unsupported(format!("`{}` has no {what}", self.profile.id)))
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
