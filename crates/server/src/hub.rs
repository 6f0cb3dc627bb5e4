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
    ApiKeyRecord, AuthorizationRecord, ConnectionFilter, ConnectionRecord, IntegrationRecord, SessionRecord, Store,
    StoreError as DbError, TokensUpdate,
};
use axum::http::StatusCode;
use indexmap::IndexMap;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::model::Profile;
use keyway_runtime::{
    Callback, Clock, ConfigError, Connector, ConnectorConfig, Diagnosis, DiagnosisKind, FlowError, HttpClient,
    RefreshPolicy, Registry, Selection, SharedRegistry, StoreError, StoreFuture, TokenError, TokenKind, TokenManager,
    TokenSet, TokenStore,
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
}

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

/// The token manager's store: the connection row's encrypted token set. Saving a token set
/// marks the connection `active`.
#[derive(Debug)]
struct EncryptedTokenStore {
    store: Arc<dyn Store>,
    keys: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

fn tokens_cell(id: &str) -> Cell<'_> {
    Cell { table: "connections", row: id, column: "tokens_blob" }
}

impl EncryptedTokenStore {
    fn seal(&self, id: &str, tokens: &TokenSet) -> Result<TokensUpdate, StoreError> {
        let plain = serde_json::to_vec(tokens).map_err(|e| StoreError(format!("token set: {e}")))?;
        Ok(TokensUpdate {
            tokens_blob: self.keys.encrypt(tokens_cell(id), &plain),
            scopes: serde_json::to_string(&tokens.scopes).unwrap_or_else(|_| "[]".to_owned()),
            expires_at: tokens.expires_at.and_then(|t| i64::try_from(t).ok()),
        })
    }

    fn open(&self, id: &str, blob: &[u8]) -> Result<TokenSet, StoreError> {
        let plain = self.keys.decrypt(tokens_cell(id), blob).map_err(|e| StoreError(e.to_string()))?;
        // serde's message could quote a token: say only where it broke.
        serde_json::from_slice(&plain)
            .map_err(|e| StoreError(format!("stored token set unreadable at column {}", e.column())))
    }
}

impl TokenStore for EncryptedTokenStore {
    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>> {
        Box::pin(async move {
            let row = self.store.connection(connection).await.map_err(|e| StoreError(e.to_string()))?;
            match row.and_then(|r| r.tokens_blob) {
                Some(blob) => self.open(connection, &blob).map(Some),
                None => Ok(None),
            }
        })
    }

    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let update = self.seal(connection, tokens)?;
            let now = self.clock.now() as i64;
            match self.store.save_tokens(connection, &update, now).await {
                Ok(true) => {
                    bump(&self.metrics.token_sets_saved);
                    Ok(())
                }
                Ok(false) => Err(StoreError(format!("the connection `{connection}` was deleted"))),
                Err(e) => Err(StoreError(e.to_string())),
            }
        })
    }

    fn remove<'a>(&'a self, _connection: &'a str) -> StoreFuture<'a, ()> {
        // Rows are deleted by the hub, never by the manager.
        Box::pin(async { Ok(()) })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnectorKey {
    integration: String,
    version: i64,
    parameters: String,
}

/// Where a connect-page authorization starts: the provider's URL.
#[derive(Debug)]
pub struct Started {
    /// The authorization URL.
    pub url: String,
}

/// A refusal shown on a page (the connect page's form, or the callback's error page).
#[derive(Debug, Clone)]
pub struct PageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    pub fix: Option<String>,
    /// Per-field messages (`parameters/NAME` -> message), for the connect form.
    pub fields: Vec<(String, String)>,
}

impl PageError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> PageError {
        PageError { status, code, message: message.into(), fix: None, fields: Vec::new() }
    }

    fn with_fix(mut self, fix: impl Into<String>) -> PageError {
        self.fix = Some(fix.into());
        self
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "store failure");
        PageError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "The service is unavailable.")
            .with_fix("Try again in a moment.")
    }
}

/// What the connect page shows for one integration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageIntegration {
    /// The integration id.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The integration's name.
    pub name: Option<String>,
    /// The environment's label.
    pub environment: String,
    /// The scopes that will be requested.
    pub scopes: Vec<String>,
    /// The parameters the user must or may give.
    pub parameters: Vec<PageParameter>,
}

/// One parameter field on the connect page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageParameter {
    /// The form field's name.
    pub name: String,
    /// The label.
    pub label: String,
    /// The help text.
    pub description: Option<String>,
    /// An example value.
    pub example: Option<String>,
    /// Whether a value is needed.
    pub required: bool,
    /// What the user typed (after a refusal).
    pub value: String,
    /// Why the value was refused.
    pub error: Option<String>,
}

/// The connect page's model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectPage {
    /// Who is connecting.
    pub end_user: EndUser,
    /// Whether this reconnects an existing connection.
    pub reconnect: bool,
    /// The integrations offered.
    pub integrations: Vec<PageIntegration>,
    /// A refusal to show above the form.
    pub error: Option<String>,
}

