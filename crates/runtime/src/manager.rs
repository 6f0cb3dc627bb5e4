//! The token manager: a valid access token for a connection, whenever asked.
//!
//! Invariants:
//! - At most one refresh per connection is in flight; callers that find the token expired
//!   wait for it and share its result.
//! - A refreshed token set is persisted through the [`TokenStore`] before any caller sees
//!   it. With refresh-token rotation the old refresh token dies at the provider the moment
//!   the new one is issued, so a crash between the two must not lose the new one.
//! - Across processes sharing a store, the store decides who refreshes
//!   ([`TokenStore::claim_refresh`]): a process that finds another already refreshed takes
//!   its tokens instead of refreshing again (with rotation, a second refresh of the same
//!   refresh token makes the provider revoke the family).
//! - Transient failures (timeouts, 5xx, unreadable answers) are retried with capped,
//!   jittered exponential backoff; provider refusals are not. A refusal whose diagnosis is
//!   "reauthorize" (`invalid_grant`) marks the connection as needing reauthorization, and
//!   no further request is made for it until new tokens are installed.

use crate::clock::Clock;
use crate::connector::Connector;
use crate::errors::{Diagnosis, DiagnosisKind, FlowError};
use crate::fields::CredentialFields;
use crate::tokens::{GrantUsed, TokenSet};
use lru::LruCache;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A boxed future, so stores can be used as trait objects.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token store: {0}")]
pub struct StoreError(pub String);

/// What a store answers when this process is about to refresh a connection.
#[derive(Debug)]
pub enum RefreshClaim {
    /// Refresh: this process holds the connection's refresh until it saves or releases.
    Granted,
    /// Another process refreshed already: these are the tokens it saved.
    Refreshed(Box<TokenSet>),
    /// Another process is refreshing now: ask again after this long.
    Busy(Duration),
}

/// Where token sets live between refreshes and restarts.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The token set of a connection, if any.
    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>>;
    /// Saves durably: when this returns `Ok`, a crash must not lose `tokens`.
    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()>;
    /// Forgets a connection.
    fn remove<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, ()>;

    /// Claims the right to refresh `connection`, whose cached tokens are `current`. A store
    /// shared by several processes takes a lease here and answers with the newer tokens when
    /// another process saved some; a claim ends with [`TokenStore::save`] or
    /// [`TokenStore::release_refresh`]. Default (one process): granted.
    fn claim_refresh<'a>(&'a self, _connection: &'a str, _current: &'a TokenSet) -> StoreFuture<'a, RefreshClaim> {
        Box::pin(async { Ok(RefreshClaim::Granted) })
    }

    /// The entered credential fields of a connection whose tokens are obtained by exchanging
    /// them (`auth.kind: token_exchange`). Default: none kept.
    fn credential_fields<'a>(&'a self, _connection: &'a str) -> StoreFuture<'a, Option<CredentialFields>> {
        Box::pin(async { Ok(None) })
    }

    /// Gives a claim back without saving (the refresh failed). Default: nothing to do.
    fn release_refresh<'a>(&'a self, _connection: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Keeps token sets in memory (tests, and processes that reauthorize on restart).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    sets: Mutex<HashMap<String, TokenSet>>,
    fields: Mutex<HashMap<String, CredentialFields>>,
}

impl MemoryTokenStore {
    /// Keeps a connection's entered fields (a token exchange's, exchanged again when due).
    pub fn save_fields(&self, connection: &str, fields: CredentialFields) {
        self.fields.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(connection.to_owned(), fields);
    }
}

