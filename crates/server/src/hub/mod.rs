//! The hub: the typed service behind every route. Handlers translate HTTP into calls here;
//! this module calls the runtime (connectors, token manager), the validator (through
//! `Connector::new`) and the store, and never redoes what they do.

use crate::crypto::{Cell, Keyring};
use crate::domain::{ConnectionDiagnosis, ConnectionState, EndUser, IntegrationSettings, Parameters};
use crate::error::{HubError, ProblemCode};
use crate::ids;
use crate::resources::{
    AccessTokenView, Connection, ConnectionList, Integration, NewConnection, NewIntegration, NewSession, Reloaded,
    RevocationResult, SessionCreated, TestResult,
};
use crate::store::{
    ApiKeyRecord, AuthorizationRecord, ConnectionFilter, ConnectionRecord, EventRecord, IntegrationRecord,
    SessionRecord, Store, StoreError as DbError, TokensUpdate,
};
use indexmap::IndexMap;
use keyway_diagnostics::Diagnostic;
use keyway_manifest::model::Profile;
use keyway_runtime::{
    Callback, Clock, ConfigError, Connector, ConnectorConfig, Current, DiagnosisKind, FlowError, HttpClient,
    RefreshClaim, RefreshPolicy, Registry, STATE_TTL, Selection, SharedRegistry, Stamp, StateError, StoreError,
    StoreFuture, TokenError, TokenKind, TokenManager, TokenSet, TokenStore, check_state,
};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connect session token may be used.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// Connectors kept by configuration unless told otherwise (least recently used go first).
pub const DEFAULT_CACHED_CONNECTORS: usize = 4096;
/// Cold opens are serialized per connection by one of this many locks.
const OPENING_LOCKS: usize = 64;
/// The longest end-user id, URL and similar free text accepted.
const MAX_TEXT: usize = 2000;
/// The most connections one page lists.
pub const MAX_PAGE: u32 = 1000;
/// How many connections a page lists unless asked.
pub const DEFAULT_PAGE: u32 = 100;

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
    /// How much is kept in memory.
    pub cache: CacheOptions,
    /// Whether each credential handed out leaves an audit record (`credential.read`). Off,
    /// reads go unrecorded (a record per read is the trail's volume); refusals, refreshes
    /// and changes are recorded either way.
    pub audit_reads: bool,
}

/// How many connections and connectors a hub keeps in memory; the least recently used go
/// first, and are read from the database again when next used.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Connections (their tokens) in the token manager.
    pub connections: usize,
    /// Connectors (an integration's configuration with a connection's parameters).
    pub connectors: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { connections: keyway_runtime::DEFAULT_CAPACITY, connectors: DEFAULT_CACHED_CONNECTORS }
    }
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
    /// Audit records of reads and refusals written in batches.
    pub audit_records_batched: std::sync::atomic::AtomicU64,
    /// The batches (statements) they took.
    pub audit_batches: std::sync::atomic::AtomicU64,
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

mod api_keys;
mod audit;
mod connect;
mod connections;
mod credentials;
mod freshness;
mod integrations;
mod token_store;
mod webhooks;

pub use api_keys::{Caller, MAX_KEY_LIFETIME, api_key_view};
pub use audit::{AuditQuery, MAX_AUDIT_PAGE};
pub use connect::{
    ConnectPage, Finished, FormRefused, PageField, PageIntegration, PageParameter, PageScope, SessionCookie, Started,
    Submitted,
};
pub use connections::ConnectionQuery;
use token_store::{EncryptedTokenStore, open_tokens};
pub use webhooks::{WebhookError, WebhookOptions, signature_header};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnectorKey {
    integration: String,
    version: i64,
    parameters: String,
}

