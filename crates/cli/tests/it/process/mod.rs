//! `keyway serve` as a process, for the tests that run it that way: a scratch directory, the
//! server (killed and reaped on drop, its log kept in the scratch directory), API keys, and
//! the HTTP API as a platform calls it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory under `target/tmp`: removed when the test passes, kept (and named) when it
/// fails, for the server logs in it.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = root().join(format!("target/tmp/{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite database in this directory.
    pub fn sqlite(&self) -> String {
        format!("sqlite://{}", self.0.join("hub.db").display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the profiles, database and server logs are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `keyway serve` process: killed (and reaped) when dropped, on every path.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `keyway --profiles PROFILES serve --listen 127.0.0.1:0 --db DB EXTRA...`, its
    /// stderr in `log`, and waits for its "listening on" line.
    pub fn start(profiles: &Path, db: &str, extra: &[&str], log: &Path) -> Server {
        let level = std::env::var("KEYWAY_LOG").unwrap_or_else(|_| "info".to_owned());
        Server::start_logging(profiles, db, extra, log, &level)
    }

    /// [`Server::start`] with `KEYWAY_LOG` set to `level` (`trace`: everything every crate logs).
    pub fn start_logging(profiles: &Path, db: &str, extra: &[&str], log: &Path, level: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyway"))
            .arg("--profiles")
            .arg(profiles)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            // keyway-testkit and the webhook receivers listen on loopback.
            .arg("--allow-private-network")
            .args(extra)
            .env_remove("KEYWAY_PROFILES")
            .env_remove("KEYWAY_KEYS_FILE")
            .env_remove("KEYWAY_PUBLIC_URL")
            .env("KEYWAY_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("server log file"))
            .spawn()
            .expect("keyway serve starts");
        let stdout = child.stdout.take().expect("stdout");
        // The guard exists before the wait, so a timeout still kills the process.
        let mut server = Server { child, url: String::new(), log: log.to_owned() };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("keyway serve: listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let listening = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            keyway_testkit::wait_until_blocking("keyway serve's \"listening on\" line", Duration::from_secs(60), || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("keyway serve ended ({status}) before it listened");
                }
                rx.try_recv().ok()
            })
        }));
        match listening {
            Ok(url) => server.url = url,
            Err(_) => panic!("keyway serve did not start; its log:\n{}", server.log_text()),
        }
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill keyway serve");
        self.child.wait().expect("reap keyway serve");
    }
}

/// A new management API key in `db` (`keyway keys api create`).
pub fn api_key(db: &str) -> String {
    api_key_with(db, &[])
}