impl TokenStore for MemoryTokenStore {
    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>> {
        let found = self.sets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(connection).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()> {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connection.to_owned(), tokens.clone());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, ()> {
        self.sets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(connection);
        self.fields.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(connection);
        Box::pin(async { Ok(()) })
    }

    fn credential_fields<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<CredentialFields>> {
        let found = self.fields.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(connection).cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// One JSON file per connection in a directory, written atomically (temporary file, fsync,
/// rename, fsync of the directory) and readable only by the owner on Unix.
#[derive(Debug)]
pub struct FileTokenStore {
    dir: PathBuf,
}

impl FileTokenStore {
    /// Uses (and creates) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<FileTokenStore, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        Ok(FileTokenStore { dir })
    }

    /// The file of a connection: its id, hex-encoded, so any id is a safe file name.
    fn path(&self, connection: &str) -> PathBuf {
        let name: String = connection.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.json"))
    }

    fn write(&self, connection: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        use std::io::Write as _;
        let path = self.path(connection);
        let tmp = path.with_extension("json.tmp");
        let fail = |e: std::io::Error| StoreError(format!("{}: {e}", path.display()));
        let json = serde_json::to_vec(tokens).map_err(|e| StoreError(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(fail)?;
        file.write_all(&json).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            // Makes the rename durable; not every platform can fsync a directory.
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl TokenStore for FileTokenStore {
    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>> {
        Box::pin(async move {
            let path = self.path(connection);
            match keyway_stdx::read_limited(&path, crate::MAX_TOKEN_SET_BYTES) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map(Some)
                    // serde's message may quote the file's values: report only where it broke.
                    .map_err(|e| StoreError(format!("{}: unreadable at line {}", path.display(), e.line()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError(format!("{}: {e}", path.display()))),
            }
        })
    }

    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.write(connection, tokens) })
    }

    fn remove<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            match std::fs::remove_file(self.path(connection)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError(e.to_string())),
            }
        })
    }
}

/// When and how the manager refreshes.
#[derive(Debug, Clone)]
pub struct RefreshPolicy {
    /// Refresh this long before the access token expires.
    pub skew: Duration,
    /// Attempts per refresh, the first included.
    pub max_attempts: u32,
    /// The first backoff delay; it doubles each retry.
    pub base_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// How long to wait for another process's refresh (see [`TokenStore::claim_refresh`]).
    pub max_claim_wait: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            skew: Duration::from_secs(300),
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_claim_wait: Duration::from_secs(180),
        }
    }
}

/// Capped exponential backoff: the one schedule keyway retries on (token refreshes here,
/// webhook deliveries in the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay; it doubles each retry.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The longest wait before retry `attempt` (1-based): `base`, doubling, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max)
    }

    /// The wait before retry `attempt`, with "equal jitter" (half fixed, half random) so many
    /// callers failing together do not retry in step.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let half = self.ceiling(attempt) / 2;
        half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
    }
}

impl RefreshPolicy {
    fn schedule(&self) -> Backoff {
        Backoff { base: self.base_delay, max: self.max_delay }
    }

    /// The delay before retry `attempt` (1-based): exponential, capped, jittered.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.schedule().jittered(attempt)
    }

    /// The longest one refresh can take when each request may take `timeout`: every
    /// attempt's timeout and the longest wait between attempts. A lease that outlasts it
    /// (the server's, across instances) never ends while the refresh still runs.
    pub fn longest_refresh(&self, timeout: Duration) -> Duration {
        let attempts = self.max_attempts.max(1);
        let waits: Duration = (1..attempts).map(|i| self.schedule().ceiling(i)).sum();
        timeout.saturating_mul(attempts) + waits
    }
}

/// Whether two token sets hold the same credentials (a resync that finds this process's own
/// refresh keeps the entry as it is).
fn same_tokens(a: &TokenSet, b: &TokenSet) -> bool {
    let refresh = |t: &TokenSet| t.refresh_token.as_ref().map(|r| r.expose_secret().to_owned());
    a.access_token.expose_secret() == b.access_token.expose_secret() && refresh(a) == refresh(b)
}

fn access_token(tokens: &TokenSet) -> AccessToken {
    AccessToken {
        token: tokens.access_token.clone(),
        token_type: tokens.token_type.clone(),
        expires_at: tokens.expires_at,
    }
}

