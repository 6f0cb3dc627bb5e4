//! `cargo xtask bench serve`: the connect hub under load.
//!
//! 1. Seeds N connections (default 10,000) through the hub's own import path into a fresh
//!    SQLite store, with tokens valid for a month (no provider is called).
//! 2. Starts the release `keyway serve` on that store and reads its resident set; reads every
//!    connection's token once (each is then cached); reads the resident set again: the
//!    memory the cached connections hold.
//! 3. Loads `GET /v1/connections/{id}/token` (a random connection per request, API key
//!    checked) with wrk in a second process, beside an axum handler that answers a constant
//!    of the same size on the same runtime settings (the ceiling), alternating, 3 runs each.
//! 4. Times `keyway serve` from spawn to its listening line with the 1,015-profile catalogue
//!    (the startup bench's set) and with the bundled profiles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const HELP: &str = "\
usage: cargo xtask bench serve [--connections N] [--seconds S]

Seeds N connections (default 10000) into a fresh store under target/bench/serve, starts the
release `keyway serve`, and loads GET /v1/connections/{id}/token with wrk (Debian package
`wrk`: scripts/bench-deps.sh installs it) beside a constant axum handler; reports requests per
second, p50 and p99, the memory the cached connections hold, and the start time with the
1,015-profile catalogue (fetched like `cargo xtask bench startup`).";

struct Options {
    connections: usize,
    seconds: u64,
}