/// A finished link, for the done page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finished {
    /// The connection id.
    pub connection_id: String,
    /// The provider's name.
    pub provider: String,
    /// Whether an existing connection was reconnected.
    pub reconnected: bool,
    /// The state after the connection test.
    pub state: String,
    /// Why the connection test failed.
    pub diagnosis: Option<ConnectionDiagnosis>,
    /// Where to send the user back.
    pub return_url: Option<String>,
    /// Where the result may be posted.
    pub allowed_origins: Vec<String>,
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
pub fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why a URL the platform gives (return URL, allowed origin) is refused, if it is.
fn web_url_problem(text: &str) -> Option<String> {
    if text.len() > MAX_TEXT {
        return Some(format!("longer than {MAX_TEXT} characters"));
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => return Some(format!("not a URL: {e}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some("it has user information in it".to_owned());
    }
    match url.scheme() {
        "https" => None,
        "http" if is_loopback(&url) => None,
        _ => Some("it must be https (or http on a loopback host)".to_owned()),
    }
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
        let token_store = Arc::new(EncryptedTokenStore {
            store: Arc::clone(&store),
            keys: Arc::clone(&keys),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
        });
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

    // ---- integrations ---------------------------------------------------------------------

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

    fn integration_view(&self, record: &IntegrationRecord) -> Integration {
        let settings: IntegrationSettings = parse_json(&record.settings);
        let connector = self.connector(record, &IndexMap::new()).ok();
        let profile = self.profile(&record.profile);
        let environment = connector.as_ref().map(|c| c.environment().to_owned()).or(settings.environment.clone());
        Integration {
            id: record.id.clone(),
            profile: record.profile.clone(),
            name: record.name.clone(),
            client_id: record.client_id.clone(),
            has_client_secret: record.client_secret_blob.is_some(),
            has_staged_client_secret: record.staged_client_secret_blob.is_some(),
            environment: environment.unwrap_or_default(),
            actions: settings.actions,
            custom_scopes: settings.custom_scopes,
            parameters: settings.parameters,
            pkce: connector.as_ref().map_or(settings.pkce.unwrap_or(true), |c| c.sends_pkce()),
            refresh_sends_secret: connector
                .as_ref()
                .map_or(settings.refresh_sends_secret.unwrap_or(true), |c| c.refresh_sends_secret()),
            scopes: match (&connector, &profile) {
                (Some(c), _) => c.scope_plan().values().into_iter().map(str::to_owned).collect(),
                _ => Vec::new(),
            },
            callback_url: self.callback_url(&record.profile),
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    /// Checks a would-be integration with the validator's connection checks (through the
    /// connector), before anything is stored.
    fn check_integration(&self, new: &NewIntegration) -> Result<(), ApiError> {
        let Some(profile) = self.profile(&new.profile) else {
            let registry = self.registry.current();
            let mut d = Diagnostic::new(Code::InvalidParameter, format!("there is no profile `{}`", new.profile))
                .at_pointer("/profile");
            if let Some(best) = keyway_manifest::closest(&new.profile, registry.ids()) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            return Err(ApiError::invalid_configuration(&[d]));
        };
        let mut problems = Vec::new();
        if new.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            problems.push(
                Diagnostic::new(Code::InvalidParameter, "the name is longer than 200 characters").at_pointer("/name"),
            );
        }
        if new.client_id.len() > MAX_TEXT {
            problems.push(
                Diagnostic::new(Code::InvalidParameter, format!("the client id is longer than {MAX_TEXT} characters"))
                    .at_pointer("/client_id"),
            );
        }
        for (pointer, secret) in
            [("/client_secret", &new.client_secret), ("/staged_client_secret", &new.staged_client_secret)]
        {
            if secret.as_ref().is_some_and(|s| s.expose_secret().is_empty() || s.expose_secret().len() > MAX_TEXT) {
                problems.push(
                    Diagnostic::new(Code::InvalidParameter, format!("the secret must be 1 to {MAX_TEXT} characters"))
                        .at_pointer(pointer),
                );
            }
        }
        let config = ConnectorConfig {
            client_id: new.client_id.clone(),
            client_secret: new.client_secret.clone(),
            staged_client_secret: new.staged_client_secret.clone(),
            selection: Selection {
                environment: new.environment.clone(),
                actions: new.actions.clone(),
                custom_scopes: new.custom_scopes.clone(),
                parameters: new.parameters.clone(),
                redirect_uri: Some(self.callback_url(&new.profile)),
            },
            pkce: new.pkce,
            refresh_sends_secret: new.refresh_sends_secret,
            private_key: None,
        };
        if let Err(ConfigError(diagnostics)) = Connector::new(profile, config, self.http.clone()) {
            problems.extend(diagnostics.into_iter().map(|mut d| {
                // The redirect URI is the hub's own callback URL, not part of the request.
                if d.pointer.as_deref() == Some("/redirect_uri") {
                    d.pointer = None;
                    d.help = Some("the callback URL comes from `--public-url`; set it to an https URL".to_owned());
                }
                d
            }));
        }
        if problems.iter().any(Diagnostic::is_error) {
            return Err(ApiError::invalid_configuration(&problems));
        }
        Ok(())
    }

    fn integration_record(&self, id: String, new: &NewIntegration, version: i64, created_at: i64) -> IntegrationRecord {
        let seal = |column: &'static str, secret: &Option<SecretString>| {
            secret.as_ref().map(|s| {
                self.keys.encrypt(Cell { table: "integrations", row: &id, column }, s.expose_secret().as_bytes())
            })
        };
        let settings = IntegrationSettings {
            environment: new.environment.clone(),
            actions: new.actions.clone(),
            custom_scopes: new.custom_scopes.clone(),
            parameters: new.parameters.clone(),
            pkce: new.pkce,
            refresh_sends_secret: new.refresh_sends_secret,
        };
        IntegrationRecord {
            client_secret_blob: seal("client_secret_blob", &new.client_secret),
            staged_client_secret_blob: seal("staged_client_secret_blob", &new.staged_client_secret),
            id: id.clone(),
            profile: new.profile.clone(),
            name: new.name.clone(),
            client_id: new.client_id.clone(),
            settings: serde_json::to_string(&settings).unwrap_or_default(),
            version,
            created_at,
            updated_at: self.now(),
        }
    }

    /// Creates an integration.
    pub async fn create_integration(&self, new: NewIntegration) -> Result<Integration, ApiError> {
        self.check_integration(&new)?;
        let record = self.integration_record(new_id("intg"), &new, 1, self.now());
        self.store.insert_integration(&record).await?;
        tracing::info!(integration = %record.id, profile = %record.profile, "integration created");
        Ok(self.integration_view(&record))
    }

    /// Every integration.
    pub async fn integrations(&self) -> Result<Vec<Integration>, ApiError> {
        Ok(self.store.integrations().await?.iter().map(|r| self.integration_view(r)).collect())
    }

    async fn integration_record_of(&self, id: &str) -> Result<IntegrationRecord, ApiError> {
        self.store.integration(id).await?.ok_or_else(|| ApiError::not_found("integration", id))
    }

    /// One integration.
    pub async fn integration(&self, id: &str) -> Result<Integration, ApiError> {
        Ok(self.integration_view(&self.integration_record_of(id).await?))
    }

    /// Changes an integration (JSON Merge Patch over its writable fields; a secret is set by
    /// a string, removed by `null`, kept when absent). Checked like a new one.
    pub async fn patch_integration(&self, id: &str, patch: Map<String, Value>) -> Result<Integration, ApiError> {
        let current = self.integration_record_of(id).await?;
        if let Some(profile) = patch.get("profile") {
            if profile.as_str() != Some(current.profile.as_str()) {
                return Err(ApiError::invalid_field(
                    "/profile",
                    "an integration's profile cannot change; create another integration",
                ));
            }
        }
        let settings: IntegrationSettings = parse_json(&current.settings);
        let mut document = serde_json::json!({
            "profile": current.profile,
            "name": current.name,
            "client_id": current.client_id,
            "environment": settings.environment,
            "actions": settings.actions,
            "custom_scopes": settings.custom_scopes,
            "parameters": settings.parameters,
            "pkce": settings.pkce,
            "refresh_sends_secret": settings.refresh_sends_secret,
        });
        let mut secrets: Vec<(&'static str, Option<Option<Value>>)> = Vec::new();
        let mut rest = Map::new();
        for (k, v) in patch {
            match k.as_str() {
                "client_secret" => secrets.push(("client_secret_blob", Some(Some(v).filter(|v| !v.is_null())))),
                "staged_client_secret" => {
                    secrets.push(("staged_client_secret_blob", Some(Some(v).filter(|v| !v.is_null()))))
                }
                _ => {
                    rest.insert(k, v);
                }
            }
        }
        merge_patch(&mut document, &Value::Object(rest));
        // Secrets go through the same typed check as a new integration's.
        if let Value::Object(doc) = &mut document {
            for (column, change) in &secrets {
                let key = if *column == "client_secret_blob" { "client_secret" } else { "staged_client_secret" };
                if let Some(Some(v)) = change {
                    doc.insert(key.to_owned(), v.clone());
                }
            }
            doc.retain(|_, v| !v.is_null());
        }
        let mut new: NewIntegration = crate::body::from_value(document)?;
        // Secrets the patch does not mention are kept: check with them in place.
        let (main, staged) = self.secrets_of(&current)?;
        if !secrets.iter().any(|(c, _)| *c == "client_secret_blob") {
            new.client_secret = main;
        }
        if !secrets.iter().any(|(c, _)| *c == "staged_client_secret_blob") {
            new.staged_client_secret = staged;
        }
        let check = new;
        self.check_integration(&check)?;
        let record = self.integration_record(current.id.clone(), &check, current.version + 1, current.created_at);
        if !self.store.update_integration(&record, current.version).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "The integration changed meanwhile",
                "another request changed the integration first; read it again and retry",
            ));
        }
        tracing::info!(integration = %record.id, version = record.version, "integration updated");
        self.rebind_connections(&record).await;
        Ok(self.integration_view(&record))
    }

    /// Gives the open connections of an integration its new connector (new secret, say).
    async fn rebind_connections(&self, record: &IntegrationRecord) {
        let filter = ConnectionFilter { integration: Some(record.id.clone()), limit: u32::MAX, ..Default::default() };
        let Ok(rows) = self.store.connections(&filter).await else { return };
        for row in rows {
            if self.tokens.contains(&row.id) {
                let parameters: IndexMap<String, String> = parse_json(&row.parameters);
                match self.connector(record, &parameters) {
                    Ok(connector) => {
                        self.tokens.set_connector(&row.id, connector);
                    }
                    Err(e) => {
                        tracing::warn!(connection = %row.id, code = e.code(), "connection keeps its previous configuration")
                    }
                }
            }
        }
    }

    /// Deletes an integration without connections.
    pub async fn delete_integration(&self, id: &str) -> Result<(), ApiError> {
        match self.store.delete_integration(id).await? {
            Some(true) => Ok(()),
            Some(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "integration_in_use",
                "The integration has connections",
                "delete its connections first",
            )),
            None => Err(ApiError::not_found("integration", id)),
        }
    }

    // ---- connect sessions -----------------------------------------------------------------

    fn check_end_user(end_user: &EndUser) -> Result<(), ApiError> {
        if end_user.id.trim().is_empty() || end_user.id.chars().count() > 255 {
            return Err(ApiError::invalid_field("/end_user/id", "the end user id must be 1 to 255 characters"));
        }
        for (pointer, value) in
            [("/end_user/email", &end_user.email), ("/end_user/display_name", &end_user.display_name)]
        {
            if value.as_ref().is_some_and(|v| v.chars().count() > 255) {
                return Err(ApiError::invalid_field(pointer, "longer than 255 characters"));
            }
        }
        Ok(())
    }

    /// Creates a connect session: a single-use token (stored as its hash) and the page URL.
    pub async fn create_session(&self, new: NewSession) -> Result<SessionCreated, ApiError> {
        Self::check_end_user(&new.end_user)?;
        if let Some(url) = &new.return_url {
            if let Some(why) = web_url_problem(url) {
                return Err(ApiError::invalid_field("/return_url", format!("the return URL is refused: {why}")));
            }
        }
        if new.allowed_origins.len() > 20 {
            return Err(ApiError::invalid_field("/allowed_origins", "at most 20 origins"));
        }
        let mut origins = Vec::new();
        for (i, origin) in new.allowed_origins.iter().enumerate() {
            let pointer = format!("/allowed_origins/{i}");
            if let Some(why) = web_url_problem(origin) {
                return Err(ApiError::invalid_field(&pointer, format!("the origin is refused: {why}")));
            }
            match origin_of(origin) {
                Some(o) if o == origin.trim_end_matches('/') => origins.push(o),
                _ => {
                    return Err(ApiError::invalid_field(
                        &pointer,
                        "an origin is `scheme://host[:port]`, without a path",
                    ));
                }
            }
        }
        let mut integrations = match &new.integrations {
            Some(ids) if ids.is_empty() => {
                return Err(ApiError::invalid_field("/integrations", "name at least one integration"));
            }
            Some(ids) if ids.len() > 100 => return Err(ApiError::invalid_field("/integrations", "at most 100")),
            Some(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if self.store.integration(id).await?.is_none() {
                        return Err(ApiError::invalid_field(&format!("/integrations/{i}"), "no such integration"));
                    }
                }
                ids.clone()
            }
            None => Vec::new(),
        };
        if let Some(connection_id) = &new.connection_id {
            let Some(connection) = self.store.connection(connection_id).await? else {
                return Err(ApiError::invalid_field("/connection_id", "no such connection"));
            };
            if !integrations.is_empty() && !integrations.contains(&connection.integration_id) {
                return Err(ApiError::invalid_field(
                    "/integrations",
                    "a reconnect session must allow the connection's integration",
                ));
            }
            integrations = vec![connection.integration_id];
        } else if integrations.is_empty() {
            integrations = self.store.integrations().await?.into_iter().map(|r| r.id).collect();
            if integrations.is_empty() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "no_integrations",
                    "There is nothing to connect",
                    "create an integration first",
                ));
            }
        }
        let token = format!(
            "kwcs_{}",
            rand::thread_rng().sample_iter(&Alphanumeric).take(43).map(char::from).collect::<String>()
        );
        let now = self.now();
        let record = SessionRecord {
            id: new_id("cs"),
            token_hash: sha256_hex(&token),
            end_user: serde_json::to_string(&new.end_user).unwrap_or_default(),
            integrations: serde_json::to_string(&integrations).unwrap_or_default(),
            return_url: new.return_url.clone(),
            allowed_origins: serde_json::to_string(&origins).unwrap_or_default(),
            connection_id: new.connection_id.clone(),
            expires_at: now + SESSION_TTL.as_secs() as i64,
            opened_at: None,
            created_at: now,
        };
        self.store.insert_session(&record).await?;
        let _ = self.store.purge_expired(now).await;
        Ok(SessionCreated {
            id: record.id,
            connect_url: format!("{}/connect?session_token={token}", self.public_url),
            token,
            expires_at: record.expires_at,
        })
    }

    /// Exchanges a session token (once) for the session id the browser's cookie will carry.
    pub async fn open_session(&self, token: &str) -> Result<String, PageError> {
        let refused = || {
            PageError::new(StatusCode::FORBIDDEN, "session_invalid", "This connect link is invalid, used or expired.")
                .with_fix("Go back to the application and start connecting again.")
        };
        if !token.starts_with("kwcs_") || token.len() > 100 {
            return Err(refused());
        }
        match self.store.open_session(&sha256_hex(token), self.now()).await? {
            Some(session) => Ok(session.id),
            None => Err(refused()),
        }
    }

    /// A session the browser's cookie names, when it is still valid.
    pub async fn live_session(&self, session_id: &str) -> Result<SessionRecord, PageError> {
        match self.store.session(session_id).await? {
            Some(s) if s.expires_at > self.now() => Ok(s),
            _ => Err(PageError::new(StatusCode::FORBIDDEN, "session_expired", "This connect session has expired.")
                .with_fix("Go back to the application and start connecting again.")),
        }
    }

    /// The connect page's model for a session.
    pub async fn connect_page(&self, session: &SessionRecord) -> Result<ConnectPage, PageError> {
        let ids: Vec<String> = parse_json(&session.integrations);
        let mut integrations = Vec::new();
        for id in ids {
            let Some(record) = self.store.integration(&id).await? else { continue };
            let Some(profile) = self.profile(&record.profile) else { continue };
            let settings: IntegrationSettings = parse_json(&record.settings);
            let connector = self.connector(&record, &IndexMap::new()).ok();
            let environment = connector.as_ref().map(|c| c.environment().to_owned()).unwrap_or_default();
            let parameters = profile
                .parameters
                .iter()
                .filter(|(name, _)| !settings.parameters.contains_key(*name))
                .map(|(name, p)| PageParameter {
                    name: name.clone(),
                    label: p.label.clone(),
                    description: p.description.as_ref().map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                    example: p.example.clone(),
                    required: p.required,
                    value: String::new(),
                    error: None,
                })
                .collect();
            integrations.push(PageIntegration {
                id: record.id.clone(),
                provider: profile.name.clone(),
                name: record.name.clone(),
                environment: profile.environments.get(&environment).map_or(environment.clone(), |e| e.label.clone()),
                scopes: connector
                    .map(|c| c.scope_plan().values().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
                parameters,
            });
        }
        Ok(ConnectPage {
            end_user: serde_json::from_str(&session.end_user).unwrap_or(EndUser {
                id: String::new(),
                email: None,
                display_name: None,
            }),
            reconnect: session.connection_id.is_some(),
            integrations,
            error: None,
        })
    }

    /// Starts an authorization from the connect page's form: the parameters are checked (a
    /// refusal comes back per field), the state and PKCE verifier are stored, and the
    /// provider's URL is returned.
    pub async fn start_authorization(
        &self,
        session: &SessionRecord,
        integration_id: &str,
        form: &[(String, String)],
    ) -> Result<Started, PageError> {
        let allowed: Vec<String> = parse_json(&session.integrations);
        if !allowed.iter().any(|id| id == integration_id) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "integration_not_allowed",
                "This integration is not offered in this session.",
            ));
        }
        let record =
            self.store.integration(integration_id).await?.ok_or_else(|| {
                PageError::new(StatusCode::NOT_FOUND, "not_found", "This integration no longer exists.")
            })?;
        let profile = self.profile(&record.profile).ok_or_else(|| {
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "profile_unavailable", "This provider is unavailable.")
        })?;
        let settings: IntegrationSettings = parse_json(&record.settings);
        let mut parameters = IndexMap::new();
        for (name, value) in form {
            let Some(name) = name.strip_prefix("param.") else { continue };
            if !profile.parameters.contains_key(name) || settings.parameters.contains_key(name) {
                continue;
            }
            let value = value.trim();
            if !value.is_empty() && parameters.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(PageError::new(StatusCode::BAD_REQUEST, "duplicate_parameter", "A field was sent twice."));
            }
        }
        let connector = match self.connector(&record, &parameters) {
            Ok(c) => c,
            Err(e) => {
                let fields = e
                    .diagnostics()
                    .iter()
                    .filter_map(|d| {
                        let name = d.pointer.as_deref()?.strip_prefix("/parameters")?.trim_start_matches('/');
                        let text = match &d.fix {
                            Some(fix) => format!("{} {fix}", d.message),
                            None => d.message.clone(),
                        };
                        Some((name.to_owned(), text))
                    })
                    .collect::<Vec<_>>();
                let mut error = PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_parameters",
                    "Check the highlighted fields.",
                );
                if fields.is_empty() {
                    error = PageError::new(StatusCode::CONFLICT, e.code(), "This integration is misconfigured.")
                        .with_fix("Ask the application's administrator to check the integration.");
                }
                error.fields = fields;
                return Err(error);
            }
        };
        let request = connector
            .authorization_request()
            .map_err(|e| PageError::new(StatusCode::CONFLICT, "flow_unsupported", e.to_string()))?;
        let state_hash = sha256_hex(&request.state);
        let verifier = request.code_verifier.as_ref().map(|v| {
            self.keys.encrypt(
                Cell { table: "authorizations", row: &state_hash, column: "code_verifier_blob" },
                v.expose_secret().as_bytes(),
            )
        });
        let record = AuthorizationRecord {
            state_hash,
            session_id: session.id.clone(),
            integration_id: record.id.clone(),
            parameters: serde_json::to_string(&parameters).unwrap_or_default(),
            code_verifier_blob: verifier,
            authorize_origin: origin_of(&request.url).unwrap_or_default(),
            expires_at: self.now() + AUTHORIZATION_TTL.as_secs() as i64,
        };
        self.store.insert_authorization(&record).await?;
        Ok(Started { url: request.url })
    }

    /// Finishes an authorization at the callback: state (single use, this browser's session),
    /// `iss` (RFC 9207), the provider's answer, the code exchange, the stored connection and
    /// the connection test.
    pub async fn finish_authorization(
        &self,
        profile_id: &str,
        query: &str,
        cookie_session: Option<&str>,
    ) -> Result<Finished, PageError> {
        let result = self.finish_inner(profile_id, query, cookie_session).await;
        if let Err(e) = &result {
            bump(&self.metrics.callbacks_refused);
            tracing::warn!(profile = %profile_id, code = e.code, "callback refused");
        }
        result
    }

    async fn finish_inner(
        &self,
        profile_id: &str,
        query: &str,
        cookie_session: Option<&str>,
    ) -> Result<Finished, PageError> {
        let callback = Callback::from_query(query);
        let iss = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "iss").map(|(_, v)| v.into_owned());
        let restart = "Go back to the application and start connecting again.";
        let Some(state) = callback.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "state_missing",
                "The provider's answer has no state.",
            )
            .with_fix(restart));
        };
        let state_hash = sha256_hex(state);
        let unknown = || {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "state_unknown",
                "This sign-in answer is unknown or was already used.",
            )
            .with_fix(restart)
        };
        let Some(pending) = self.store.authorization(&state_hash).await? else { return Err(unknown()) };
        // Another browser's state is left alone: refusing it must not cancel the rightful
        // user's authorization.
        if cookie_session != Some(pending.session_id.as_str()) {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "state_wrong_session",
                "This sign-in answer belongs to another browser session.",
            )
            .with_fix("Finish connecting in the browser where you started."));
        }
        let Some(pending) = self.store.take_authorization(&state_hash, &pending.session_id).await? else {
            return Err(unknown());
        };
        if pending.expires_at <= self.now() {
            return Err(PageError::new(StatusCode::BAD_REQUEST, "state_expired", "The sign-in took too long.")
                .with_fix(restart));
        }
        let session = self.live_session(&pending.session_id).await?;
        let integration =
            self.store.integration(&pending.integration_id).await?.ok_or_else(|| {
                PageError::new(StatusCode::NOT_FOUND, "not_found", "This integration no longer exists.")
            })?;
        if integration.profile != profile_id {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "callback_mismatch",
                "This answer arrived at another provider's callback.",
            )
            .with_fix(restart));
        }
        if let Some(iss) = &iss {
            // RFC 9207: the response must come from the server the user was sent to.
            if origin_of(iss).as_deref() != Some(pending.authorize_origin.as_str()) {
                return Err(PageError::new(
                    StatusCode::BAD_REQUEST,
                    "issuer_mismatch",
                    "The answer names another authorization server than the one you were sent to.",
                )
                .with_fix(restart));
            }
        }
        let parameters: IndexMap<String, String> = parse_json(&pending.parameters);
        let connector = self.connector(&integration, &parameters).map_err(|e| {
            PageError::new(StatusCode::CONFLICT, e.code(), "This integration is misconfigured.")
                .with_fix("Ask the application's administrator to check the integration.")
        })?;
        let verifier = match &pending.code_verifier_blob {
            Some(blob) => {
                let cell = Cell { table: "authorizations", row: &pending.state_hash, column: "code_verifier_blob" };
                let plain = self.keys.decrypt(cell, blob).map_err(|_| unknown())?;
                Some(SecretString::from(String::from_utf8_lossy(&plain).into_owned()))
            }
            None => None,
        };
        let tokens =
            connector.finish_callback(&callback, verifier.as_ref()).await.map_err(|e| match e.diagnosis() {
                Some(d) => {
                    let mut error = PageError::new(
                        StatusCode::BAD_REQUEST,
                        "provider_refused",
                        d.meaning.clone().unwrap_or_else(|| {
                            format!(
                                "{} refused: {}",
                                connector.profile().name,
                                d.provider.description.as_deref().unwrap_or(&d.provider.error)
                            )
                        }),
                    );
                    error.fix = d.hint.clone();
                    error
                }
                None => PageError::new(
                    StatusCode::BAD_GATEWAY,
                    "exchange_failed",
                    format!("Signing in could not be finished: {e}"),
                )
                .with_fix("Try again in a moment."),
            })?;
        let now = self.now();
        let (id, reconnected) = match &session.connection_id {
            Some(id) if self.store.connection(id).await?.is_some() => (id.clone(), true),
            _ => {
                let id = new_id("conn");
                let record = ConnectionRecord {
                    id: id.clone(),
                    integration_id: integration.id.clone(),
                    end_user: session.end_user.clone(),
                    parameters: pending.parameters.clone(),
                    state: state::PENDING.to_owned(),
                    tokens_blob: None,
                    scopes: "[]".to_owned(),
                    expires_at: None,
                    diagnosis: None,
                    verified_at: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                self.store.insert_connection(&record).await?;
                (id, false)
            }
        };
        self.tokens.insert(&id, Arc::clone(&connector), tokens.clone()).await.map_err(|e| {
            tracing::error!(connection = %id, error = %e, "new tokens could not be stored");
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "The connection could not be saved.")
                .with_fix("Try connecting again in a moment.")
        })?;
        bump(&self.metrics.connections_linked);
        tracing::info!(connection = %id, integration = %integration.id, reconnected, "account linked");
        let (state, diagnosis) = self.run_test(&id, &connector, &tokens).await;
        Ok(Finished {
            connection_id: id,
            provider: connector.profile().name.clone(),
            reconnected,
            state,
            diagnosis,
            return_url: session.return_url.clone(),
            allowed_origins: parse_json(&session.allowed_origins),
        })
    }

    /// Runs the profile's connection test and records the outcome; the state after it.
    async fn run_test(
        &self,
        id: &str,
        connector: &Connector,
        tokens: &TokenSet,
    ) -> (String, Option<ConnectionDiagnosis>) {
        let now = self.now();
        match connector.verify(tokens).await {
            Ok(()) => {
                let _ = self.store.set_verified(id, now).await;
                (state::ACTIVE.to_owned(), None)
            }
            Err(FlowError::Unsupported(_)) => (state::ACTIVE.to_owned(), None),
            Err(e) => {
                let diagnosis = flow_diagnosis(&e, now);
                let state = if e.is_transient() { state::DEGRADED } else { state::NEEDS_REAUTH };
                tracing::warn!(connection = %id, state, "the connection test failed");
                let json = serde_json::to_string(&diagnosis).ok();
                let _ = self.store.set_state(id, state, json.as_deref(), now).await;
                (state.to_owned(), Some(diagnosis))
            }
        }
    }

    // ---- connections ----------------------------------------------------------------------

    async fn connection_record(&self, id: &str) -> Result<ConnectionRecord, ApiError> {
        self.store.connection(id).await?.ok_or_else(|| ApiError::not_found("connection", id))
    }

    async fn connection_view(&self, record: &ConnectionRecord) -> Result<Connection, ApiError> {
        let profile = self.store.integration(&record.integration_id).await?.map(|i| i.profile).unwrap_or_default();
        Ok(connection_view(record, profile))
    }

    /// Connections, filtered and paged.
    pub async fn connections(&self, mut filter: ConnectionFilter) -> Result<ConnectionList, ApiError> {
        if let Some(s) = &filter.state {
            if !state::ALL.contains(&s.as_str()) {
                return Err(ApiError::invalid_field(
                    "/state",
                    format!("the state must be one of {}", state::ALL.join(", ")),
                ));
            }
        }
        let limit = filter.limit.clamp(1, MAX_PAGE);
        filter.limit = limit + 1;
        let mut rows = self.store.connections(&filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut profiles: HashMap<String, String> = HashMap::new();
        let mut data = Vec::with_capacity(rows.len());
        for row in &rows {
            if !profiles.contains_key(&row.integration_id) {
                let profile = self.store.integration(&row.integration_id).await?.map(|i| i.profile).unwrap_or_default();
                profiles.insert(row.integration_id.clone(), profile);
            }
            data.push(connection_view(row, profiles.get(&row.integration_id).cloned().unwrap_or_default()));
        }
        Ok(ConnectionList { next: if more { rows.last().map(|r| r.id.clone()) } else { None }, data })
    }

    /// One connection.
    pub async fn connection(&self, id: &str) -> Result<Connection, ApiError> {
        let record = self.connection_record(id).await?;
        self.connection_view(&record).await
    }

    /// Opens a connection in the token manager (once), refusing those that cannot hand out
    /// tokens.
    async fn ensure_open(&self, id: &str) -> Result<(), ApiError> {
        if self.tokens.contains(id) {
            return Ok(());
        }
        let _opening = self.opening.lock().await;
        if self.tokens.contains(id) {
            return Ok(());
        }
        let record = self.connection_record(id).await?;
        self.refuse_unusable(&record)?;
        let integration = self.integration_record_of(&record.integration_id).await?;
        let parameters: IndexMap<String, String> = parse_json(&record.parameters);
        let connector = self.connector(&integration, &parameters)?;
        match self.tokens.open(id, connector).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_pending",
                "The connection has no tokens yet",
                "the account has not finished linking",
            )),
            Err(e) => Err(ApiError::store(&DbError::Database(e.0))),
        }
    }

    fn refuse_unusable(&self, record: &ConnectionRecord) -> Result<(), ApiError> {
        let diagnosis = record.diagnosis.as_deref().and_then(|d| serde_json::from_str::<ConnectionDiagnosis>(d).ok());
        let explained = |base: &str| match diagnosis.as_ref().and_then(|d| d.meaning.clone().or(d.description.clone()))
        {
            Some(why) => format!("{base}: {why}"),
            None => base.to_owned(),
        };
        match record.state.as_str() {
            state::NEEDS_REAUTH => Err(ApiError::new(
                StatusCode::CONFLICT,
                "needs_reauth",
                "The connection needs to be authorized again",
                explained("send the user through a reconnect session"),
            )),
            state::REVOKED => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_revoked",
                "The connection was revoked",
                "send the user through a reconnect session",
            )),
            state::PENDING => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_pending",
                "The connection has no tokens yet",
                "the account has not finished linking",
            )),
            _ => Ok(()),
        }
    }

    /// A valid access token: the cached one while fresh, else refreshed once (however many
    /// ask) and persisted before it is handed out.
    pub async fn token(&self, id: &str) -> Result<AccessTokenView, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.access_token(id).await;
        self.token_view(id, result).await
    }

    /// Refreshes now, whatever the expiry.
    pub async fn refresh(&self, id: &str) -> Result<AccessTokenView, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.force_refresh(id).await;
        self.token_view(id, result).await
    }

    async fn token_view(
        &self,
        id: &str,
        result: Result<keyway_runtime::AccessToken, TokenError>,
    ) -> Result<AccessTokenView, ApiError> {
        match result {
            Ok(token) => {
                bump(&self.metrics.tokens_served);
                let set = self.tokens.tokens(id);
                let connector = self.tokens.connector(id);
                let api_base_url = match (&set, &connector) {
                    (Some(set), Some(c)) if c.profile().api.is_some() => c.api_base_url(set).ok(),
                    _ => None,
                };
                Ok(AccessTokenView {
                    connection_id: id.to_owned(),
                    access_token: token.token.expose_secret().to_owned(),
                    token_type: token.token_type,
                    expires_at: token.expires_at,
                    api_base_url,
                    fields: set.map(|s| s.fields.clone()).unwrap_or_default(),
                })
            }
            Err(e) => {
                bump(&self.metrics.token_failures);
                Err(self.token_failure(id, e).await)
            }
        }
    }

    /// Records why a token could not be handed out and says so.
    async fn token_failure(&self, id: &str, error: TokenError) -> ApiError {
        let now = self.now();
        let record = |state: &'static str, diagnosis: ConnectionDiagnosis| async move {
            let json = serde_json::to_string(&diagnosis).ok();
            if let Err(e) = self.store.set_state(id, state, json.as_deref(), now).await {
                tracing::error!(connection = %id, error = %e, "the connection's state could not be recorded");
            }
            tracing::warn!(connection = %id, state, kind = %diagnosis.kind, "token refresh failed");
        };
        match error {
            TokenError::UnknownConnection(_) => ApiError::not_found("connection", id),
            TokenError::NeedsReauthorization(d) => {
                let diagnosis = match &d {
                    Some(d) => diagnosis_view(d, now),
                    None => ConnectionDiagnosis {
                        kind: "reauthorize".to_owned(),
                        error: None,
                        description: Some("the connection has no refresh token".to_owned()),
                        rule: None,
                        meaning: None,
                        fix: None,
                        at: now,
                    },
                };
                let detail = diagnosis.meaning.clone().or(diagnosis.description.clone()).unwrap_or_default();
                record(state::NEEDS_REAUTH, diagnosis).await;
                ApiError::new(
                    StatusCode::CONFLICT,
                    "needs_reauth",
                    "The connection needs to be authorized again",
                    format!("send the user through a reconnect session; {detail}"),
                )
            }
            TokenError::Flow(e) if e.is_transient() => {
                record(state::DEGRADED, flow_diagnosis(&e, now)).await;
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_unavailable",
                    "The provider is unavailable",
                    format!("the refresh failed for a transient reason and will be retried: {e}"),
                )
            }
            TokenError::Flow(e) => {
                let diagnosis = flow_diagnosis(&e, now);
                let fix = diagnosis.fix.clone().unwrap_or_default();
                record(state::NEEDS_REAUTH, diagnosis).await;
                ApiError::new(
                    StatusCode::CONFLICT,
                    "refresh_refused",
                    "The provider refused the refresh",
                    format!("{e}. {fix}").trim().to_owned(),
                )
            }
            TokenError::Store(e) => ApiError::store(&DbError::Database(e.0)),
        }
    }

    /// Runs the connection test now.
    pub async fn test(&self, id: &str) -> Result<TestResult, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.access_token(id).await;
        if let Err(e) = result {
            return Err(self.token_failure(id, e).await);
        }
        let (Some(tokens), Some(connector)) = (self.tokens.tokens(id), self.tokens.connector(id)) else {
            return Err(ApiError::not_found("connection", id));
        };
        let (state, diagnosis) = self.run_test(id, &connector, &tokens).await;
        Ok(TestResult { connection_id: id.to_owned(), ok: diagnosis.is_none(), state, diagnosis })
    }

    /// Revokes a connection's grant at the provider (RFC 7009), then deletes the connection
    /// (`delete`) or keeps it as `revoked`. Says whether the provider confirmed.
    pub async fn revoke(&self, id: &str, delete: bool) -> Result<RevocationResult, ApiError> {
        let record = self.connection_record(id).await?;
        let mut outcome = (false, Some("the connection holds no tokens".to_owned()));
        if let Some(blob) = &record.tokens_blob {
            let integration = self.integration_record_of(&record.integration_id).await?;
            let parameters: IndexMap<String, String> = parse_json(&record.parameters);
            let connector = self.connector(&integration, &parameters)?;
            let plain = self.keys.decrypt(tokens_cell(id), blob).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_undecryptable",
                    "The tokens cannot be decrypted",
                    e.to_string(),
                )
            })?;
            let tokens: TokenSet = serde_json::from_slice(&plain).map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "tokens_unreadable",
                    "The stored tokens are unreadable",
                    "the token set does not parse",
                )
            })?;
            // Revoking the refresh token ends the whole grant (and its access tokens).
            let (token, kind) = match &tokens.refresh_token {
                Some(refresh) => (refresh, TokenKind::Refresh),
                None => (&tokens.access_token, TokenKind::Access),
            };
            outcome = match connector.revoke(token, kind).await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            };
        }
        let (revoked_at_provider, revocation_error) = outcome;
        self.tokens.forget(id);
        if delete {
            self.store.delete_connection(id).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection deleted");
        } else {
            self.store.mark_revoked(id, self.now()).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection revoked");
        }
        Ok(RevocationResult { connection_id: id.to_owned(), revoked_at_provider, revocation_error, deleted: delete })
    }

    /// Imports tokens a platform already holds as a new, active connection.
    pub async fn import_connection(&self, new: NewConnection) -> Result<Connection, ApiError> {
        Self::check_end_user(&new.end_user)?;
        let integration = self
            .store
            .integration(&new.integration_id)
            .await?
            .ok_or_else(|| ApiError::invalid_field("/integration_id", "no such integration"))?;
        let connector = self.connector(&integration, &new.parameters)?;
        let mut response = new.tokens.fields.clone();
        response.insert("access_token".to_owned(), Value::String(new.tokens.access_token.expose_secret().to_owned()));
        if let Some(refresh) = &new.tokens.refresh_token {
            response.insert("refresh_token".to_owned(), Value::String(refresh.expose_secret().to_owned()));
        }
        if let Some(t) = &new.tokens.token_type {
            response.insert("token_type".to_owned(), Value::String(t.clone()));
        }
        if let Some(e) = new.tokens.expires_in {
            response.insert("expires_in".to_owned(), Value::from(e));
        }
        if let Some(s) = &new.tokens.scope {
            response.insert("scope".to_owned(), Value::String(s.clone()));
        }
        if new.tokens.access_token.expose_secret().is_empty() {
            return Err(ApiError::invalid_field("/tokens/access_token", "the access token is empty"));
        }
        let tokens = connector
            .import_tokens(&response)
            .await
            .map_err(|e| ApiError::invalid_field("/tokens", format!("the tokens cannot be read: {e}")))?;
        // The API base URL may come from these fields: check it renders to a usable URL.
        if connector.profile().api.is_some() {
            if let Err(e) = connector.api_base_url(&tokens) {
                return Err(ApiError::invalid_field("/tokens/fields", e.to_string()));
            }
        }
        let now = self.now();
        let record = ConnectionRecord {
            id: new_id("conn"),
            integration_id: integration.id.clone(),
            end_user: serde_json::to_string(&new.end_user).unwrap_or_default(),
            parameters: serde_json::to_string(&new.parameters).unwrap_or_default(),
            state: state::PENDING.to_owned(),
            tokens_blob: None,
            scopes: "[]".to_owned(),
            expires_at: None,
            diagnosis: None,
            verified_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_connection(&record).await?;
        self.tokens
            .insert(&record.id, connector, tokens)
            .await
            .map_err(|e| ApiError::store(&DbError::Database(e.0)))?;
        self.connection(&record.id).await
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

fn connection_view(record: &ConnectionRecord, profile: String) -> Connection {
    Connection {
        id: record.id.clone(),
        integration_id: record.integration_id.clone(),
        profile,
        end_user: serde_json::from_str(&record.end_user).unwrap_or(EndUser {
            id: String::new(),
            email: None,
            display_name: None,
        }),
        state: record.state.clone(),
        scopes: parse_json(&record.scopes),
        expires_at: record.expires_at,
        parameters: parse_json(&record.parameters),
        diagnosis: record.diagnosis.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        verified_at: record.verified_at,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
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

/// RFC 7386 JSON Merge Patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