/// An access token handed out by the manager.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token.
    pub token: SecretString,
    /// `Bearer`, usually.
    pub token_type: String,
    /// When it expires, seconds since the epoch.
    pub expires_at: Option<u64>,
}

/// Why no access token could be handed out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// No connection by that id.
    #[error("no connection `{0}`")]
    UnknownConnection(String),
    /// The user must connect again; the diagnosis says why, when the provider said.
    #[error("the connection needs reauthorization{}", .0.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    NeedsReauthorization(Option<Box<Diagnosis>>),
    /// Getting a new token failed (after retries, when the failure was transient).
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// The new tokens could not be persisted; they are kept in memory and saving is retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
enum Status {
    Ready(Arc<TokenSet>),
    /// Refreshed but not yet persisted: not handed out until saved.
    Unsaved(Arc<TokenSet>),
    NeedsReauthorization(Option<Box<Diagnosis>>),
}

#[derive(Debug)]
struct Connection {
    id: String,
    /// Replaced when the connection's configuration changes; the status is kept.
    connector: RwLock<Arc<Connector>>,
    status: RwLock<Status>,
    /// The store's version of what this entry holds, when the caller keeps one.
    stamp: Mutex<Option<Stamp>>,
    /// Held while refreshing or resynchronizing: the single-flight lock.
    refreshing: tokio::sync::Mutex<()>,
}

/// The versions of what a connection's entry was built from, as the caller counts them (the
/// server: the row's `version`, its integration's `version`, the profiles' reload
/// generation). An entry whose stamp differs from the current one is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp(pub i64, pub i64, pub u64);

/// A connection as the store holds it now: what [`TokenManager::resync`] installs.
#[derive(Debug)]
pub struct Current {
    /// The connector its configuration builds.
    pub connector: Arc<Connector>,
    /// Its token set.
    pub tokens: TokenSet,
    /// The versions it was read at.
    pub stamp: Stamp,
}

/// How many connections a manager keeps in memory unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Hands out valid access tokens for many connections.
///
/// Holds at most `capacity` connections: past it, the least recently used idle one (no
/// refresh in flight, nobody holding it) is forgotten, one per new entry; it is opened from
/// the store again on its next use. Single flight and the store's claims never depend on an
/// entry staying: a busy entry is never evicted.
#[derive(Debug)]
pub struct TokenManager {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    capacity: usize,
    connections: Mutex<LruCache<String, Arc<Connection>>>,
}

impl TokenManager {
    /// A manager over a store, keeping up to [`DEFAULT_CAPACITY`] connections.
    pub fn new(store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>, policy: RefreshPolicy) -> TokenManager {
        TokenManager::with_capacity(store, clock, policy, DEFAULT_CAPACITY)
    }

    /// A manager keeping up to `capacity` connections in memory (at least one).
    pub fn with_capacity(
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
        capacity: usize,
    ) -> TokenManager {
        TokenManager { store, clock, policy, capacity: capacity.max(1), connections: Mutex::new(LruCache::unbounded()) }
    }

