//! `keyway serve`: a self-hosted connect hub over keyway's runtime. Layers, each using only
//! those below it:
//!
//! - [`http`]: the HTTP layer (axum). Handlers translate a request into one hub call and
//!   its answer (or [`error::HubError`]) back into JSON, a problem document or a page.
//! - [`views`]: the pages' view models and templates (minijinja), assets embedded.
//! - [`hub::Hub`]: the typed service: integrations (a tenant's app per profile), connect
//!   sessions, the connect flow, connections and their tokens. It calls the runtime for
//!   every OAuth step and the validator (through `Connector::new`) for every check.
//! - [`store::Store`]: the storage trait; [`store::SqlStore`] its SQLite (embedded, the
//!   default) and PostgreSQL backend; rows decoded into typed records once, when read.
//! - [`crypto::Keyring`]: encrypts every secret before it reaches the store.
//! - [`domain`], [`resources`], [`error`], [`json`], [`ids`]: the vocabulary every layer
//!   shares (states, the API's bodies, problem codes, bounded JSON input, identifiers).
//!
//! [`serve`] puts them together: load and validate the profiles, open the store, listen.

pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod hub;
pub mod ids;
pub mod json;
pub mod resources;
pub mod store;
pub mod views;

use crypto::Keyring;
use hub::{Hub, HubOptions};
use keyway_runtime::{Clock, Registry, SystemClock};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{SqlStore, Store};

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    SystemClock.now() as i64
}

/// How `keyway serve` starts.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The profiles directory.
    pub profiles: PathBuf,
    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    pub db: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The URL users and providers reach the hub at; default `http://LISTEN`.
    pub public_url: Option<String>,
    /// The encryption key file.
    pub keys_file: Option<PathBuf>,
    /// Development mode: without a key file, create one beside the database.
    pub dev: bool,
    /// How often the background refresher looks for connections to refresh; `None` turns
    /// it off.
    pub refresh_every: Option<std::time::Duration>,
    /// Where webhook events go (`--webhook-url`, `--webhook-secrets-file`).
    pub webhook: Option<hub::WebhookOptions>,
    /// How long a provider may take to answer one request; a refresh lease lasts every
    /// attempt's timeout and backoff.
    pub provider_timeout: std::time::Duration,
    /// Refreshes failing (transiently) for this long make a connection `needs_reauth`.
    pub give_up_after: std::time::Duration,
    /// How many connections and connectors are kept in memory.
    pub cache: hub::CacheOptions,
    /// Connections served at once, and how long a request's parts may take.
    pub limits: http::ConnectionLimits,
    /// Whether providers on loopback and private networks may be reached
    /// (`--allow-private-network`): off, only public addresses are.
    pub allow_private_network: bool,
    /// Audit records older than this are pruned (`--audit-retention-days`); `None` keeps
    /// them all.
    pub audit_retention: Option<std::time::Duration>,
    /// Credentials handed out are recorded (`--audit-reads`, on by default).
    pub audit_reads: bool,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The profiles have errors; the diagnostics say where.
    #[error("the profiles in {} have {} error(s)", .0.root.display(), .0.error_count())]
    Profiles(keyway_runtime::LoadError),
    /// No key file was given, and not `--dev`.
    #[error(
        "no encryption key: pass --keys-file FILE (create one with `keyway keys generate --file FILE`), \
         or --dev to create a throwaway key file beside the database"
    )]
    NoKeyFile,
    /// `--dev` makes its key file beside a SQLite database file; another database needs
    /// `--keys-file`, shared by every instance.
    #[error(
        "--dev keeps its key file beside a SQLite database file; with this database pass --keys-file FILE \
         (create it once with `keyway keys generate --file FILE` and give every instance the same file)"
    )]
    DevNeedsSqlite,
    /// The key file cannot be used.
    #[error("{}: {problem}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: KeyFileProblem,
    },
    /// The database.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client for providers cannot be built.
    #[error("the HTTP client: {0}")]
    HttpClient(#[from] keyway_runtime::TransportError),
    /// Loading the profiles stopped without an answer (the loading thread died).
    #[error("loading the profiles did not finish")]
    LoadInterrupted,
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    /// It cannot be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// It is larger than a key file can be.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// Its bounded read failed.
    #[error("{0}")]
    Read(String),
    /// Its text is not a key ring.
    #[error(transparent)]
    Keys(#[from] crypto::CryptoError),
}

/// The largest key file read.
const MAX_KEY_FILE: u64 = crypto::MAX_KEY_FILE_BYTES as u64;

/// Reads a key file: a regular file, bounded, warned about when others may read it.
pub fn read_key_file(path: &Path) -> Result<Keyring, ServeError> {
    let fail = |problem: KeyFileProblem| ServeError::KeyFile { path: path.to_owned(), problem };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.into()))?;
    if !meta.is_file() {
        return Err(fail(KeyFileProblem::NotAFile));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(fail(KeyFileProblem::TooLarge(MAX_KEY_FILE)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the key file can be read by other users; chmod 600 it");
        }
    }
    let text =
        keyway_stdx::read_limited_text(path, MAX_KEY_FILE).map_err(|e| fail(KeyFileProblem::Read(e.to_string())))?;
    Keyring::parse(&text).map_err(|e| fail(e.into()))
}

