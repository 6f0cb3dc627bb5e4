//! `keyway serve` and `keyway keys`: thin wrappers over `keyway-server`.

use clap::{Args, Subcommand, ValueEnum};
use keyway_server::{ServeError, ServeOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `keyway serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The database: `sqlite://PATH` (created if missing).
    #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
    db: String,
    /// Where to listen.
    #[arg(long, env = "KEYWAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL users' browsers and providers reach the hub at (callback URLs are built from
    /// it); default `http://LISTEN`.
    #[arg(long, env = "KEYWAY_PUBLIC_URL")]
    public_url: Option<String>,
    /// The encryption key file (`keyway keys generate --file FILE`).
    #[arg(long, env = "KEYWAY_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Development mode: without --keys-file, create a key file beside the database.
    #[arg(long)]
    dev: bool,
    /// Seconds between the background refresher's passes (tokens falling due, and every
    /// connection once a day); 0 turns it off.
    #[arg(long, env = "KEYWAY_REFRESH_EVERY", default_value_t = 60)]
    refresh_every: u64,
    /// Where to POST webhook events (https, or http on loopback); needs --webhook-secrets-file.
    #[arg(long, env = "KEYWAY_WEBHOOK_URL", requires = "webhook_secrets_file")]
    webhook_url: Option<String>,
    /// The webhook signing secrets, one per line (each signs every event: list the new one
    /// beside the old while receivers switch).
    #[arg(long, env = "KEYWAY_WEBHOOK_SECRETS_FILE", requires = "webhook_url")]
    webhook_secrets_file: Option<PathBuf>,
    /// Seconds a provider may take to answer one request (a refresh lease lasts every
    /// attempt's timeout and backoff).
    #[arg(long, env = "KEYWAY_PROVIDER_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    provider_timeout: u64,
    /// Days of failing refreshes (timeouts, 5xx) after which a connection is given up as
    /// `needs_reauth`.
    #[arg(long, env = "KEYWAY_GIVE_UP_AFTER_DAYS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=365))]
    give_up_after_days: u64,
    /// Connections kept in memory (their tokens); past it the least recently used are read
    /// from the database again on their next use.
    #[arg(long, env = "KEYWAY_CACHE_CONNECTIONS", default_value_t = keyway_runtime::DEFAULT_CAPACITY as u64, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    cache_connections: u64,
    /// Connectors kept in memory (an integration's configuration with a connection's
    /// parameters); past it the least recently used are rebuilt on their next use.
    #[arg(long, env = "KEYWAY_CACHE_CONNECTORS", default_value_t = keyway_server::hub::DEFAULT_CACHED_CONNECTORS as u64, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    cache_connectors: u64,
    /// Connections served at once; past it a new connection gets a 503 and is closed.
    #[arg(long, env = "KEYWAY_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds a client has to send a request's headers, on a new connection and on a
    /// kept-alive one waiting for its next request (so idle connections close after it too).
    #[arg(long, env = "KEYWAY_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a client has to send a request's body (408 after).
    #[arg(long, env = "KEYWAY_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// Let the hub reach providers (and webhook receivers) on loopback and private networks.
    /// Off, it connects only to public addresses, whatever a profile, a token answer or a
    /// name's DNS says; production with public providers never needs this.
    #[arg(long, env = "KEYWAY_ALLOW_PRIVATE_NETWORK")]
    allow_private_network: bool,
    /// Days the audit trail keeps a record; older ones are pruned (in bounded batches, every
    /// ten minutes). 0 keeps every record.
    #[arg(long, env = "KEYWAY_AUDIT_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u64).range(0..=36_500))]
    audit_retention_days: u64,
    /// Record every credential handed out (`credential.read`): one record per token read,
    /// committed before the token leaves. `off` leaves reads unrecorded, for a trail of
    /// changes only; refusals, refreshes and changes are recorded either way.
    #[arg(long, env = "KEYWAY_AUDIT_READS", value_enum, default_value_t = Switch::On)]
    audit_reads: Switch,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `keyway keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an encryption key: printed, or written first in FILE (the new encrypting key;
    /// the others keep decrypting until `keyway keys rotate` has run).
    Generate {
        /// The key file to create or prepend to (mode 0600).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Re-encrypt every stored secret with the key file's first key (resumable).
    Rotate {
        /// The database.
        #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
        db: String,
        /// The key file.
        #[arg(long, env = "KEYWAY_KEYS_FILE")]
        keys_file: PathBuf,
    },
    /// Management API keys.
    #[command(subcommand)]
    Api(ApiKeyCommand),
}

/// `keyway audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit trail as JSON Lines (one record per line, oldest first) on stdout.
    Export {
        /// The database.
        #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
        db: String,
        /// Records at or after: seconds since the epoch, or an age (`7d`, `12h`, `30m`).
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Records before: seconds since the epoch, or an age.
        #[arg(long, value_parser = parse_time)]
        until: Option<i64>,
        /// Only records about this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only records by this actor (an API key's id, a connect session's, an instance's).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (`credential.read`, ...).
        #[arg(long)]
        action: Option<String>,
    },
}

