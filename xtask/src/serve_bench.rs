//! `cargo xtask bench serve`: the connect hub under load, and at scale.
//!
//! One run, on SQLite and on PostgreSQL (a throwaway cluster from `scripts/pg.sh`, on a free
//! port):
//!
//! 1. Seeds N connections (default 10,000) with a bulk path of the benchmark's own: one
//!    connection imported through the hub (integration `salesforce-local`, keyway-testkit's
//!    child profile, provider on loopback) gives the token set as the hub writes it; every
//!    other row is that set with its own tokens, encrypted by the hub's `Keyring` for its own
//!    row, and inserted by `SqlStore::insert_connections` (multi-row `INSERT`s, a transaction
//!    per 5,000 rows). Tokens are valid for a month: a read calls no provider.
//! 2. Starts the release `keyway serve` (hub A; the refresher off, measured on its own below)
//!    and reads, through HTTP with 32 keep-alive connections, the first 100,000 connections
//!    (each a first read: freshness check, row read, decrypt, connector), then all the
//!    others; its resident set before, after the first 100,000 and after all N (with the
//!    default `--cache-connections 100000`, the bound); cold-read latencies.
//! 3. On PostgreSQL, starts a second `keyway serve` (hub B) on the same database; on both,
//!    one more (hub R) with `--audit-reads off`, the same read without its audit record.
//! 4. Loads `GET /v1/connections/{id}/token` (a random connection of the last 10,000 read,
//!    all cached; API key checked; each answer's audit record written, batched, before it
//!    is sent) with wrk -t1 -c32 against each hub in turn, alternating
//!    with an axum handler that answers a constant of the same size on the same runtime
//!    settings (the ceiling), 3 runs each, medians; then wrk against both PostgreSQL hubs at
//!    once.
//! 5. The background refresher: the claim query (200 rows) over the N rows all due; then a
//!    sweep: S more connections (`--sweep`, default 1,000) with tokens from keyway-testkit,
//!    expired, seeded beside the N, refreshed by a fresh `keyway serve --refresh-every 1`
//!    (`--sweep-cache C`: with `--cache-connections C`, to see the bound within a short
//!    sweep), timed until the provider has seen S refreshes, its resident set sampled at each
//!    quarter; and the
//!    refresh throughput of the hub's pass in process (1,000 due at once), as before.
//! 6. Times `keyway serve` from spawn to its listening line with the bundled profiles and the
//!    1,015-profile catalogue (the startup bench's set).

use keyway_server::crypto::{Cell, Keyring};
use keyway_server::domain::ConnectionState;
use keyway_server::store::{ConnectionRecord, SqlStore, Store};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const HELP: &str = "\
usage: cargo xtask bench serve [--connections N] [--seconds S] [--sweep S] [--sweep-cache C]