/// Writes a new key file (mode 0600), refusing to overwrite one.
pub fn create_key_file(path: &Path) -> Result<(), ServeError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let fail = |e: std::io::Error| ServeError::KeyFile { path: path.to_owned(), problem: e.into() };
    let mut file = options.open(path).map_err(fail)?;
    let text = format!(
        "# keyway encryption keys: the first line encrypts, every line decrypts. Keep this file secret.\n{}\n",
        Keyring::generate_line()
    );
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(fail)
}

/// The database file of a `sqlite://` URL, when it names one.
fn sqlite_path(db: &str) -> Option<PathBuf> {
    let rest = db.strip_prefix("sqlite://").or_else(|| db.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// The key ring `keyway serve` uses: the key file, or in `--dev` mode one created beside the
/// database.
pub fn resolve_keys(keys_file: Option<&Path>, db: &str, dev: bool) -> Result<Keyring, ServeError> {
    if let Some(path) = keys_file {
        return read_key_file(path);
    }
    if !dev {
        return Err(ServeError::NoKeyFile);
    }
    // Beside a server database there is no "beside": two dev hubs started from different
    // directories would make different keys and neither could read the other's rows.
    let Some(db_path) = sqlite_path(db) else { return Err(ServeError::DevNeedsSqlite) };
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".keys");
    let path = db_path.with_file_name(name);
    if !path.exists() {
        create_key_file(&path)?;
        tracing::warn!(path = %path.display(), "DEVELOPMENT MODE: created an encryption key file beside the database; anyone who can read it can decrypt every token. Use --keys-file in production.");
    } else {
        tracing::warn!(path = %path.display(), "DEVELOPMENT MODE: using the key file beside the database. Use --keys-file in production.");
    }
    read_key_file(&path)
}

/// Opens the store a database URL names (`sqlite://PATH` or `postgres://...`); `events`:
/// state changes write webhook events to the outbox.
pub async fn open_store(db: &str, events: bool) -> Result<Arc<dyn Store>, ServeError> {
    Ok(Arc::new(SqlStore::open(db).await?.with_events(events)))
}

/// Re-encrypts every stored secret to the encrypting key; resumable (each value is written
/// on its own, only if unchanged since it was read). Returns (re-encrypted, failed).
pub async fn rotate_keys(store: &dyn Store, keys: &Keyring) -> Result<(u64, u64), ServeError> {
    let (mut done, mut failed) = (0u64, std::collections::HashSet::new());
    loop {
        let cells = store.cells_not_under(keys.primary_id(), 500).await?;
        let fresh: Vec<_> =
            cells.into_iter().filter(|c| !failed.contains(&(c.table, c.row.clone(), c.column))).collect();
        if fresh.is_empty() {
            break;
        }
        for cell in fresh {
            let at = crypto::Cell { table: cell.table, row: &cell.row, column: cell.column };
            match keys.decrypt(at, &cell.blob) {
                Ok(plain) => {
                    if store.replace_cell(&cell, &keys.encrypt(at, &plain)).await? {
                        done += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(table = cell.table, row = %cell.row, column = cell.column, error = %e, "cannot re-encrypt");
                    failed.insert((cell.table, cell.row.clone(), cell.column));
                }
            }
        }
    }
    Ok((done, failed.len() as u64))
}

/// Loads the profiles, opens the store and serves until SIGINT or SIGTERM; SIGHUP reloads the
/// profiles. `on_listen` gets the bound address.
pub async fn serve(options: ServeOptions, on_listen: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let profiles = options.profiles.clone();
    http::raise_file_limit();
    let registry = tokio::task::spawn_blocking(move || Registry::load(profiles))
        .await
        .map_err(|_| ServeError::LoadInterrupted)?
        .map_err(ServeError::Profiles)?;
    let keys = Arc::new(resolve_keys(options.keys_file.as_deref(), &options.db, options.dev)?);
    let store = open_store(&options.db, options.webhook.is_some()).await?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let public_url = options.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hub = Hub::new(
        registry,
        store,
        keys,
        clock,
        HubOptions {
            public_url,
            http: keyway_runtime::HttpOptions {
                timeout: options.provider_timeout,
                destinations: if options.allow_private_network {
                    keyway_runtime::Destinations::Any
                } else {
                    keyway_runtime::Destinations::Public
                },
                ..Default::default()
            },
            refresh: Default::default(),
            webhook: options.webhook.clone(),
            give_up_after: options.give_up_after,
            cache: options.cache,
            audit_reads: options.audit_reads,
        },
    )?;
    let hub = Arc::new(hub);
    tracing::info!(profiles = hub.registry().len(), %addr, public_url = hub.public_url(), "keyway serve started");
    spawn_reload_on_sighup(Arc::clone(&hub));
    if let Some(every) = options.refresh_every {
        spawn_refresher(Arc::clone(&hub), every);
    }
    if options.webhook.is_some() {
        spawn_webhook_delivery(Arc::clone(&hub));
    }
    if let Some(retention) = options.audit_retention {
        spawn_audit_pruner(Arc::clone(&hub), retention);
    }
    let app = http::router(http::AppState::new(hub).with_body_timeout(options.limits.body_timeout));
    on_listen(addr);
    http::serve(listener, app, options.limits, shutdown_signal()).await;
    Ok(())
}

/// The background refresher: keeps tokens fresh ahead of use, and every connection refreshed
/// at least once a day (a refresh token unused for long may expire at the provider).
fn spawn_refresher(hub: Arc<Hub>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match hub.refresh_due().await {
                Ok((0, 0)) => {}
                Ok((refreshed, failed)) => tracing::info!(refreshed, failed, "background refresh"),
                Err(e) => tracing::warn!(code = %e.code(), "background refresh: {}", e.detail()),
            }
        }
    });
}

/// Prunes audit records past the retention, at start and every ten minutes, in bounded
/// batches (`Hub::prune_audit`).
fn spawn_audit_pruner(hub: Arc<Hub>, retention: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(600));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match hub.prune_audit(retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "audit records past the retention pruned"),
                Err(e) => tracing::warn!(code = %e.code(), "audit pruning: {}", e.detail()),
            }
        }
    });
}

/// Delivers the outbox's webhook events, once a second.
fn spawn_webhook_delivery(hub: Arc<Hub>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = hub.deliver_webhooks().await {
                tracing::warn!(code = %e.code(), "webhook delivery: {}", e.detail());
            }
        }
    });
}

fn spawn_reload_on_sighup(hub: Arc<Hub>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            let hub = Arc::clone(&hub);
            match tokio::task::spawn_blocking(move || hub.reload()).await {
                Ok(Ok(reloaded)) => tracing::info!(profiles = reloaded.profiles, "SIGHUP: profiles reloaded"),
                Ok(Err(e)) => tracing::error!("SIGHUP: {}", e.detail()),
                Err(_) => tracing::error!("SIGHUP: the reload did not finish"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = hub;
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