    /// How many connections are in memory.
    pub fn len(&self) -> usize {
        self.lock_connections().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs new tokens for a connection (after an authorization): persisted first.
    pub async fn insert(&self, id: &str, connector: Arc<Connector>, tokens: TokenSet) -> Result<(), StoreError> {
        self.store.save(id, &tokens).await?;
        self.put(id, connector, Status::Ready(Arc::new(tokens)), None);
        Ok(())
    }

    /// Opens a connection whose tokens are in the store; `false` when the store has none.
    pub async fn open(&self, id: &str, connector: Arc<Connector>) -> Result<bool, StoreError> {
        match self.store.load(id).await? {
            Some(tokens) => {
                self.put(id, connector, Status::Ready(Arc::new(tokens)), None);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&self, id: &str, connector: Arc<Connector>, status: Status, stamp: Option<Stamp>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: id.to_owned(),
            connector: RwLock::new(connector),
            status: RwLock::new(status),
            stamp: Mutex::new(stamp),
            refreshing: tokio::sync::Mutex::new(()),
        });
        let mut connections = self.lock_connections();
        connections.put(id.to_owned(), Arc::clone(&connection));
        if connections.len() > self.capacity {
            // The least recently used entry nobody else holds (so no refresh of it is in
            // flight): forgetting it loses nothing the store does not have.
            let idle = connections
                .iter()
                .rev()
                .find(|(key, entry)| key.as_str() != id && Arc::strong_count(entry) == 1)
                .map(|(key, _)| key.clone());
            if let Some(key) = idle {
                connections.pop(&key);
            }
        }
        connection
    }

    /// Whether the manager holds a connection (installed or opened).
    pub fn contains(&self, id: &str) -> bool {
        self.lock_connections().contains(id)
    }

    /// The stamp of a connection's entry: `None` when it is not in memory or has none.
    pub fn stamp(&self, id: &str) -> Option<Stamp> {
        let connection = self.lock_connections().peek(id).cloned()?;
        *connection.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Brings a connection up to what the store holds now, stamped `wanted`: when its entry's
    /// stamp differs, then under its single-flight lock (so no refresh of it is in flight
    /// here, and of many callers one reads), `read` reads the record afresh; its connector,
    /// tokens and stamp replace the entry's, or open one. `read` answering `None` (the
    /// connection is gone, or holds no tokens) forgets the entry. Answers whether the
    /// connection is open afterwards. Callers opening the same new connection at once must
    /// be serialized by the caller (the entry does not exist yet to lock).
    pub async fn resync<F, Fut>(&self, id: &str, wanted: Stamp, read: F) -> Result<bool, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Current>, StoreError>>,
    {
        let existing = self.lock_connections().get(id).cloned();
        let Some(connection) = existing else {
            return Ok(match read().await? {
                Some(current) => {
                    let stamp = Some(current.stamp);
                    self.put(id, current.connector, Status::Ready(Arc::new(current.tokens)), stamp);
                    true
                }
                None => false,
            });
        };
        let _flight = connection.refreshing.lock().await;
        if *connection.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == Some(wanted) {
            return Ok(true);
        }
        match read().await? {
            Some(current) => {
                let same = matches!(
                    &*connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner),
                    Status::Ready(held) if same_tokens(held, &current.tokens)
                );
                if !same {
                    self.publish(&connection, Status::Ready(Arc::new(current.tokens)));
                }
                *connection.connector.write().unwrap_or_else(std::sync::PoisonError::into_inner) = current.connector;
                *connection.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.stamp);
                Ok(true)
            }
            None => {
                self.forget(id);
                Ok(false)
            }
        }
    }

    /// Gives an open connection a new connector (its app credentials or profile changed),
    /// keeping its tokens and status; `false` when the connection is not open.
    pub fn set_connector(&self, id: &str, connector: Arc<Connector>) -> bool {
        match self.connection(id) {
            Ok(connection) => {
                *connection.connector.write().unwrap_or_else(std::sync::PoisonError::into_inner) = connector;
                true
            }
            Err(_) => false,
        }
    }

    /// The connector of an open connection.
    pub fn connector(&self, id: &str) -> Option<Arc<Connector>> {
        let connection = self.connection(id).ok()?;
        let connector = connection.connector.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Some(connector)
    }

    /// Forgets a connection in memory (the store is not touched): after it is deleted.
    pub fn forget(&self, id: &str) {
        self.lock_connections().pop(id);
    }

    /// The current token set of a connection (for display or export).
    pub fn tokens(&self, id: &str) -> Option<Arc<TokenSet>> {
        let connection = self.connection(id).ok()?;
        let status = connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*status {
            Status::Ready(t) | Status::Unsaved(t) => Some(t.clone()),
            Status::NeedsReauthorization(_) => None,
        }
    }