/// A profile whose guide page is asked for, that page's URL, and the callback URL the hub
/// receives the profile's authorizations at (the one an admin registers).
#[derive(Debug, Clone)]
pub struct GuideSource {
    /// The profile.
    pub profile: Arc<Profile>,
    /// `https://connect.example.com/guide/salesforce`.
    pub base: String,
    /// `https://connect.example.com/v1/connect/oauth2/salesforce/callback`.
    pub callback: String,
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
    connectors: Mutex<lru::LruCache<ConnectorKey, Arc<Connector>>>,
    /// Serialize opening a connection in the token manager (the cold path), so two callers
    /// never open two copies whose refreshes would not see each other; by connection id.
    opening: Vec<tokio::sync::Mutex<()>>,
    /// The database's current rows, asked per request in batches.
    freshness: freshness::Freshness,
    /// Bumped by every reload of the profiles: entries built before are stale.
    generation: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
    /// Tokens due within this are refreshed (the token manager's skew).
    refresh_margin: Duration,
    webhook: Option<WebhookOptions>,
    give_up_after: Duration,
    audit_reads: bool,
    /// This process's name in leases.
    lease_owner: String,
    /// When this instance last recorded each API key's use (`last used`, once a minute).
    key_uses: Mutex<HashMap<String, i64>>,
    /// The batched writer of reads' audit records.
    audit: audit::AuditWriter,
    /// How long a refresh lease lasts.
    lease: Duration,
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

impl Hub {
    /// Runs one request against one view of the database: its first freshness check reads
    /// the change log (after the request began), its later checks use what that read left.
    pub async fn per_request<F: std::future::Future>(request: F) -> F::Output {
        freshness::Freshness::per_request(request).await
    }
}

impl Hub {
    /// A hub over a loaded registry, a store and a keyring.
    pub fn new(
        registry: Registry,
        store: Arc<dyn Store>,
        keys: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        options: HubOptions,
    ) -> Result<Hub, keyway_runtime::TransportError> {
        let http = HttpClient::new(&options.http)?;
        let metrics = Arc::new(Metrics::default());
        // The lease outlasts every attempt of a refresh (timeout and backoff each time), so an
        // instance never refreshes with a refresh token another instance is still using.
        let lease = refresh_lease(&options.http, &options.refresh);
        let lease_owner = ids::new_id(ids::INSTANCE);
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
        let freshness = freshness::Freshness::new(Arc::clone(&store), options.cache.connections);
        let audit = audit::AuditWriter::new(Arc::clone(&store), Arc::clone(&metrics));
        let tokens =
            TokenManager::with_capacity(token_store, Arc::clone(&clock), options.refresh, options.cache.connections);
        Ok(Hub {
            registry: SharedRegistry::new(registry),
            store,
            keys,
            http,
            tokens,
            clock,
            public_url: options.public_url.trim_end_matches('/').to_owned(),
            connectors: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(options.cache.connectors.max(1)).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            opening: (0..OPENING_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            freshness,
            generation: std::sync::atomic::AtomicU64::new(0),
            metrics,
            refresh_margin,
            webhook,
            give_up_after: options.give_up_after,
            audit_reads: options.audit_reads,
            lease_owner,
            lease,
            key_uses: Mutex::new(HashMap::new()),
            audit,
        })
    }

    /// How many connections the token manager holds in memory now.
    pub fn cached_connections(&self) -> usize {
        self.tokens.len()
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

    fn now(&self) -> i64 {
        self.clock.now() as i64
    }

    /// The profiles in use.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

    /// Reloads the profiles (blocking: it reads the directory); on failure the ones in use
    /// stay. Connections keep their tokens and state; their connectors are rebuilt on next use.
    pub fn reload(&self) -> Result<Reloaded, HubError> {
        let registry = self.registry.reload().map_err(|e| {
            HubError::new(
                ProblemCode::ProfilesInvalid,
                format!("{} error(s); the profiles in use stay", e.error_count()),
            )
            .with_diagnostics(
                e.diagnostics.iter().filter(|d| d.is_error()).map(crate::error::ProblemDiagnostic::from).collect(),
            )
        })?;
        self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(profiles = registry.len(), "profiles reloaded");
        Ok(Reloaded { profiles: registry.len(), warnings: registry.warnings().len() })
    }

    /// The callback URL of a profile's connections.
    pub fn callback_url(&self, profile: &str) -> String {
        format!("{}/v1/connect/oauth2/{profile}/callback", self.public_url)
    }

    // ---- guides ---------------------------------------------------------------------------

    /// A loaded profile for its guide page, and where that page lives (the base of its
    /// shareable URLs).
    pub fn guide(&self, id: &str) -> Result<GuideSource, HubError> {
        let profile = self.profile(id).ok_or_else(|| {
            HubError::new(ProblemCode::GuideProfileUnknown, "No profile of that name is loaded.")
                .with_fix("Check the profile id in the address (`keyway inspect` lists them).")
        })?;
        // Profile ids are lower-case words and hyphens (the schema's pattern): nothing to encode.
        let base = format!("{}/guide/{}", self.public_url, profile.id);
        let callback = self.callback_url(&profile.id);
        Ok(GuideSource { profile, base, callback })
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ready(&self) -> Result<(), HubError> {
        Ok(self.store.ping().await?)
    }

    // ---- connectors ---------------------------------------------------------------------

    fn profile(&self, id: &str) -> Option<Arc<Profile>> {
        self.registry.current().get(id)
    }

    /// An integration's client secret and staged secret, decrypted.
    fn secrets_of(&self, record: &IntegrationRecord) -> Result<(Option<SecretString>, Option<SecretString>), HubError> {
        let secret = |column: &'static str, blob: &Option<Vec<u8>>| -> Result<Option<SecretString>, HubError> {
            let Some(blob) = blob else { return Ok(None) };
            let cell = Cell { table: "integrations", row: &record.id, column };
            let plain = self.keys.decrypt(cell, blob).map_err(|e| {
                tracing::error!(integration = %record.id, error = %e, "a stored secret does not decrypt");
                HubError::new(ProblemCode::SecretUndecryptable, format!("{e}; check the key file"))
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
        parameters: &Parameters,
    ) -> Result<ConnectorConfig, HubError> {
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
                grant: None,
            },
            pkce: settings.pkce,
            refresh_sends_secret: settings.refresh_sends_secret,
            private_key: None,
            private_key_id: None,
        })
    }

    /// The connector of an integration with a connection's parameters (cached).
    fn connector(&self, record: &IntegrationRecord, parameters: &Parameters) -> Result<Arc<Connector>, HubError> {
        let key = ConnectorKey {
            integration: record.id.clone(),
            version: record.version,
            parameters: serde_json::to_string(parameters).unwrap_or_default(),
        };
        if let Some(found) = self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(Arc::clone(found));
        }
        let profile = self.profile(&record.profile).ok_or_else(|| {
            HubError::new(
                ProblemCode::ProfileUnavailable,
                format!("the profile `{}` is not in the profiles directory", record.profile),
            )
        })?;
        let config = self.connector_config(record, &record.settings, parameters)?;
        let connector = Connector::new(profile, config, self.http.clone())
            .map_err(|ConfigError(diagnostics)| HubError::invalid_configuration(&diagnostics))?
            .with_clock(Arc::clone(&self.clock));
        let connector = Arc::new(connector);
        self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).put(key, Arc::clone(&connector));
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
            (
                "keyway_audit_read_records_total",
                "Audit records of reads and refusals, written in batches.",
                m.audit_records_batched.load(Relaxed),
            ),
            ("keyway_audit_batches_total", "Statements those records took.", m.audit_batches.load(Relaxed)),
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
            for &s in ConnectionState::ALL {
                let n = counts.iter().find(|(state, _)| *state == s).map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "keyway_connections{{state=\"{s}\"}} {n}");
            }
        }
        out
    }
}

/// How long a refresh may take at most: every attempt's timeout and every backoff between
/// attempts, plus one timeout more as a margin. A refresh lease lasts this long.
pub fn refresh_lease(http: &keyway_runtime::HttpOptions, policy: &RefreshPolicy) -> Duration {
    policy.longest_refresh(http.timeout) + http.timeout
}