Seeds N connections (default 10000) into fresh SQLite and PostgreSQL stores under
target/bench/serve (PostgreSQL: scripts/pg.sh on a free port, or the cluster already running
in KEYWAY_PG_DIR), starts the release `keyway serve`, reads every connection once through
HTTP (resident memory after 100,000 and after all N, cold-read latency), then loads
GET /v1/connections/{id}/token with wrk (Debian package `wrk`: scripts/bench-deps.sh installs
it) beside a constant axum handler, two instances on PostgreSQL; times the refresher's claim
query over N and its sweep over S due connections (default 1000) against keyway-testkit; and
the start time with the 1,015-profile catalogue (fetched like `cargo xtask bench startup`).
--seconds is each wrk run's length (default 10); --sweep-cache starts the sweeping instance
with --cache-connections C (default: keyway's default). The scale run: --connections 1000000.";

struct Options {
    connections: usize,
    seconds: u64,
    sweep: usize,
    /// `--cache-connections` of the sweeping instance; `None`: keyway's default.
    sweep_cache: Option<u64>,
}

pub fn serve(args: &[&str]) -> ExitCode {
    let mut options = Options { connections: 10_000, seconds: 10, sweep: 1_000, sweep_cache: None };
    let mut rest = args;
    while let [flag, value, tail @ ..] = rest {
        match (*flag, value.parse::<u64>()) {
            ("--connections", Ok(n)) if n > 0 => options.connections = n as usize,
            ("--seconds", Ok(n)) if n > 0 => options.seconds = n,
            ("--sweep", Ok(n)) if n > 0 => options.sweep = n as usize,
            ("--sweep-cache", Ok(n)) if n > 0 => options.sweep_cache = Some(n),
            _ => {
                eprintln!("{HELP}");
                return ExitCode::from(2);
            }
        }
        rest = tail;
    }
    if !rest.is_empty() {
        eprintln!("{HELP}");
        return ExitCode::from(2);
    }
    if cfg!(debug_assertions) {
        return super::bench::rerun_in_release("serve", args);
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connections read before the first memory figure.
const FIRST_READS: usize = 100_000;
/// The cached set the token load picks from: as in the earlier runs, and well inside the
/// token manager's default bound, so every read of the load is a cached one.
const WARM_SET: usize = 10_000;
/// Keep-alive connections of the benchmark's own reader, as many as wrk's.
const READERS: usize = 32;
/// Rows per bulk-insert transaction.
const SEED_CHUNK: usize = 5_000;

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn resident_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".to_owned())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The 1, 5 and 15 minute load averages: the machine is shared, so every phase says what
/// else was running.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn start_keyway(
    keyway: &Path,
    profiles: &Path,
    db: &str,
    keys: &Path,
    extra: &[&str],
) -> Result<(Process, String, Duration), String> {
    let started = Instant::now();
    let mut child = Command::new(keyway)
        .arg("--profiles")
        .arg(profiles)
        .args(["serve", "--allow-private-network", "--listen", "127.0.0.1:0", "--db", db, "--keys-file"])
        .arg(keys)
        .args(extra)
        .env("KEYWAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start keyway serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let base = line
        .trim()
        .strip_prefix("keyway serve: listening on http://")
        .ok_or_else(|| format!("keyway serve did not start: {line}"))?
        .to_owned();
    Ok((Process(child), base, elapsed))
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Client {
    fn connect(addr: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Client { stream, reader, addr: addr.to_owned() })
    }

    /// GETs a connection's token; anything but 200 is an error.
    fn token(&mut self, key: &str, id: &str) -> Result<(), String> {
        let request = format!(
            "GET /v1/connections/{id}/token HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\r\n",
            self.addr
        );
        self.stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut status = String::new();
        self.reader.read_line(&mut status).map_err(|e| format!("{id}: {e}"))?;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).map_err(|e| e.to_string())?;
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().map_err(|_| format!("{id}: a Content-Length that is no number"))?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        if !status.contains(" 200 ") {
            return Err(format!("{id}: {} {}", status.trim(), String::from_utf8_lossy(&body)));
        }
        Ok(())
    }
}

/// Reads each connection's token once, over `READERS` keep-alive connections taking the next
/// id in turn: each request's latency in microseconds.
fn read_many(addr: &str, key: &str, ids: &[String]) -> Result<Vec<u32>, String> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..READERS.min(ids.len()))
            .map(|_| {
                scope.spawn(|| -> Result<Vec<u32>, String> {
                    let mut client = Client::connect(addr)?;
                    let mut latencies = Vec::new();
                    while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let started = Instant::now();
                        client.token(key, id)?;
                        latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(ids.len());
        for reader in readers {
            all.extend(reader.join().map_err(|_| "a reader thread panicked".to_owned())??);
        }
        Ok(all)
    })
}

/// p50 and p99 of latencies in microseconds, in milliseconds.
fn percentiles(mut micros: Vec<u32>) -> (f64, f64) {
    if micros.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    micros.sort_unstable();
    let at = |q: f64| f64::from(micros[((micros.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    (at(0.50), at(0.99))
}

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk_start(addr: &str, script: &Path, seconds: u64) -> Result<Child, String> {
    Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{addr}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk ({e}): scripts/bench-deps.sh installs it"))
}

fn wrk_finish(child: Child) -> Result<Load, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("Non-2xx") {
        return Err(format!("wrk failed or saw errors:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    }
    // Timeouts (no answer within wrk's 2 s) are figures of the run, not a reason to stop it.
    if let Some(errors) = text.lines().map(str::trim).find(|l| l.starts_with("Socket errors")) {
        println!("      wrk: {errors}");
    }
    let field = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_owned())
    };
    let latency = |v: String| -> Option<f64> {
        let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => return None,
        })
    };
    Ok(Load {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no Requests/sec in\n{text}"))?,
        p50_ms: field("50%").and_then(latency).ok_or_else(|| format!("no p50 in\n{text}"))?,
        p99_ms: field("99%").and_then(latency).ok_or_else(|| format!("no p99 in\n{text}"))?,
    })
}

fn wrk(addr: &str, script: &Path, seconds: u64) -> Result<Load, String> {
    wrk_finish(wrk_start(addr, script, seconds)?)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The ceiling: axum answering a constant of the token answer's size, on a runtime like
/// `keyway serve`'s (multi-threaded, one worker per CPU).
fn constant_server(body: String) -> Result<(String, std::thread::JoinHandle<()>), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    let body = Arc::new(body);
    let handle = std::thread::spawn(move || {
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/connections/{id}/token",
                axum::routing::get(move || {
                    let body = Arc::clone(&body);
                    async move { ([("content-type", "application/json")], (*body).clone()) }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok((addr, handle))
}

/// Which port the cluster in `data` runs on, when one does: `postmaster.pid` names its
/// data directory (line 2) and port (line 4). A pid file naming another directory was
/// copied with it (a copied `target/`): its server is someone else's, so this is an error
/// rather than a cluster to reuse or a file to delete.
fn running_postgres_port(data: &Path) -> Result<Option<u16>, String> {
    let pid_file = data.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else { return Ok(None) };
    let lines: Vec<&str> = text.lines().collect();
    let (Some(pid), Some(dir), Some(port)) = (lines.first(), lines.get(1), lines.get(3)) else { return Ok(None) };
    if !Path::new(&format!("/proc/{}", pid.trim())).exists() {
        return Ok(None);
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(dir.trim()), data) {
        return Err(format!(
            "{} names the cluster in {} (copied from another checkout?): remove it, or set KEYWAY_PG_DIR",
            pid_file.display(),
            dir.trim()
        ));
    }
    Ok(port.trim().parse().ok())
}

/// A port nothing listens on now: the kernel's pick for port 0.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A throwaway PostgreSQL (scripts/pg.sh): its admin URL. The port is the one the cluster in
/// KEYWAY_PG_DIR (default target/pg) already runs on, else KEYWAY_PG_PORT, else a free one:
/// pg.sh's default, 54329, may be another checkout's cluster.
fn postgres(root: &Path) -> Result<String, String> {
    let dir = std::env::var_os("KEYWAY_PG_DIR").map_or_else(|| root.join("target/pg"), PathBuf::from);
    let port = match running_postgres_port(&dir.join("data"))? {
        Some(port) => port,
        None => match std::env::var("KEYWAY_PG_PORT") {
            Ok(port) => port.parse().map_err(|_| format!("KEYWAY_PG_PORT `{port}` is not a port"))?,
            Err(_) => free_port()?,
        },
    };
    let out = Command::new(root.join("scripts/pg.sh"))
        .arg("start")
        .env("KEYWAY_PG_DIR", &dir)
        .env("KEYWAY_PG_PORT", port.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("scripts/pg.sh start: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let exports = String::from_utf8_lossy(&out.stdout).into_owned();
    exports
        .lines()
        .find_map(|l| l.strip_prefix("export KEYWAY_TEST_POSTGRES_URL="))
        .map(str::to_owned)
        .ok_or_else(|| "scripts/pg.sh printed no URL".to_owned())
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql").args([url, "-qAtc", sql]).output().map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql: {sql}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A fresh database `name` on the cluster: its URL.
fn fresh_database(admin: &str, name: &str) -> Result<String, String> {
    psql(admin, &format!("DROP DATABASE IF EXISTS {name}"))?;
    psql(admin, &format!("CREATE DATABASE {name}"))?;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

/// A hub in the benchmark's process, for what only the hub can write (an integration, an API
/// key, an imported connection), over the same store and keys as `keyway serve`.
fn bench_hub(
    profiles: &Path,
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn keyway_runtime::Clock>,
) -> Result<keyway_server::hub::Hub, String> {
    let registry =
        keyway_runtime::Registry::load(profiles).map_err(|e| format!("{} profile error(s)", e.error_count()))?;
    keyway_server::hub::Hub::new(
        registry,
        store,
        keyring,
        clock,
        keyway_server::hub::HubOptions {
            public_url: "https://connect.example.com".to_owned(),
            http: Default::default(),
            refresh: Default::default(),
            webhook: None,
            give_up_after: keyway_server::hub::GIVE_UP_AFTER,
            cache: Default::default(),
            audit_reads: true,
        },
    )
    .map_err(|e| e.to_string())
}

fn testkit_integration() -> keyway_server::resources::NewIntegration {
    keyway_server::resources::NewIntegration {
        profile: keyway_testkit::profiles::LOCAL_PROFILE_ID.to_owned(),
        name: None,
        client_id: "3MVG9testkit".to_owned(),
        client_secret: Some("testkit-secret".to_owned().into()),
        staged_client_secret: None,
        environment: Some("local".to_owned()),
        actions: vec!["list_accounts".to_owned()],
        custom_scopes: None,
        parameters: Default::default(),
        pkce: None,
        refresh_sends_secret: None,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A store seeded by [`seed`]: what later phases need to read and add to it.
struct Seeded {
    store: SqlStore,
    keyring: Arc<Keyring>,
    key: String,
    integration: String,
    /// The stored token set of the connection imported through the hub, decrypted: every
    /// bulk row is this set with its own tokens and times.
    template: serde_json::Value,
    ids: Vec<String>,
}

/// Token strings and times for one bulk row.
struct RowTokens {
    access: String,
    refresh: String,
    expires_at: i64,
    obtained_at_ms: u64,
}

/// A connection row like the hub's: the template set with `tokens`, encrypted for this row.
fn bulk_row(seeded: &Seeded, index: usize, tokens: RowTokens, now: i64) -> Result<ConnectionRecord, String> {
    let id = keyway_server::ids::new_id(keyway_server::ids::CONNECTION);
    let mut set = seeded.template.clone();
    let fields = set.as_object_mut().ok_or("the stored token set is not an object")?;
    fields.insert("access_token".to_owned(), tokens.access.into());
    fields.insert("refresh_token".to_owned(), tokens.refresh.into());
    fields.insert("expires_at".to_owned(), tokens.expires_at.into());
    fields.insert("obtained_at_ms".to_owned(), tokens.obtained_at_ms.into());
    if fields.contains_key("issued_at_ms") {
        fields.insert("issued_at_ms".to_owned(), tokens.obtained_at_ms.into());
    }
    let scopes: Vec<String> = serde_json::from_value(fields.get("scopes").cloned().unwrap_or_default())
        .map_err(|e| format!("the stored token set's scopes: {e}"))?;
    let plain = serde_json::to_vec(&set).map_err(|e| e.to_string())?;
    let blob = seeded.keyring.encrypt(Cell { table: "connections", row: &id, column: "tokens_blob" }, &plain);
    let end_user =
        keyway_server::domain::EndUser { id: format!("user-{index}@example.com"), email: None, display_name: None };
    let mut record = ConnectionRecord::pending(id, &seeded.integration, end_user, Default::default(), now);
    record.state = ConnectionState::Active;
    record.tokens_blob = Some(blob);
    record.scopes = scopes;
    record.expires_at = Some(tokens.expires_at);
    Ok(record)
}

/// Inserts rows made by `make(index)` for `indices`, `SEED_CHUNK` per transaction: their ids.
async fn insert_bulk(
    seeded: &Seeded,
    indices: std::ops::Range<usize>,
    mut make: impl FnMut(usize) -> Result<RowTokens, String>,
) -> Result<Vec<String>, String> {
    let now = keyway_runtime::Clock::now(&keyway_runtime::SystemClock) as i64;
    let mut ids = Vec::with_capacity(indices.len());
    let mut chunk = Vec::with_capacity(SEED_CHUNK);
    for i in indices {
        chunk.push(bulk_row(seeded, i, make(i)?, now)?);
        if chunk.len() == SEED_CHUNK {
            seeded.store.insert_connections(&chunk).await.map_err(|e| e.to_string())?;
            ids.extend(chunk.drain(..).map(|r| r.id));
        }
    }
    seeded.store.insert_connections(&chunk).await.map_err(|e| e.to_string())?;
    ids.extend(chunk.into_iter().map(|r| r.id));
    Ok(ids)
}

/// Seeds `n` connections: an API key and an integration through the hub, one connection
/// imported through the hub's import path (tokens from keyway-testkit), and `n - 1` more by
/// the bulk path, tokens valid for 30 days. Returns the seeded store and the bulk time.
async fn seed(
    profiles: &Path,
    db: &str,
    keys: &Path,
    provider: &keyway_testkit::TestProvider,
    n: usize,
) -> Result<(Seeded, Duration), String> {
    use keyway_server::resources::{EndUser, ImportedTokens, NewConnection};
    let store = SqlStore::open(db).await.map_err(|e| e.to_string())?;
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let keyring = Arc::new(keyway_server::read_key_file(keys).map_err(|e| e.to_string())?);
    let hub = bench_hub(profiles, Arc::clone(&shared), Arc::clone(&keyring), Arc::new(keyway_runtime::SystemClock))?;
    let key = keyway_server::hub::Hub::create_api_key(shared.as_ref(), "bench", 0).await.map_err(|e| e.to_string())?;
    let integration = hub
        .create_integration(&keyway_server::hub::Caller::operator(), testkit_integration())
        .await
        .map_err(|e| e.detail().to_owned())?;
    let issued = provider.issue_tokens("template@example.com", "api refresh_token");
    let text = |k: &str| issued[k].as_str().unwrap_or_default().to_owned();
    let mut fields = serde_json::Map::new();
    fields.insert("instance_url".to_owned(), serde_json::Value::from(provider.base_url()));
    let imported = hub
        .import_connection(
            &keyway_server::hub::Caller::operator(),
            NewConnection {
                integration_id: integration.id.clone(),
                end_user: EndUser { id: "template@example.com".to_owned(), email: None, display_name: None },
                parameters: Default::default(),
                fields: None,
                tokens: Some(ImportedTokens {
                    access_token: text("access_token").into(),
                    refresh_token: Some(text("refresh_token").into()),
                    token_type: Some("Bearer".to_owned()),
                    expires_in: Some(30 * 24 * 3600),
                    scope: Some("api refresh_token".to_owned()),
                    fields,
                }),
            },
        )
        .await
        .map_err(|e| e.detail().to_owned())?;
    let row = shared.connection(&imported.id).await.map_err(|e| e.to_string())?.ok_or("the import left no row")?;
    let blob = row.tokens_blob.ok_or("the imported connection has no tokens")?;
    let plain = keyring
        .decrypt(Cell { table: "connections", row: &imported.id, column: "tokens_blob" }, &blob)
        .map_err(|e| e.to_string())?;
    let template: serde_json::Value = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
    let mut seeded =
        Seeded { store, keyring, key, integration: integration.id, template, ids: vec![imported.id.clone()] };
    let started = Instant::now();
    let expires_at = keyway_runtime::Clock::now(&keyway_runtime::SystemClock) as i64 + 30 * 24 * 3600;
    let obtained_at_ms = unix_ms();
    // Token strings of a Salesforce set's length, distinct per row.
    let more = insert_bulk(&seeded, 1..n, |i| {
        Ok(RowTokens {
            access: format!("00Dbench!{i:08}{}", "x".repeat(96)),
            refresh: format!("5Aep861bench{i:08}{}", "y".repeat(70)),
            expires_at,
            obtained_at_ms,
        })
    })
    .await?;
    let took = started.elapsed();
    seeded.ids.extend(more);
    Ok((seeded, took))
}

/// A running `keyway serve` on a backend's database.
struct Instance {
    label: String,
    /// Started with `--audit-reads off`: the same read without its audit record (what the
    /// record costs, in the same run).
    unrecorded: bool,
    process: Process,
    addr: String,
    runs: Vec<Load>,
}

/// A seeded backend with its hubs.
struct Backend {
    name: &'static str,
    db: String,
    seeded: Seeded,
    instances: Vec<Instance>,
    script: PathBuf,
}

/// Where the store's bytes are: the SQLite files, or the PostgreSQL database's size.
fn store_size(db: &str) -> String {
    if let Some(path) = db.strip_prefix("sqlite://") {
        let bytes: u64 = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{path}{suffix}")).ok())
            .map(|m| m.len())
            .sum();
        return format!("{:.0} MiB on disk (database and WAL)", bytes as f64 / 1048576.0);
    }
    match psql(db, "SELECT pg_database_size(current_database())") {
        Ok(bytes) => format!("{:.0} MiB (pg_database_size)", bytes.parse::<f64>().unwrap_or(0.0) / 1048576.0),
        Err(e) => e,
    }
}

/// What every phase of a run shares.
struct Bench<'a> {
    rt: &'a tokio::runtime::Runtime,
    /// The provider the profiles point at.
    provider: &'a keyway_testkit::TestProvider,
    /// The release `keyway`.
    keyway: &'a Path,
    /// The profiles directory every `keyway serve` loads (testkit's, bundled ones included).
    profiles: &'a Path,
    keys: &'a Path,
    work: &'a Path,
}

/// Seeds a backend, starts hub A, reads every connection once through HTTP with its memory
/// and cold latencies; on PostgreSQL starts hub B too. Then writes the token load's script.
fn prepare(bench: &Bench<'_>, name: &'static str, db: String, n: usize) -> Result<Backend, String> {
    let Bench { rt, provider, keyway, profiles, keys, work } = *bench;
    let (seeded, took) = rt.block_on(seed(profiles, &db, keys, provider, n))?;
    println!(
        "  {name}: seeded {} connections by the bulk path in {:.1} s ({:.0}/s: token set, encrypt, multi-row INSERT, a commit per {SEED_CHUNK}); store {}; load {}",
        seeded.ids.len(),
        took.as_secs_f64(),
        (seeded.ids.len() - 1) as f64 / took.as_secs_f64(),
        store_size(&db),
        load_average()
    );
    if db.starts_with("postgres") {
        // Autovacuum would do this within a minute; done now so every run plans the same.
        psql(&db, "ANALYZE")?;
    }
    let off = ["--refresh-every", "0"];
    let (process, addr, _) = start_keyway(keyway, profiles, &db, keys, &off)?;
    let pid = process.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let before = resident_kib(pid)?;
    let ids = &seeded.ids;
    let first = ids.len().min(FIRST_READS);
    let started = Instant::now();
    let cold = read_many(&addr, &seeded.key, &ids[..first])?;
    let first_time = started.elapsed();
    let after_first = resident_kib(pid)?;
    let (p50, p99) = percentiles(cold);
    println!(
        "  {name}: hub A resident {:.1} MiB before the first token read, {:.1} MiB after reading {first} distinct connections",
        mib(before),
        mib(after_first)
    );
    println!(
        "  {name}: first reads (freshness check, row read, decrypt, connector), {READERS} connections: {:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        first as f64 / first_time.as_secs_f64()
    );
    if ids.len() > first {
        let started = Instant::now();
        let cold = read_many(&addr, &seeded.key, &ids[first..])?;
        let rest_time = started.elapsed();
        let after_all = resident_kib(pid)?;
        let (p50, p99) = percentiles(cold);
        println!(
            "  {name}: hub A resident {:.1} MiB after reading all {} (cache bound: --cache-connections {}, the default); load {}",
            mib(after_all),
            ids.len(),
            keyway_runtime::DEFAULT_CAPACITY,
            load_average()
        );
        println!(
            "  {name}: first reads of the other {} (the cache full, evicting): {:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
            ids.len() - first,
            (ids.len() - first) as f64 / rest_time.as_secs_f64()
        );
    }
    let mut instances =
        vec![Instance { label: "hub A".to_owned(), unrecorded: false, process, addr, runs: Vec::new() }];
    // The cached set: the last ones read, so in hub A's cache whatever N is.
    let warm = &ids[ids.len() - ids.len().min(WARM_SET)..];
    if db.starts_with("postgres") {
        let (process, addr, _) = start_keyway(keyway, profiles, &db, keys, &off)?;
        read_many(&addr, &seeded.key, warm)?;
        instances.push(Instance { label: "hub B".to_owned(), unrecorded: false, process, addr, runs: Vec::new() });
    }
    let (process, addr, _) =
        start_keyway(keyway, profiles, &db, keys, &[&off[..], &["--audit-reads", "off"]].concat())?;
    read_many(&addr, &seeded.key, warm)?;
    instances.push(Instance {
        label: "hub R (reads unrecorded)".to_owned(),
        unrecorded: true,
        process,
        addr,
        runs: Vec::new(),
    });
    let ids_file = work.join(format!("ids-{name}.txt"));
    std::fs::write(&ids_file, warm.join("\n")).map_err(|e| e.to_string())?;
    let lua = |path: &str| {
        format!(
            "local ids = {{}}\nfor line in io.lines(\"{}\") do ids[#ids + 1] = line end\nmath.randomseed(42)\n\
             wrk.headers[\"Authorization\"] = \"Bearer {}\"\n\
             request = function()\n  return wrk.format(\"GET\", \"/v1/connections/\" .. ids[math.random(#ids)] .. \"{path}\")\nend\n",
            ids_file.display(),
            seeded.key
        )
    };
    let script = work.join(format!("token-{name}.lua"));
    std::fs::write(&script, lua("/token")).map_err(|e| e.to_string())?;
    Ok(Backend { name, db, seeded, instances, script })
}

fn summary(runs: &[Load]) -> (f64, f64, f64) {
    (
        median(runs.iter().map(|l| l.rps).collect()),
        median(runs.iter().map(|l| l.p50_ms).collect()),
        median(runs.iter().map(|l| l.p99_ms).collect()),
    )
}

fn run(options: &Options) -> Result<(), String> {
    let root = crate::root();
    let work = root.join("target/bench/serve");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let keyway = super::bench::build_keyway(&root)?;
    let keys = work.join("bench.keys");
    keyway_server::create_key_file(&keys).map_err(|e| e.to_string())?;
    let run_started = Instant::now();

    println!(
        "keyway serve benchmark ({} logical CPU(s), load {}), {} connections, sweep {}",
        super::bench::cpus(),
        load_average(),
        options.connections,
        options.sweep
    );
    // One provider for the whole run: the profiles every `keyway serve` loads point at it.
    let rt = runtime()?;
    let provider = rt
        .block_on(keyway_testkit::TestProvider::start(keyway_testkit::ProviderConfig {
            rotate_refresh_tokens: true,
            approvals_per_user: 0,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
    let profiles = work.join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).map_err(|e| e.to_string())?;

    let sqlite = format!("sqlite://{}", work.join("hub.db").display());
    let n = options.connections;
    let bench = Bench { rt: &rt, provider: &provider, keyway: &keyway, profiles: &profiles, keys: &keys, work: &work };
    let mut backends = vec![prepare(&bench, "SQLite", sqlite, n)?];
    let admin = match postgres(&root) {
        Ok(admin) => Some(admin),
        Err(e) => {
            println!("  PostgreSQL: not measured: {e}");
            None
        }
    };
    if let Some(admin) = &admin {
        let url = fresh_database(admin, "kw_bench")?;
        println!("  PostgreSQL: {}", psql(&url, "SHOW server_version")?);
        backends.push(prepare(&bench, "PostgreSQL", url, n)?);
    }

    // Cached token reads beside the ceiling, alternating.
    let sample = {
        let first = &backends[0];
        let warm = first.seeded.ids.last().ok_or("no connection")?;
        sample_body(&first.instances[0].addr, &first.seeded.key, &format!("/v1/connections/{warm}/token"))?
    };
    let (ceiling_addr, _ceiling) = constant_server(sample)?;
    let mut ceiling_runs = Vec::new();
    let load_before = load_average();
    for _ in 0..3 {
        for backend in &mut backends {
            for instance in &mut backend.instances {
                instance.runs.push(wrk(&instance.addr, &backend.script, options.seconds)?);
            }
        }
        ceiling_runs.push(wrk(&ceiling_addr, &backends[0].script, options.seconds)?);
    }
    let (ceiling_rps, ceiling_p50, ceiling_p99) = summary(&ceiling_runs);
    println!(
        "  GET /v1/connections/{{id}}/token, cached, random connection of the last {} read, {} in the store, wrk -t1 -c32 -d{}s against one hub at a time, median of 3 (alternating; load {load_before} before, {} after):",
        n.min(WARM_SET),
        n,
        options.seconds,
        load_average()
    );
    for backend in &backends {
        for instance in &backend.instances {
            let (rps, p50, p99) = summary(&instance.runs);
            println!(
                "    keyway serve, {:<10} {}  {rps:>9.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  ({:.2} of the ceiling)",
                backend.name,
                instance.label,
                rps / ceiling_rps
            );
            // Every answer above left an audit record, written in batches awaited by the reads.
            match audit_batching(&instance.addr, &backend.seeded.key) {
                Ok((records, batches)) => println!(
                    "      audit: {records:.0} read records in {batches:.0} statements ({:.1} a statement)",
                    records / batches.max(1.0)
                ),
                Err(e) => println!("      audit: not measured: {e}"),
            }
        }
    }
    println!(
        "    constant handler:              {ceiling_rps:>9.0} req/s  p50 {ceiling_p50:.2} ms  p99 {ceiling_p99:.2} ms"
    );
    for (i, c) in ceiling_runs.iter().enumerate() {
        let each: Vec<String> = backends
            .iter()
            .flat_map(|b| b.instances.iter().map(move |h| format!("{} {} {:.0}", b.name, h.label, h.runs[i].rps)))
            .collect();
        println!("      run {}: {}, ceiling {:.0} req/s", i + 1, each.join(", "), c.rps);
    }
    if let Some(pg) = backends.iter().find(|b| b.instances.iter().filter(|h| !h.unrecorded).count() > 1) {
        // Both PostgreSQL hubs loaded at once: two wrk processes sharing the CPUs with them.
        let hubs: Vec<&Instance> = pg.instances.iter().filter(|h| !h.unrecorded).collect();
        let children: Vec<Child> =
            hubs.iter().map(|h| wrk_start(&h.addr, &pg.script, options.seconds)).collect::<Result<_, _>>()?;
        let loads: Vec<Load> = children.into_iter().map(wrk_finish).collect::<Result<_, _>>()?;
        let each: Vec<String> = hubs
            .iter()
            .zip(&loads)
            .map(|(h, l)| format!("{} {:.0} req/s p50 {:.2} ms p99 {:.2} ms", h.label, l.rps, l.p50_ms, l.p99_ms))
            .collect();
        println!(
            "    PostgreSQL, both hubs at once (a wrk -c32 each): {:.0} req/s in all; {}",
            loads.iter().map(|l| l.rps).sum::<f64>(),
            each.join("; ")
        );
    }
    for backend in &mut backends {
        for instance in backend.instances.drain(..) {
            drop(instance.process);
        }
    }

    // The background refresher.
    println!(
        "  background refresher (claim query: 200 rows, over all {n} rows due; sweep: {} more due, testkit on loopback):",
        options.sweep
    );
    for backend in &backends {
        match rt.block_on(claim_query(&backend.seeded.store)) {
            Ok(times) => println!(
                "    {:<10} claim query, 200 of {n} due: median {:.0} ms (runs: {})",
                backend.name,
                median(times.clone()),
                times.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>().join(", ")
            ),
            Err(e) => println!("    {}: claim query not measured: {e}", backend.name),
        }
        match sweep(&bench, backend, options.sweep, options.sweep_cache) {
            Ok(report) => println!("    {:<10} {report}", backend.name),
            Err(e) => println!("    {}: sweep not measured: {e}", backend.name),
        }
    }
    drop(backends);
    println!("  the hub's refresh pass in process (as before), 1,000 due at once, against keyway-testkit:");
    let mut dbs = vec![("SQLite", format!("sqlite://{}", work.join("refresher.db").display()))];
    if let Some(admin) = &admin {
        dbs.push(("PostgreSQL", fresh_database(admin, "kw_refresher")?));
    }
    for (name, db) in dbs {
        match refresher(&work, &db, &keys, 1000) {
            Ok((n, elapsed)) => println!(
                "    {name:<10} {n} refreshed in {:.2} s: {:.0} connections/s (each: lease, refresh, introspection for expiry, compare-and-swap write)",
                elapsed.as_secs_f64(),
                n as f64 / elapsed.as_secs_f64()
            ),
            Err(e) => println!("    {name}: not measured: {e}"),
        }
    }

    // Start time.
    let bundled_profiles = root.join("profiles");
    let fresh = |tag: &str| format!("sqlite://{}", work.join(format!("start-{tag}.db")).display());
    let mut bundled = Vec::new();
    for i in 0..5 {
        let (_p, _, t) = start_keyway(&keyway, &bundled_profiles, &fresh(&format!("b{i}")), &keys, &[])?;
        bundled.push(t.as_secs_f64() * 1000.0);
    }
    println!("  start, spawn to listening (fresh SQLite database, migrations included), median of 5:");
    println!("    bundled profiles (3):   {:.1} ms", median(bundled));
    match super::bench::prepare_catalogue() {
        Ok(catalogue) => {
            let mut times = Vec::new();
            for i in 0..5 {
                let (_p, _, t) = start_keyway(&keyway, &catalogue.dir, &fresh(&format!("c{i}")), &keys, &[])?;
                times.push(t.as_secs_f64() * 1000.0);
            }
            println!(
                "    catalogue ({} files, {} profiles): {:.1} ms",
                catalogue.total_files,
                catalogue.profiles,
                median(times)
            );
        }
        Err(e) => println!("    catalogue: not measured: {e}"),
    }
    println!("  run took {:.0} s; load {} at the end", run_started.elapsed().as_secs_f64(), load_average());
    Ok(())
}

/// The refresher's claim statement over every row, as if all were due (expiring before 40
/// days from now): five claims of 200, each lease ending at once so the next claim sees the
/// same rows due. Milliseconds each.
async fn claim_query(store: &SqlStore) -> Result<Vec<f64>, String> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let now = keyway_runtime::Clock::now(&keyway_runtime::SystemClock) as i64;
        let started = Instant::now();
        let claimed = store
            .claim_due("bench-claim-probe", now, now - 1, now + 40 * 24 * 3600, 0, 200)
            .await
            .map_err(|e| e.to_string())?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if claimed.len() != 200 {
            return Err(format!("the claim took {} rows, not 200", claimed.len()));
        }
    }
    Ok(times)
}

/// Seeds `s` connections with tokens from the test provider, expired, beside the backend's
/// rows; starts `keyway serve --refresh-every 1` and times it until the provider has
/// answered `s` refresh grants, sampling its resident set.
fn sweep(bench: &Bench<'_>, backend: &Backend, s: usize, cache: Option<u64>) -> Result<String, String> {
    let Bench { rt, provider, keyway, profiles, keys, .. } = *bench;
    let seeded = &backend.seeded;
    let total = seeded.ids.len() + s;
    let now = keyway_runtime::Clock::now(&keyway_runtime::SystemClock) as i64;
    let hour_ago_ms = unix_ms().saturating_sub(3_600_000);
    rt.block_on(insert_bulk(seeded, 0..s, |i| {
        let issued = provider.issue_tokens(&format!("sweep-{}-{i}@example.com", backend.name), "api refresh_token");
        let text = |k: &str| issued[k].as_str().map(str::to_owned).ok_or_else(|| format!("testkit gave no {k}"));
        Ok(RowTokens {
            access: text("access_token")?,
            refresh: text("refresh_token")?,
            expires_at: now - 60,
            obtained_at_ms: hour_ago_ms,
        })
    }))?;
    if backend.db.starts_with("postgres") {
        psql(&backend.db, "ANALYZE")?;
    }
    let before = provider.counts().grant("refresh_token");
    let cache_flag = cache.map(|c| c.to_string());
    let mut flags = vec!["--refresh-every", "1"];
    if let Some(c) = &cache_flag {
        flags.extend(["--cache-connections", c.as_str()]);
    }
    let (process, _addr, _) = start_keyway(keyway, profiles, &backend.db, keys, &flags)?;
    let started = Instant::now();
    let pid = process.0.id();
    let first_kib = resident_kib(pid)?;
    let mut peak_kib = first_kib;
    // The resident set as each quarter of the sweep is done: flat past the cache bound.
    let mut quarters: Vec<String> = Vec::new();
    let (mut last, mut last_change) = (0u64, Instant::now());
    loop {
        let done = provider.counts().grant("refresh_token") - before;
        let rss = resident_kib(pid)?;
        peak_kib = peak_kib.max(rss);
        while quarters.len() < 3 && done * 4 >= (quarters.len() as u64 + 1) * s as u64 {
            quarters.push(format!("{:.1}", mib(rss)));
        }
        if done >= s as u64 {
            break;
        }
        if done != last {
            (last, last_change) = (done, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(60) {
            return Err(format!("stalled at {done} of {s} refreshes"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    // The last save may follow its refresh grant by a moment.
    std::thread::sleep(Duration::from_millis(500));
    let end_kib = resident_kib(pid)?;
    quarters.push(format!("{:.1}", mib(end_kib)));
    drop(process);
    let counts = rt.block_on(seeded.store.connection_counts()).map_err(|e| e.to_string())?;
    let states: Vec<String> = counts.iter().map(|(state, n)| format!("{state} {n}")).collect();
    Ok(format!(
        "sweep of {s} due among {total} rows by `keyway serve --refresh-every 1{}`: {:.1} s ({:.0}/s, {} passes of at most 200), resident {:.1} MiB at start, {} MiB at 1/4, 1/2, 3/4 and the end, {:.1} MiB peak; states after: {}",
        cache_flag.as_ref().map_or(String::new(), |c| format!(" --cache-connections {c}")),
        took.as_secs_f64(),
        s as f64 / took.as_secs_f64(),
        s.div_ceil(200),
        mib(first_kib),
        quarters.join(" / "),
        mib(peak_kib.max(end_kib)),
        states.join(", ")
    ))
}

/// Seeds `n` connections with tokens from the test provider, lets them all fall due, and times
/// the background refresher's passes until none is due: (refreshed, time).
fn refresher(work: &Path, db: &str, keys: &Path, n: usize) -> Result<(usize, Duration), String> {
    use keyway_server::resources::{EndUser, ImportedTokens, NewConnection};
    let runtime = runtime()?;
    runtime.block_on(async {
        let provider = keyway_testkit::TestProvider::start(keyway_testkit::ProviderConfig {
            rotate_refresh_tokens: true,
            approvals_per_user: 0,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        let profiles = work.join("refresher-profiles");
        keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).map_err(|e| e.to_string())?;
        let store = keyway_server::open_store(db, false).await.map_err(|e| e.to_string())?;
        let keyring = Arc::new(keyway_server::read_key_file(keys).map_err(|e| e.to_string())?);
        let clock = Arc::new(keyway_runtime::ManualClock::default());
        let hub = bench_hub(&profiles, store, keyring, clock.clone())?;
        let integration = hub
            .create_integration(&keyway_server::hub::Caller::operator(), testkit_integration())
            .await
            .map_err(|e| e.detail().to_owned())?;
        for i in 0..n {
            let user = format!("user-{i}@example.com");
            let issued = provider.issue_tokens(&user, "api refresh_token");
            let text = |k: &str| issued[k].as_str().unwrap_or_default().to_owned();
            let mut fields = serde_json::Map::new();
            fields.insert("instance_url".to_owned(), serde_json::Value::from(provider.base_url()));
            hub.import_connection(
                &keyway_server::hub::Caller::operator(),
                NewConnection {
                    integration_id: integration.id.clone(),
                    end_user: EndUser { id: user, email: None, display_name: None },
                    parameters: Default::default(),
                    fields: None,
                    tokens: Some(ImportedTokens {
                        access_token: text("access_token").into(),
                        refresh_token: Some(text("refresh_token").into()),
                        token_type: None,
                        expires_in: None,
                        scope: None,
                        fields,
                    }),
                },
            )
            .await
            .map_err(|e| e.detail().to_owned())?;
        }
        let later = Duration::from_secs(3 * 3600);
        clock.advance(later);
        provider.advance_clock(later);
        let started = Instant::now();
        let mut refreshed = 0;
        loop {
            let (done, failed) = hub.refresh_due().await.map_err(|e| e.detail().to_owned())?;
            if failed > 0 {
                return Err(format!("{failed} refreshes failed"));
            }
            if done == 0 {
                break;
            }
            refreshed += done;
        }
        Ok((refreshed, started.elapsed()))
    })
}

/// The hub's audit counters: (read records written in batches, statements).
fn audit_batching(addr: &str, key: &str) -> Result<(f64, f64), String> {
    let metrics = sample_body(addr, key, "/metrics")?;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
            .ok_or_else(|| format!("no {name} in /metrics"))
    };
    Ok((value("keyway_audit_read_records_total ")?, value("keyway_audit_batches_total ")?))
}

fn sample_body(addr: &str, key: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).ok_or_else(|| "no body".to_owned())
}