    /// Whether a connection must be authorized again, and why.
    pub fn needs_reauthorization(&self, id: &str) -> Option<Option<Box<Diagnosis>>> {
        let connection = self.connection(id).ok()?;
        let status = connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*status {
            Status::NeedsReauthorization(d) => Some(d.clone()),
            _ => None,
        }
    }

    fn connection(&self, id: &str) -> Result<Arc<Connection>, TokenError> {
        self.lock_connections().get(id).cloned().ok_or_else(|| TokenError::UnknownConnection(id.to_owned()))
    }

    /// A valid access token: the cached one while it is fresh, else a new one (one refresh
    /// however many callers ask at once).
    pub async fn access_token(&self, id: &str) -> Result<AccessToken, TokenError> {
        let connection = self.connection(id)?;
        if let Some(token) = self.fresh(&connection)? {
            return Ok(token);
        }
        let _flight = connection.refreshing.lock().await;
        // Whoever held the lock before may have refreshed already.
        if let Some(token) = self.fresh(&connection)? {
            return Ok(token);
        }
        self.renew(&connection).await
    }

    /// Refreshes now, whatever the expiry (after a 401 from the API, say).
    pub async fn force_refresh(&self, id: &str) -> Result<AccessToken, TokenError> {
        let connection = self.connection(id)?;
        let _flight = connection.refreshing.lock().await;
        self.renew(&connection).await
    }

    /// The cached token when it is fresh; `None` when it must be renewed.
    fn fresh(&self, connection: &Connection) -> Result<Option<AccessToken>, TokenError> {
        let status = connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*status {
            Status::Ready(tokens) if !tokens.is_due(self.clock.now(), self.policy.skew.as_secs()) => {
                Ok(Some(AccessToken {
                    token: tokens.access_token.clone(),
                    token_type: tokens.token_type.clone(),
                    expires_at: tokens.expires_at,
                }))
            }
            Status::Ready(_) | Status::Unsaved(_) => Ok(None),
            Status::NeedsReauthorization(d) => Err(TokenError::NeedsReauthorization(d.clone())),
        }
    }