/// A time: seconds since the epoch, or an age before now (`7d`, `12h`, `30m`, `45s`).
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(at) = text.trim().parse::<i64>() {
        return Ok(at);
    }
    let age = parse_lifetime(text)?;
    Ok(unix_now() - age as i64)
}

/// `keyway audit export`: every matching record, a page at a time.
pub fn audit(command: AuditCommand, out: &mut impl Write) -> std::io::Result<ExitCode> {
    let AuditCommand::Export { db, since, until, connection, actor, action } = command;
    let runtime = runtime()?;
    let store = match runtime.block_on(keyway_server::open_store(&db, false)) {
        Ok(store) => store,
        Err(e) => {
            say!("keyway audit export: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut after = None;
    loop {
        let query = keyway_server::hub::AuditQuery {
            connection: connection.clone(),
            actor: actor.clone(),
            action: action.clone(),
            since,
            until,
            after: after.take(),
            limit: Some(keyway_server::hub::MAX_AUDIT_PAGE),
        };
        let page = match runtime.block_on(keyway_server::hub::Hub::audit_in(store.as_ref(), query)) {
            Ok(page) => page,
            Err(e) => {
                say!("keyway audit export: {}", e.detail());
                return Ok(ExitCode::FAILURE);
            }
        };
        for record in &page.data {
            writeln!(out, "{}", serde_json::to_string(record).unwrap_or_default())?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// `keyway keys api`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key: printed once, stored only as a hash.
    Create {
        /// The database.
        #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
        db: String,
        /// A label for the key: which backend holds it.
        #[arg(long, default_value = "default")]
        name: String,
        /// A scope the key holds (repeat, or separate with commas): integrations:read,
        /// integrations:write, connect_sessions:write, connections:read, connections:write,
        /// credentials:read, admin. Without any, the key holds every scope.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// How long the key is accepted: `90d`, `12h`, `30m`, `3600s` or seconds; without it,
        /// until revoked.
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<u64>,
    },
    /// List the API keys: id, name, scopes, created, expires, last used (never a secret).
    List {
        /// The database.
        #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
        db: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Revoke an API key: refused on its next request, on every instance.
    Revoke {
        /// The database.
        #[arg(long, env = "KEYWAY_DB", default_value = "sqlite://keyway.db")]
        db: String,
        /// The key's id: the part after `kwk_` up to the next `_` (as `list` shows it).
        id: String,
    },
}

/// How `keyway keys api list` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    /// A table.
    Text,
    /// One JSON object per key, per line.
    Json,
}

/// A lifetime: `90d`, `12h`, `30m`, `45s`, or a number of seconds.
fn parse_lifetime(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a lifetime such as 90d, 12h, 30m or 3600"))?;
    let unit = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(format!("`{text}`: the unit is d, h, m or s")),
    };
    let seconds = n.checked_mul(unit).ok_or_else(|| format!("`{text}` is too long"))?;
    if seconds == 0 || seconds > keyway_server::hub::MAX_KEY_LIFETIME {
        return Err(format!("`{text}`: a key lives from a second to ten years"));
    }
    Ok(seconds)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A time for people: `2026-12-07 18:40 UTC`, or `-`.
fn when(at: Option<i64>) -> String {
    let Some(at) = at else { return "-".to_owned() };
    let days = at.div_euclid(86_400);
    let secs = at.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// Logs to stderr through a writer thread, so a request's log line costs its formatting and
/// not a write to the terminal or pipe on the request's path (and lines logged together
/// leave in one write). Never lossy: when the writer
/// falls behind, logging waits. The guard flushes what is queued when dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The queue's slots are allocated up front: 8,192 lines, not the crate's 128,000.
        .buffered_lines_limit(8192)
        .thread_name("keyway-log")
        // Buffered: the writer flushes each time it has drained the queue, so lines that
        // arrive together leave in one write.
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let filter = EnvFilter::try_from_env("KEYWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Runs the hub until SIGINT or SIGTERM.
pub fn serve(profiles: &Path, args: ServeArgs) -> std::io::Result<ExitCode> {
    let _log = init_logging(args.log_format);
    let webhook = match (&args.webhook_url, &args.webhook_secrets_file) {
        (Some(url), Some(file)) => {
            let text = match read_small_file(file) {
                Ok(text) => text,
                Err(e) => {
                    say!("keyway serve: {}: {e}", file.display());
                    return Ok(ExitCode::from(2));
                }
            };
            match keyway_server::hub::WebhookOptions::new(url, &text) {
                Ok(options) => Some(options),
                Err(e) => {
                    say!("keyway serve: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        _ => None,
    };
    let options = ServeOptions {
        profiles: profiles.to_owned(),
        db: args.db,
        listen: args.listen,
        public_url: args.public_url,
        keys_file: args.keys_file,
        dev: args.dev,
        refresh_every: (args.refresh_every > 0).then(|| std::time::Duration::from_secs(args.refresh_every)),
        webhook,
        provider_timeout: std::time::Duration::from_secs(args.provider_timeout),
        give_up_after: std::time::Duration::from_secs(args.give_up_after_days * 86_400),
        allow_private_network: args.allow_private_network,
        audit_retention: (args.audit_retention_days > 0)
            .then(|| std::time::Duration::from_secs(args.audit_retention_days * 86_400)),
        audit_reads: args.audit_reads == Switch::On,
        limits: keyway_server::http::ConnectionLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
            body_timeout: std::time::Duration::from_secs(args.body_timeout),
        },
        cache: keyway_server::hub::CacheOptions {
            // Both are bounded by their parsers, far below usize::MAX.
            connections: usize::try_from(args.cache_connections).unwrap_or(usize::MAX),
            connectors: usize::try_from(args.cache_connectors).unwrap_or(usize::MAX),
        },
    };
    let result = runtime()?.block_on(keyway_server::serve(options, |addr| {
        // One line on stdout, for scripts and tests that start the hub on port 0.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "keyway serve: listening on http://{addr}");
        let _ = out.flush();
    }));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServeError::Profiles(_)) => {
            // The same located report `keyway validate` prints.
            let mut err = std::io::stderr().lock();
            let _ = super::validate(&[profiles.to_owned()], super::Format::Human, &mut err);
            say!("keyway serve: the profiles have errors; not starting");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ (ServeError::NoKeyFile | ServeError::DevNeedsSqlite | ServeError::KeyFile { .. })) => {
            say!("keyway serve: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            say!("keyway serve: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `keyway keys ...`.
pub fn keys(command: KeysCommand, out: &mut impl Write) -> std::io::Result<ExitCode> {
    match command {
        KeysCommand::Generate { file: None } => {
            writeln!(out, "{}", keyway_server::crypto::Keyring::generate_line())?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Generate { file: Some(path) } => match prepend_key(&path) {
            Ok(KeyAdded::Created(id)) => {
                say!(
                    "created {} with key `{id}`: start the hub with `keyway serve --keys-file {}`",
                    path.display(),
                    path.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Ok(KeyAdded::Prepended(id)) => {
                say!(
                    "wrote key `{id}` first in {}: restart `keyway serve`, then run `keyway keys rotate` to re-encrypt what older keys wrote",
                    path.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                say!("keyway keys generate: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        KeysCommand::Rotate { db, keys_file } => {
            let _log = init_logging(LogFormat::Text);
            let result = runtime()?.block_on(async {
                let keys = keyway_server::read_key_file(&keys_file)?;
                let store = keyway_server::open_store(&db, false).await?;
                keyway_server::rotate_keys(store.as_ref(), &keys).await.map(|counts| (counts, keys))
            });
            match result {
                Ok(((done, 0), keys)) => {
                    writeln!(
                        out,
                        "re-encrypted {done} value(s); every secret is now under key `{}`",
                        keys.primary_id()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Ok(((done, failed), _)) => {
                    say!(
                        "keyway keys rotate: re-encrypted {done} value(s); {failed} cannot be decrypted with any key in the file (see the log)"
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    say!("keyway keys rotate: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        KeysCommand::Api(command) => api_keys(command, out),
    }
}

/// `keyway keys api ...`: over the database, as the operator.
fn api_keys(command: ApiKeyCommand, out: &mut impl Write) -> std::io::Result<ExitCode> {
    use keyway_server::hub::{Caller, Hub};
    let caller = Caller::operator();
    match command {
        ApiKeyCommand::Create { db, name, scopes, expires_in } => {
            let every = scopes.is_empty();
            let scopes = if every {
                keyway_server::domain::Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect()
            } else {
                scopes.iter().map(|s| s.trim().to_owned()).collect()
            };
            let new = keyway_server::resources::NewApiKey { name, scopes, expires_in };
            let result = runtime()?.block_on(async {
                let store = keyway_server::open_store(&db, false).await.map_err(|e| e.to_string())?;
                Hub::create_api_key_in(store.as_ref(), &new, &caller, unix_now())
                    .await
                    .map_err(|e| e.detail().to_owned())
            });
            match result {
                Ok(created) => {
                    writeln!(out, "{}", created.secret)?;
                    let held = if every {
                        "every scope (pass --scope to hold fewer)".to_owned()
                    } else {
                        created.key.scopes.join(", ")
                    };
                    say!(
                        "created API key `{}` ({}) holding {held}, {}: it is shown once; send it as `Authorization: Bearer KEY`",
                        created.key.name,
                        created.key.id,
                        match created.key.expires_at {
                            Some(at) => format!("accepted until {}", when(Some(at))),
                            None => "accepted until revoked".to_owned(),
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    say!("keyway keys api create: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        ApiKeyCommand::List { db, format } => {
            let result = runtime()?.block_on(async {
                let store = keyway_server::open_store(&db, false).await.map_err(|e| e.to_string())?;
                Hub::list_api_keys_in(store.as_ref(), unix_now()).await.map_err(|e| e.detail().to_owned())
            });
            let keys = match result {
                Ok(list) => list.data,
                Err(e) => {
                    say!("keyway keys api list: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            match format {
                ListFormat::Json => {
                    for key in &keys {
                        writeln!(out, "{}", serde_json::to_string(key).unwrap_or_default())?;
                    }
                }
                ListFormat::Text => {
                    writeln!(out, "id\tname\tstatus\tscopes\tcreated\texpires\tlast used")?;
                    for key in &keys {
                        let scopes = if key.every_scope {
                            "every scope (a key from before scopes)".to_owned()
                        } else {
                            key.scopes.join(",")
                        };
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{scopes}\t{}\t{}\t{}",
                            key.id,
                            key.name,
                            key.status,
                            when(Some(key.created_at)),
                            when(key.expires_at),
                            when(key.last_used_at),
                        )?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ApiKeyCommand::Revoke { db, id } => {
            let result = runtime()?.block_on(async {
                let store = keyway_server::open_store(&db, false).await.map_err(|e| e.to_string())?;
                Hub::revoke_api_key_in(store.as_ref(), &id, &caller, unix_now())
                    .await
                    .map_err(|e| e.detail().to_owned())
            });
            match result {
                Ok(key) => {
                    say!(
                        "revoked API key `{}` ({}): refused from its next request, on every instance",
                        key.name,
                        key.id
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    say!("keyway keys api revoke: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// A small regular file's text (a secrets file), refused past 64 KiB.
fn read_small_file(path: &Path) -> Result<String, String> {
    keyway_stdx::read_limited_text(path, 64 * 1024).map_err(|e| e.to_string())
}

/// What `keyway keys generate --file` did.
enum KeyAdded {
    /// A new key file, with this key.
    Created(String),
    /// This key put first in an existing file.
    Prepended(String),
}

/// Puts a new key first in a key file (creating it, mode 0600).
fn prepend_key(path: &Path) -> Result<KeyAdded, String> {
    let line = keyway_server::crypto::Keyring::generate_line();
    let id = line.split(':').next().unwrap_or_default().to_owned();
    if !path.exists() {
        keyway_server::create_key_file(path).map_err(|e| e.to_string())?;
        let keys = keyway_server::read_key_file(path).map_err(|e| e.to_string())?;
        return Ok(KeyAdded::Created(keys.primary_id().to_owned()));
    }
    // Checked before it is rewritten: a damaged file is not made worse.
    keyway_server::read_key_file(path).map_err(|e| e.to_string())?;
    let old = read_small_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    keyway_stdx::replace_file_privately(path, format!("{line}\n{old}").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(KeyAdded::Prepended(id))
}