/// A new API key on `db` with these `keyway keys api create` arguments (a name, scopes).
pub fn api_key_with(db: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["keys", "api", "create", "--db", db])
        .args(args)
        .output()
        .expect("keys api create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new key file in `dir` (`keyway keys generate --file`).
pub fn key_file(dir: &Path) -> PathBuf {
    let file = dir.join("keyway.keys");
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["keys", "generate", "--file"])
        .arg(&file)
        .output()
        .expect("keys generate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    file
}

/// A fresh PostgreSQL database on the cluster of `scripts/pg.sh` (README's test command starts
/// it); fails, never skips, without it.
pub async fn postgres_database(tag: &str) -> String {
    let admin = std::env::var("KEYWAY_TEST_POSTGRES_URL").expect(
        "KEYWAY_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh (it starts PostgreSQL with scripts/pg.sh)",
    );
    let name = format!("kw_{tag}_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .expect("psql runs (Debian's postgresql-client)");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// Creates the tests' integration: `salesforce-local` against keyway-testkit, its id.
pub async fn create_integration(api: &Api) -> String {
    let body = serde_json::json!({"profile": "salesforce-local", "client_id": "3MVG9testkit",
        "client_secret": "testkit-secret", "environment": "local", "actions": ["list_accounts"]});
    api.expect(reqwest::Method::POST, "/v1/integrations", Some(body), 201).await["id"]
        .as_str()
        .expect("an integration id")
        .to_owned()
}

/// Imports the tokens the provider issues to `user` as a connection of `integration`, its id.
pub async fn import_connection(
    api: &Api,
    provider: &keyway_testkit::TestProvider,
    integration: &str,
    user: &str,
) -> String {
    let issued = provider.issue_tokens(user, "api refresh_token");
    let body = serde_json::json!({"integration_id": integration, "end_user": {"id": user},
        "tokens": {"access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
                   "fields": {"instance_url": provider.base_url()}}});
    api.expect(reqwest::Method::POST, "/v1/connections", Some(body), 201).await["id"]
        .as_str()
        .expect("a connection id")
        .to_owned()
}

/// The HTTP API, as a platform calls it.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api { http: reqwest::Client::new(), base: base.to_owned(), key: key.to_owned() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("response body");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn expect(&self, method: reqwest::Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {value}");
        value
    }

    pub async fn token(&self, connection: &str) -> Value {
        self.expect(reqwest::Method::GET, &format!("/v1/connections/{connection}/token"), None, 200).await
    }
}

/// Links `user`'s account through the connect page at `api`'s hub, as a browser without
/// JavaScript would (cookies, no redirects followed): a connect session (a reconnect of
/// `connection` when given), its page, the form, the provider's consent, the callback. The
/// connection's id.
pub async fn link_through_connect_page(
    api: &Api,
    provider: &keyway_testkit::TestProvider,
    integration: &str,
    user: &str,
    connection: Option<&str>,
) -> String {
    let mut body = serde_json::json!({"end_user": {"id": user}, "return_url": "https://app.example.com/done",
        "allowed_origins": ["https://app.example.com"]});
    if let Some(id) = connection {
        body["connection_id"] = Value::String(id.to_owned());
    }
    let session = api.expect(reqwest::Method::POST, "/v1/connect/sessions", Some(body), 201).await;
    let connect_url = session["connect_url"].as_str().expect("connect_url");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser");
    let opened = browser.get(connect_url).send().await.expect("open the connect link");
    assert_eq!(opened.status().as_u16(), 303, "the token is traded for a cookie");
    let page = browser.get(format!("{}/connect", api.base)).send().await.expect("connect page");
    assert_eq!(page.status().as_u16(), 200);
    let no_fields: &[(&str, &str)] = &[];
    let submitted =
        browser.post(format!("{}/connect/{integration}", api.base)).form(no_fields).send().await.expect("form");
    assert_eq!(submitted.status().as_u16(), 303, "sent to the provider");
    let location = submitted.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
    let callback = provider.browse(&location, user).await.expect("the provider redirects back");
    let done = browser.get(&callback).send().await.expect("callback");
    let status = done.status().as_u16();
    let page = done.text().await.expect("done page");
    assert_eq!(status, 200, "{page}");
    let start = page.find("conn_").expect("a connection id on the done page");
    page[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// A PostgreSQL cluster of the test's own (`scripts/pg.sh` in a scratch directory, on a free
/// loopback port), for a test that restarts it: the shared one stays up for everyone else.
pub struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    pub url: String,
}

impl PrivatePostgres {
    pub fn start(scratch: &Scratch) -> PrivatePostgres {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut pg = PrivatePostgres { dir: scratch.path().join("pg"), port, url: String::new() };
        let out = pg.script("start");
        let url = out.lines().find_map(|l| l.strip_prefix("export KEYWAY_TEST_POSTGRES_URL=")).expect("its URL");
        pg.url = url.trim().to_owned();
        pg
    }

    /// Stops the server (fast: sessions are cut) and starts it again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server (fast: sessions are cut).
    pub fn stop(&self) {
        self.script("stop");
    }

    /// Starts a stopped server again, on the same port.
    pub fn start_again(&self) {
        self.script("start");
    }

    fn script(&self, verb: &str) -> String {
        let out = Command::new(root().join("scripts/pg.sh"))
            .arg(verb)
            .env("KEYWAY_PG_DIR", &self.dir)
            .env("KEYWAY_PG_PORT", self.port.to_string())
            .output()
            .expect("scripts/pg.sh runs");
        assert!(out.status.success(), "pg.sh {verb}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        } else {
            // A panic inside a panic aborts: stop without asserting.
            let _ = Command::new(root().join("scripts/pg.sh"))
                .arg("stop")
                .env("KEYWAY_PG_DIR", &self.dir)
                .env("KEYWAY_PG_PORT", self.port.to_string())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