pub fn serve(args: &[&str]) -> ExitCode {
    let mut options = Options { connections: 10_000, seconds: 10 };
    let mut rest = args;
    while let [flag, value, tail @ ..] = rest {
        match (*flag, value.parse::<u64>()) {
            ("--connections", Ok(n)) if n > 0 => options.connections = n as usize,
            ("--seconds", Ok(n)) if n > 0 => options.seconds = n,
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

fn start_keyway(keyway: &Path, profiles: &Path, db: &str, keys: &Path) -> Result<(Process, String, Duration), String> {
    let started = Instant::now();
    let mut child = Command::new(keyway)
        .arg("--profiles")
        .arg(profiles)
        .args(["serve", "--allow-private-network", "--listen", "127.0.0.1:0", "--db", db, "--keys-file"])
        .arg(keys)
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

/// One keep-alive connection reading each path once; every answer must be 200.
fn read_all(addr: &str, key: &str, paths: &[String]) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    for path in paths {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n");
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut status = String::new();
        reader.read_line(&mut status).map_err(|e| format!("{path}: {e}"))?;
        if !status.contains(" 200 ") {
            return Err(format!("{path}: {}", status.trim()));
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).map_err(|e| e.to_string())?;
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(addr: &str, script: &Path, seconds: u64) -> Result<Load, String> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .map_err(|e| format!("cannot run wrk ({e}): scripts/bench-deps.sh installs it"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("Non-2xx") {
        return Err(format!("wrk failed or saw errors:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
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

/// A throwaway PostgreSQL (scripts/pg.sh) and a fresh database on it.
fn postgres(root: &Path) -> Result<String, String> {
    let out = Command::new(root.join("scripts/pg.sh")).arg("start").output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("scripts/pg.sh start: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let exports = String::from_utf8_lossy(&out.stdout).into_owned();
    let admin = exports
        .lines()
        .find_map(|l| l.strip_prefix("export KEYWAY_TEST_POSTGRES_URL="))
        .ok_or("scripts/pg.sh printed no URL")?
        .to_owned();
    for sql in ["DROP DATABASE IF EXISTS kw_bench", "CREATE DATABASE kw_bench"] {
        let status = Command::new("psql").args([admin.as_str(), "-qc", sql]).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("psql: {sql} failed"));
        }
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    Ok(format!("{base}/kw_bench"))
}

/// A seeded, warmed `keyway serve` on one database.
struct Backend {
    name: &'static str,
    /// Kept for its lifetime: the server stops when the backend is dropped.
    _process: Process,
    addr: String,
    script: PathBuf,
    /// One token answer, for the ceiling's body.
    sample: String,
    runs: Vec<Load>,
}

fn prepare(
    name: &'static str,
    keyway: &Path,
    profiles: &Path,
    db: &str,
    keys: &Path,
    work: &Path,
    n: usize,
) -> Result<Backend, String> {
    let (key, ids, seeding) = seed(profiles, db, keys, n)?;
    println!(
        "  {name}: seeded {} connections through the hub's import path in {:.1} s ({:.0}/s; each: encrypt, insert, save, committed)",
        ids.len(),
        seeding.as_secs_f64(),
        ids.len() as f64 / seeding.as_secs_f64()
    );
    let (process, addr, _) = start_keyway(keyway, profiles, db, keys)?;
    let pid = process.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let before = resident_kib(pid)?;
    let paths: Vec<String> = ids.iter().map(|id| format!("/v1/connections/{id}/token")).collect();
    let warmed = Instant::now();
    read_all(&addr, &key, &paths)?;
    let warm_time = warmed.elapsed();
    let after = resident_kib(pid)?;
    println!(
        "  {name}: memory {:.1} MiB resident before the first token read, {:.1} MiB with all {} cached: {:.1} MiB per 10,000 connections",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        ids.len(),
        (after.saturating_sub(before)) as f64 / 1024.0 * 10_000.0 / ids.len() as f64
    );
    println!(
        "  {name}: first read of each token (opens the connection: row read, decrypt, connector): {:.0} µs each, one client",
        warm_time.as_secs_f64() * 1e6 / ids.len() as f64
    );
    let ids_file = work.join(format!("ids-{name}.txt"));
    std::fs::write(&ids_file, ids.join("\n")).map_err(|e| e.to_string())?;
    let script = work.join(format!("token-{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "local ids = {{}}\nfor line in io.lines(\"{}\") do ids[#ids + 1] = line end\nmath.randomseed(42)\n\
             wrk.headers[\"Authorization\"] = \"Bearer {key}\"\n\
             request = function()\n  return wrk.format(\"GET\", \"/v1/connections/\" .. ids[math.random(#ids)] .. \"/token\")\nend\n",
            ids_file.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let sample = sample_body(&addr, &key, &paths[0])?;
    Ok(Backend { name, _process: process, addr, script, sample, runs: Vec::new() })
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
    let profiles = root.join("profiles");

    println!("keyway serve benchmark ({} logical CPU(s))", super::bench::cpus());
    let sqlite = format!("sqlite://{}", work.join("hub.db").display());
    let mut backends = vec![prepare("SQLite", &keyway, &profiles, &sqlite, &keys, &work, options.connections)?];
    match postgres(&root) {
        Ok(url) => backends.push(prepare("PostgreSQL", &keyway, &profiles, &url, &keys, &work, options.connections)?),
        Err(e) => println!("  PostgreSQL: not measured: {e}"),
    }
    // The ceiling answers a body as long as a token answer.
    let (ceiling_addr, _ceiling) = constant_server(backends[0].sample.clone())?;
    let mut ceiling_runs = Vec::new();
    for _ in 0..3 {
        for backend in &mut backends {
            backend.runs.push(wrk(&backend.addr, &backend.script, options.seconds)?);
        }
        ceiling_runs.push(wrk(&ceiling_addr, &backends[0].script, options.seconds)?);
    }
    let (ceiling_rps, ceiling_p50, ceiling_p99) = summary(&ceiling_runs);
    println!(
        "  GET /v1/connections/{{id}}/token, cached, random connection of {}, wrk -t1 -c32 -d{}s, median of 3 (alternating):",
        options.connections, options.seconds
    );
    for backend in &backends {
        let (rps, p50, p99) = summary(&backend.runs);
        println!(
            "    keyway serve, {:<10}  {rps:>9.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms  ({:.2} of the ceiling)",
            backend.name,
            rps / ceiling_rps
        );
    }
    println!("    constant handler:        {ceiling_rps:>9.0} req/s  p50 {ceiling_p50:.2} ms  p99 {ceiling_p99:.2} ms");
    for (i, c) in ceiling_runs.iter().enumerate() {
        let each: Vec<String> = backends.iter().map(|b| format!("{} {:.0}", b.name, b.runs[i].rps)).collect();
        println!("      run {}: {}, ceiling {:.0} req/s", i + 1, each.join(", "), c.rps);
    }
    drop(backends);

    // The background refresher against the test provider.
    println!(
        "  background refresher, 1,000 connections due at once, one instance, against keyway-testkit on loopback:"
    );
    let mut dbs = vec![("SQLite", format!("sqlite://{}", work.join("refresher.db").display()))];
    if let Ok(url) = postgres(&root) {
        dbs.push(("PostgreSQL", url));
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
    let fresh = |tag: &str| format!("sqlite://{}", work.join(format!("start-{tag}.db")).display());
    let mut bundled = Vec::new();
    for i in 0..5 {
        let (_p, _, t) = start_keyway(&keyway, &profiles, &fresh(&format!("b{i}")), &keys)?;
        bundled.push(t.as_secs_f64() * 1000.0);
    }
    println!("  start, spawn to listening (fresh SQLite database, migrations included), median of 5:");
    println!("    bundled profiles (3):   {:.1} ms", median(bundled));
    match super::bench::prepare_catalogue() {
        Ok(catalogue) => {
            let mut times = Vec::new();
            for i in 0..5 {
                let (_p, _, t) = start_keyway(&keyway, &catalogue.dir, &fresh(&format!("c{i}")), &keys)?;
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
    Ok(())
}

/// Seeds `n` connections with tokens from the test provider, lets them all fall due, and times
/// the background refresher's passes until none is due: (refreshed, time).
fn refresher(work: &Path, db: &str, keys: &Path, n: usize) -> Result<(usize, Duration), String> {
    use keyway_server::resources::{EndUser, ImportedTokens, NewConnection, NewIntegration};
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
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
        let registry =
            keyway_runtime::Registry::load(&profiles).map_err(|e| format!("{} profile error(s)", e.error_count()))?;
        let store = keyway_server::open_store(db, false).await.map_err(|e| e.to_string())?;
        let keyring = Arc::new(keyway_server::read_key_file(keys).map_err(|e| e.to_string())?);
        let clock = Arc::new(keyway_runtime::ManualClock::default());
        let hub = keyway_server::hub::Hub::new(
            registry,
            store,
            keyring,
            clock.clone(),
            keyway_server::hub::HubOptions {
                public_url: "https://connect.example.com".to_owned(),
                http: Default::default(),
                refresh: Default::default(),
                webhook: None,
                give_up_after: keyway_server::hub::GIVE_UP_AFTER,
                cache: Default::default(),
            },
        )
        .map_err(|e| e.to_string())?;
        let integration = hub
            .create_integration(NewIntegration {
                profile: "salesforce-local".to_owned(),
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
            })
            .await
            .map_err(|e| e.detail().to_owned())?;
        for i in 0..n {
            let user = format!("user-{i}@example.com");
            let issued = provider.issue_tokens(&user, "api refresh_token");
            let text = |k: &str| issued[k].as_str().unwrap_or_default().to_owned();
            let mut fields = serde_json::Map::new();
            fields.insert("instance_url".to_owned(), serde_json::Value::from(provider.base_url()));
            hub.import_connection(NewConnection {
                integration_id: integration.id.clone(),
                end_user: EndUser { id: user, email: None, display_name: None },
                parameters: Default::default(),
                tokens: ImportedTokens {
                    access_token: text("access_token").into(),
                    refresh_token: Some(text("refresh_token").into()),
                    token_type: None,
                    expires_in: None,
                    scope: None,
                    fields,
                },
            })
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

fn sample_body(addr: &str, key: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).ok_or_else(|| "no body".to_owned())
}

/// Seeds the store through the hub (integration, then imports); returns the API key, the
/// connection ids and the time the imports took.
fn seed(profiles: &Path, db: &str, keys: &Path, n: usize) -> Result<(String, Vec<String>, Duration), String> {
    use keyway_server::resources::{EndUser, ImportedTokens, NewConnection, NewIntegration};
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let registry =
            keyway_runtime::Registry::load(profiles).map_err(|e| format!("{} profile error(s)", e.error_count()))?;
        let store = keyway_server::open_store(db, false).await.map_err(|e| e.to_string())?;
        let keyring = Arc::new(keyway_server::read_key_file(keys).map_err(|e| e.to_string())?);
        let hub = keyway_server::hub::Hub::new(
            registry,
            Arc::clone(&store),
            keyring,
            Arc::new(keyway_runtime::SystemClock),
            keyway_server::hub::HubOptions {
                public_url: "https://connect.example.com".to_owned(),
                http: Default::default(),
                refresh: Default::default(),
                webhook: None,
                give_up_after: keyway_server::hub::GIVE_UP_AFTER,
                cache: Default::default(),
            },
        )
        .map_err(|e| e.to_string())?;
        let key =
            keyway_server::hub::Hub::create_api_key(store.as_ref(), "bench", 0).await.map_err(|e| e.to_string())?;
        let integration = hub
            .create_integration(NewIntegration {
                profile: "salesforce".to_owned(),
                name: None,
                client_id: "3MVG9bench".to_owned(),
                client_secret: Some("bench-secret".to_owned().into()),
                staged_client_secret: None,
                environment: None,
                actions: vec!["list_accounts".to_owned()],
                custom_scopes: None,
                parameters: Default::default(),
                pkce: None,
                refresh_sends_secret: None,
            })
            .await
            .map_err(|e| e.detail().to_owned())?;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let mut fields = serde_json::Map::new();
            fields.insert("instance_url".to_owned(), serde_json::Value::from("https://acme.my.salesforce.com"));
            let connection = hub
                .import_connection(NewConnection {
                    integration_id: integration.id.clone(),
                    end_user: EndUser { id: format!("user-{i}"), email: None, display_name: None },
                    parameters: Default::default(),
                    tokens: ImportedTokens {
                        access_token: format!("00Dbench!{i:08}{}", "x".repeat(96)).into(),
                        refresh_token: Some(format!("5Aep861bench{i:08}{}", "y".repeat(70)).into()),
                        token_type: Some("Bearer".to_owned()),
                        expires_in: Some(30 * 24 * 3600),
                        scope: Some("api refresh_token".to_owned()),
                        fields,
                    },
                })
                .await
                .map_err(|e| e.detail().to_owned())?;
            ids.push(connection.id);
        }
        Ok((key, ids, started.elapsed()))
    })
}
