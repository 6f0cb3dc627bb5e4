//! The hub: the typed service behind every route. Handlers translate HTTP into calls here;
//! this module calls the runtime (connectors, token manager), the validator (through
//! `Connector::new`) and the store, and never redoes what they do.

use crate::crypto::{Cell, Keyring};
use crate::model::{
    AccessTokenView, Connection, ConnectionDiagnosis, ConnectionList, EndUser, Integration, IntegrationSettings,
    NewConnection, NewIntegration, NewSession, RevocationResult, SessionCreated, TestResult,
};
use crate::problem::ApiError;
use crate::store::{
    ApiKeyRecord, AuthorizationRecord, ConnectionFilter, ConnectionRecord, EventRecord, IntegrationRecord,
    SessionRecord, Store, StoreError as DbError, TokensUpdate,
};
use axum::http::StatusCode;
use indexmap::IndexMap;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::model::Profile;
use keyway_runtime::{
    Callback, Clock, ConfigError, Connector, ConnectorConfig, Diagnosis, DiagnosisKind, FlowError, HttpClient,
    RefreshClaim, RefreshPolicy, Registry, Selection, SharedRegistry, StoreError, StoreFuture, TokenError, TokenKind,
    TokenManager, TokenSet, TokenStore,
};
use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How long a connect session token may be used.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an authorization may wait for its callback.
const AUTHORIZATION_TTL: Duration = Duration::from_secs(10 * 60);
/// Connectors kept by configuration; past this the cache starts over.
const MAX_CONNECTORS: usize = 4096;
/// The longest end-user id, URL and similar free text accepted.
const MAX_TEXT: usize = 2000;
/// The most connections one page lists.
pub const MAX_PAGE: u32 = 1000;

/// Connection states.
pub mod state {
    /// Created, tokens not yet stored.
    pub const PENDING: &str = "pending";
    /// Working.
    pub const ACTIVE: &str = "active";
    /// Refreshes fail for a transient reason; retried.
    pub const DEGRADED: &str = "degraded";
    /// The user (or an admin) must act; the diagnosis says what.
    pub const NEEDS_REAUTH: &str = "needs_reauth";
    /// Revoked at the provider through keyway; reconnect to use again.
    pub const REVOKED: &str = "revoked";
    /// Every state.
    pub const ALL: [&str; 5] = [PENDING, ACTIVE, DEGRADED, NEEDS_REAUTH, REVOKED];
}

/// What a hub is started with.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The URL users and providers reach the hub at (`https://connect.example.com`): the
    /// connect page and the callback URLs are built from it.
    pub public_url: String,
    /// The runtime's HTTP client settings.
    pub http: keyway_runtime::HttpOptions,
    /// When and how tokens are refreshed.
    pub refresh: RefreshPolicy,
    /// Where webhook events go; `None`: no events are recorded.
    pub webhook: Option<WebhookOptions>,
    /// A connection whose refreshes have failed (transiently) for this long is given up:
    /// `needs_reauth`.
    pub give_up_after: Duration,
}

/// Nango's figure: refreshes failing on four distinct days.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(4 * 24 * 60 * 60);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Tokens handed out.
    pub tokens_served: std::sync::atomic::AtomicU64,
    /// Token sets saved: links, imports and refreshes.
    pub token_sets_saved: std::sync::atomic::AtomicU64,
    /// Token requests that failed.
    pub token_failures: std::sync::atomic::AtomicU64,
    /// Accounts linked through the connect page.
    pub connections_linked: std::sync::atomic::AtomicU64,
    /// Callbacks refused (state, issuer, provider error).
    pub callbacks_refused: std::sync::atomic::AtomicU64,
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

mod connect;
mod connections;
pub mod guide;
mod integrations;
mod token_store;
mod webhooks;

pub use connect::{ConnectPage, Finished, PageError, PageIntegration, PageParameter, PageScope, Started};
use token_store::{EncryptedTokenStore, tokens_cell};
pub use webhooks::{WebhookOptions, signature_header};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnectorKey {
    integration: String,
    version: i64,
    parameters: String,
}