    /// Gets new tokens (called with the single-flight lock held), persists, then publishes.
    async fn renew(&self, connection: &Connection) -> Result<AccessToken, TokenError> {
        let mut current = {
            let status = connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*status {
                Status::Ready(t) => t.clone(),
                Status::Unsaved(t) => t.clone(),
                Status::NeedsReauthorization(d) => return Err(TokenError::NeedsReauthorization(d.clone())),
            }
        };
        let unsaved =
            matches!(&*connection.status.read().unwrap_or_else(std::sync::PoisonError::into_inner), Status::Unsaved(_));
        let fresh = if unsaved && !current.is_due(self.clock.now(), self.policy.skew.as_secs()) {
            // A refresh succeeded but saving failed: save it now instead of refreshing again
            // (with rotation, refreshing again would use the dead token).
            current
        } else {
            let started = std::time::Instant::now();
            loop {
                match self.store.claim_refresh(&connection.id, &current).await? {
                    RefreshClaim::Granted => break,
                    RefreshClaim::Refreshed(newer) => {
                        let newer: Arc<TokenSet> = Arc::from(newer);
                        self.publish(connection, Status::Ready(newer.clone()));
                        if !newer.is_due(self.clock.now(), self.policy.skew.as_secs()) {
                            return Ok(access_token(&newer));
                        }
                        // Theirs is due as well: claim again with it.
                        current = newer;
                    }
                    RefreshClaim::Busy(wait) => {
                        if started.elapsed() > self.policy.max_claim_wait {
                            return Err(TokenError::Store(crate::StoreError(
                                "another process has held this connection's refresh too long".to_owned(),
                            )));
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            match self.obtain(connection, &current).await {
                Ok(tokens) => Arc::new(tokens),
                Err(error) => {
                    if let Err(e) = self.store.release_refresh(&connection.id).await {
                        tracing::warn!(error = %e, "a refresh claim could not be released; it lapses");
                    }
                    return self.after_failed_refresh(connection, &current, error).await;
                }
            }
        };
        if let Err(e) = self.store.save(&connection.id, &fresh).await {
            tracing::error!(error = %e, "refreshed tokens could not be persisted; keeping them in memory");
            self.publish(connection, Status::Unsaved(fresh));
            return Err(TokenError::Store(e));
        }
        let token = access_token(&fresh);
        self.publish(connection, Status::Ready(fresh));
        Ok(token)
    }

    /// A refusal that means "reauthorize" may only mean another process rotated the refresh
    /// token meanwhile: when the store holds another refresh token, that one is used, and
    /// the stored credentials are never cleared after a losing attempt.
    async fn after_failed_refresh(
        &self,
        connection: &Connection,
        used: &TokenSet,
        error: TokenError,
    ) -> Result<AccessToken, TokenError> {
        if !matches!(error, TokenError::NeedsReauthorization(_)) {
            return Err(error);
        }
        let Ok(Some(stored)) = self.store.load(&connection.id).await else { return Err(error) };
        let rotated = match (&stored.refresh_token, &used.refresh_token) {
            (Some(a), Some(b)) => a.expose_secret() != b.expose_secret(),
            _ => false,
        };
        if !rotated || stored.is_due(self.clock.now(), self.policy.skew.as_secs()) {
            return Err(error);
        }
        tracing::info!("the refresh token was rotated by another process; using its tokens");
        let stored = Arc::new(stored);
        let token = access_token(&stored);
        self.publish(connection, Status::Ready(stored));
        Ok(token)
    }

    fn publish(&self, connection: &Connection, status: Status) {
        *connection.status.write().unwrap_or_else(std::sync::PoisonError::into_inner) = status;
    }

    /// A new token set by the means the current one allows, with retries of transient
    /// failures. A provider refusal meaning "reauthorize" marks the connection.
    async fn obtain(&self, connection: &Connection, current: &TokenSet) -> Result<TokenSet, TokenError> {
        let connector = connection.connector.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut attempt = 1;
        loop {
            let result = match (current.refresh_token.is_some(), current.grant) {
                (true, _) => connector.refresh(current).await,
                (false, GrantUsed::ClientCredentials) => connector.client_credentials().await,
                // Exchanged again from the fields the connection keeps, read where they are
                // kept (so a reconnect's new fields are the ones sent).
                (false, grant @ (GrantUsed::TokenExchange | GrantUsed::SignedJwt)) => {
                    match self.store.credential_fields(&connection.id).await? {
                        Some(fields) if grant == GrantUsed::SignedJwt => connector.sign_jwt(&fields),
                        Some(fields) => connector.exchange(&fields).await,
                        None => {
                            let status = Status::NeedsReauthorization(None);
                            *connection.status.write().unwrap_or_else(std::sync::PoisonError::into_inner) = status;
                            return Err(TokenError::NeedsReauthorization(None));
                        }
                    }
                }
                (false, _) => {
                    let status = Status::NeedsReauthorization(None);
                    *connection.status.write().unwrap_or_else(std::sync::PoisonError::into_inner) = status;
                    return Err(TokenError::NeedsReauthorization(None));
                }
            };
            match result {
                Ok(tokens) => return Ok(tokens),
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts => {
                    let delay = self.policy.backoff(attempt);
                    tracing::warn!(profile = %connector.profile().id, attempt, delay_ms = delay.as_millis() as u64, error = %e, "token refresh failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(FlowError::Provider(d)) if d.kind == DiagnosisKind::Reauthorize => {
                    tracing::warn!(profile = %connector.profile().id, rule = ?d.rule, "the grant is gone; the connection needs reauthorization");
                    let status = Status::NeedsReauthorization(Some(d.clone()));
                    *connection.status.write().unwrap_or_else(std::sync::PoisonError::into_inner) = status;
                    return Err(TokenError::NeedsReauthorization(Some(d)));
                }
                Err(e) => return Err(TokenError::Flow(e)),
            }
        }
    }
}