/// The connect hub.
#[derive(Debug)]
pub struct Hub {
    registry: SharedRegistry,
    store: Arc<dyn Store>,
    keys: Arc<Keyring>,
    http: HttpClient,
    tokens: TokenManager,
    clock: Arc<dyn Clock>,
    public_url: String,
    connectors: Mutex<HashMap<ConnectorKey, Arc<Connector>>>,
    /// Serializes opening a connection in the token manager (the cold path), so two callers
    /// never open two copies whose refreshes would not see each other.
    opening: tokio::sync::Mutex<()>,
    /// API key id -> SHA-256 of its secret; filled from the store on first use.
    api_keys: RwLock<HashMap<String, [u8; 32]>>,
    metrics: Arc<Metrics>,
    /// Tokens due within this are refreshed (the token manager's skew).
    refresh_margin: Duration,
    webhook: Option<WebhookOptions>,
    give_up_after: Duration,
    /// This process's name in leases.
    lease_owner: String,
    /// How long a refresh lease lasts.
    lease: Duration,
}

/// A random identifier with a prefix: `intg_3f9a...`.
fn new_id(prefix: &str) -> String {
    let tail: String = rand::thread_rng().sample_iter(&Alphanumeric).take(22).map(char::from).collect();
    format!("{prefix}_{tail}")
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The origin (`scheme://host[:port]`) of a URL, when it is http(s).
pub use keyway_runtime::origin_of;

/// Why a URL the platform gives (return URL, allowed origin, webhook target) is refused.
fn web_url_problem(text: &str) -> Option<String> {
    keyway_validate::urls::web_url_problem(text, MAX_TEXT, true)
}

fn diagnosis_view(d: &Diagnosis, at: i64) -> ConnectionDiagnosis {
    ConnectionDiagnosis {
        kind: kind_name(d.kind).to_owned(),
        error: Some(d.provider.error.clone()),
        description: d.provider.description.clone(),
        rule: d.rule.clone(),
        meaning: d.meaning.clone(),
        fix: d.hint.clone(),
        at,
    }
}

fn kind_name(kind: DiagnosisKind) -> &'static str {
    match kind {
        DiagnosisKind::Reauthorize => "reauthorize",
        DiagnosisKind::RetryLater => "retry_later",
        DiagnosisKind::FixConfiguration => "fix_configuration",
        DiagnosisKind::ClientBug => "client_bug",
        DiagnosisKind::Unknown => "unknown",
    }
}

/// A diagnosis for a failure the provider did not explain (timeouts, 5xx, unreadable answers).
fn flow_diagnosis(e: &FlowError, at: i64) -> ConnectionDiagnosis {
    match e.diagnosis() {
        Some(d) => diagnosis_view(d, at),
        None => ConnectionDiagnosis {
            kind: if e.is_transient() { "retry_later" } else { "unknown" }.to_owned(),
            error: None,
            description: Some(e.to_string()),
            rule: None,
            meaning: None,
            fix: None,
            at,
        },
    }
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

impl Hub {
    /// A hub over a loaded registry, a store and a keyring.
    pub fn new(
        registry: Registry,
        store: Arc<dyn Store>,
        keys: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        options: HubOptions,
    ) -> Result<Hub, String> {
        let http = HttpClient::new(&options.http).map_err(|e| e.to_string())?;
        let metrics = Arc::new(Metrics::default());
        // The lease outlasts every attempt of a refresh (timeout and backoff each time), so an
        // instance never refreshes with a refresh token another instance is still using.
        let lease = refresh_lease(&options.http, &options.refresh);
        let lease_owner = new_id("inst");
        let token_store = Arc::new(EncryptedTokenStore {
            store: Arc::clone(&store),
            keys: Arc::clone(&keys),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
            owner: lease_owner.clone(),
            lease,
            claims: Mutex::new(HashMap::new()),
        });
        let refresh_margin = options.refresh.skew;
        let webhook = options.webhook.clone();
        let tokens = TokenManager::new(token_store, Arc::clone(&clock), options.refresh);
        Ok(Hub {
            registry: SharedRegistry::new(registry),
            store,
            keys,
            http,
            tokens,
            clock,
            public_url: options.public_url.trim_end_matches('/').to_owned(),
            connectors: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            api_keys: RwLock::new(HashMap::new()),
            metrics,
            refresh_margin,
            webhook,
            give_up_after: options.give_up_after,
            lease_owner,
            lease,
        })
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The public URL.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The keyring (cookie signing).
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    fn now(&self) -> i64 {
        self.clock.now() as i64
    }

    /// The profiles in use.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

    /// Reloads the profiles; on failure the ones in use stay. Connections keep their tokens
    /// and state; their connectors are rebuilt on next use.
    pub fn reload(&self) -> Result<(usize, usize), keyway_runtime::LoadError> {
        let registry = self.registry.reload()?;
        self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        tracing::info!(profiles = registry.len(), "profiles reloaded");
        Ok((registry.len(), registry.warnings().len()))
    }

    /// The callback URL of a profile's connections.
    pub fn callback_url(&self, profile: &str) -> String {
        format!("{}/v1/connect/oauth2/{profile}/callback", self.public_url)
    }

    // ---- API keys -------------------------------------------------------------------------

    /// Creates an API key; the returned string is shown once and stored only as a hash.
    pub async fn create_api_key(store: &dyn Store, name: &str, now: i64) -> Result<String, DbError> {
        let id: String = rand::thread_rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect();
        let secret: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
        let record = ApiKeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            secret_hash: sha256_hex(&secret),
            created_at: now,
            revoked_at: None,
        };
        store.insert_api_key(&record).await?;
        Ok(format!("kwk_{id}_{secret}"))
    }

    /// Checks a management API key (`kwk_ID_SECRET`): the secret's hash is compared in
    /// constant time.
    pub async fn check_api_key(&self, presented: &str) -> Result<(), ApiError> {
        let unauthorized =
            |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail.to_owned());
        if presented.starts_with("kwcs_") {
            return Err(unauthorized("a connect session token opens only its connect page, not the API"));
        }
        let Some((id, secret)) = presented.strip_prefix("kwk_").and_then(|rest| rest.split_once('_')) else {
            return Err(unauthorized("the API key is malformed or missing"));
        };
        let presented_hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let known = self.api_keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).copied();
        let expected = match known {
            Some(hash) => Some(hash),
            None if id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                match self.store.api_key(id).await? {
                    Some(record) if record.revoked_at.is_none() => {
                        let hash = hex_to_32(&record.secret_hash);
                        if let Some(hash) = hash {
                            self.api_keys
                                .write()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .insert(id.to_owned(), hash);
                        }
                        hash
                    }
                    _ => None,
                }
            }
            None => None,
        };
        match expected {
            Some(hash) if bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &presented_hash[..])) => Ok(()),
            _ => Err(unauthorized("the API key is not valid")),
        }
    }

    // ---- guides -------------------------------------------------------------------------

    /// The guide page of `profile` for `query` (a guide URL's or the page form's).
    pub fn guide_page(&self, profile: &str, query: &str) -> Result<guide::GuidePage, PageError> {
        let p = self.guide_profile(profile)?;
        Ok(guide::guide_page(&p, &self.guide_base(&p.id), query))
    }

    /// The part of the guide page that changes with the selection.
    pub fn guide_result(&self, profile: &str, query: &str) -> Result<guide::GuideResult, PageError> {
        let p = self.guide_profile(profile)?;
        Ok(guide::guide_result(&p, &self.guide_base(&p.id), query))
    }

    /// The guide as a self-contained HTML file; `Ok(Err)` lists why the selection is refused.
    #[allow(clippy::type_complexity)]
    pub fn guide_export(
        &self,
        profile: &str,
        query: &str,
    ) -> Result<Result<String, Vec<guide::PageDiagnostic>>, PageError> {
        let p = self.guide_profile(profile)?;
        Ok(guide::guide_export(&p, &self.guide_base(&p.id), query))
    }

    fn guide_profile(&self, id: &str) -> Result<Arc<Profile>, PageError> {
        self.profile(id).ok_or_else(|| PageError {
            status: StatusCode::NOT_FOUND,
            code: "guide_profile_unknown",
            message: "No profile of that name is loaded.".to_owned(),
            fix: Some("Check the profile id in the address (`keyway inspect` lists them).".to_owned()),
            fields: Vec::new(),
        })
    }

    /// Where a profile's guide page lives: the base of its shareable URLs.
    fn guide_base(&self, profile: &str) -> String {
        // Profile ids are lower-case words and hyphens (the schema's pattern): nothing to encode.
        format!("{}/guide/{profile}", self.public_url)
    }

    // ---- connectors ---------------------------------------------------------------------

    fn profile(&self, id: &str) -> Option<Arc<Profile>> {
        self.registry.current().get(id)
    }

    /// An integration's client secret and staged secret, decrypted.
    fn secrets_of(&self, record: &IntegrationRecord) -> Result<(Option<SecretString>, Option<SecretString>), ApiError> {
        let secret = |column: &'static str, blob: &Option<Vec<u8>>| -> Result<Option<SecretString>, ApiError> {
            let Some(blob) = blob else { return Ok(None) };
            let cell = Cell { table: "integrations", row: &record.id, column };
            let plain = self.keys.decrypt(cell, blob).map_err(|e| {
                tracing::error!(integration = %record.id, error = %e, "a stored secret does not decrypt");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_undecryptable",
                    "A stored secret cannot be decrypted",
                    format!("{e}; check the key file"),
                )
            })?;
            Ok(Some(SecretString::from(String::from_utf8_lossy(&plain).into_owned())))
        };
        Ok((
            secret("client_secret_blob", &record.client_secret_blob)?,
            secret("staged_client_secret_blob", &record.staged_client_secret_blob)?,
        ))
    }

    /// Decrypts an integration's secrets and builds the connector configuration.
    fn connector_config(
        &self,
        record: &IntegrationRecord,
        settings: &IntegrationSettings,
        parameters: &IndexMap<String, String>,
    ) -> Result<ConnectorConfig, ApiError> {
        let (client_secret, staged_client_secret) = self.secrets_of(record)?;
        let mut merged = settings.parameters.clone();
        for (k, v) in parameters {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(ConnectorConfig {
            client_id: record.client_id.clone(),
            client_secret,
            staged_client_secret,
            selection: Selection {
                environment: settings.environment.clone(),
                actions: settings.actions.clone(),
                custom_scopes: settings.custom_scopes.clone(),
                parameters: merged,
                redirect_uri: Some(self.callback_url(&record.profile)),
            },
            pkce: settings.pkce,
            refresh_sends_secret: settings.refresh_sends_secret,
            private_key: None,
            private_key_id: None,
        })
    }

    /// The connector of an integration with a connection's parameters (cached).
    fn connector(
        &self,
        record: &IntegrationRecord,
        parameters: &IndexMap<String, String>,
    ) -> Result<Arc<Connector>, ApiError> {
        let key = ConnectorKey {
            integration: record.id.clone(),
            version: record.version,
            parameters: serde_json::to_string(parameters).unwrap_or_default(),
        };
        if let Some(found) = self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(Arc::clone(found));
        }
        let profile = self.profile(&record.profile).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "profile_unavailable",
                "The integration's profile is not loaded",
                format!("the profile `{}` is not in the profiles directory", record.profile),
            )
        })?;
        let settings: IntegrationSettings = parse_json(&record.settings);
        let config = self.connector_config(record, &settings, parameters)?;
        let connector = Connector::new(profile, config, self.http.clone())
            .map_err(|ConfigError(diagnostics)| ApiError::invalid_configuration(&diagnostics))?
            .with_clock(Arc::clone(&self.clock));
        let connector = Arc::new(connector);
        let mut cache = self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_CONNECTORS {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&connector));
        Ok(connector)
    }

    /// `/metrics` in Prometheus text format.
    pub async fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        let mut out = String::new();
        for (name, help, value) in [
            ("keyway_tokens_served_total", "Access tokens handed out.", m.tokens_served.load(Relaxed)),
            (
                "keyway_token_sets_saved_total",
                "Token sets saved (links, imports and refreshes).",
                m.token_sets_saved.load(Relaxed),
            ),
            ("keyway_token_failures_total", "Token requests that failed.", m.token_failures.load(Relaxed)),
            (
                "keyway_connections_linked_total",
                "Accounts linked through the connect page.",
                m.connections_linked.load(Relaxed),
            ),
            ("keyway_callbacks_refused_total", "Callbacks refused.", m.callbacks_refused.load(Relaxed)),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP keyway_profiles Profiles loaded.\n# TYPE keyway_profiles gauge\nkeyway_profiles {}",
            self.registry.current().len()
        );
        if let Ok(counts) = self.store.connection_counts().await {
            let _ = writeln!(out, "# HELP keyway_connections Connections by state.\n# TYPE keyway_connections gauge");
            for s in state::ALL {
                let n = counts.iter().find(|(state, _)| state == s).map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "keyway_connections{{state=\"{s}\"}} {n}");
            }
        }
        out
    }
}

/// How long a refresh may take at most: every attempt's timeout and every backoff between
/// attempts, plus one timeout more as a margin. A refresh lease lasts this long.
pub fn refresh_lease(http: &keyway_runtime::HttpOptions, policy: &RefreshPolicy) -> Duration {
    let attempts = policy.max_attempts.max(1);
    let backoffs: Duration =
        (1..attempts).map(|i| policy.base_delay.saturating_mul(1u32 << (i - 1).min(16)).min(policy.max_delay)).sum();
    http.timeout * attempts + backoffs + http.timeout
}

fn hex_to_32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
