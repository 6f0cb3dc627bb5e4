//! Shared set-up: keyway-testkit (a Salesforce-like provider) and a hub serving over loopback
//! HTTP, with a browser (a cookie-keeping client that does not follow redirects) and the
//! provider's scripted user in between.
#![allow(dead_code)]

use keyway_runtime::{Destinations, HttpOptions, ManualClock, RefreshPolicy, Registry};
use keyway_server::crypto::Keyring;
use keyway_server::http::{AppState, router};
use keyway_server::hub::{CacheOptions, Hub, HubOptions, WebhookOptions};
use keyway_server::store::{SqlStore, Store};
use keyway_testkit::{ProviderConfig, TestProvider};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use keyway_testkit::scratch::TempDir;

pub const CLIENT_ID: &str = "3MVG9testkit";
pub const CLIENT_SECRET: &str = "testkit-secret";
pub const USER: &str = "ada@example.com";

/// A provider, a hub over SQLite in a temporary directory, and an API key.
pub struct Harness {
    pub provider: TestProvider,
    pub dir: TempDir,
    pub db: String,
    pub webhook: Option<WebhookOptions>,
    pub keys_text: String,
    pub clock: Arc<ManualClock>,
    pub hub: Arc<Hub>,
    pub base: String,
    pub key: String,
    pub api: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The backend the suite runs on: SQLite, or PostgreSQL when `KEYWAY_TEST_BACKEND=postgres`
/// (README's test command runs the suite both ways; the server comes from scripts/pg.sh).
pub fn on_postgres() -> bool {
    std::env::var("KEYWAY_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A database for one harness: a file in its directory, or a new PostgreSQL database.
pub async fn new_database(dir: &Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("hub.db").display());
    }
    let admin = std::env::var("KEYWAY_TEST_POSTGRES_URL")
        .expect("KEYWAY_TEST_POSTGRES_URL is not set: run the suite through scripts/test.sh (it starts PostgreSQL with scripts/pg.sh)");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("kw_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    sqlx::any::install_default_drivers();
    let mut admin_conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("PostgreSQL answers");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&mut admin_conn)
        .await
        .expect("drop");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin_conn)
        .await
        .expect("create");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

async fn serve(
    db: &str,
    dir: &Path,
    keys_text: &str,
    clock: Arc<ManualClock>,
    webhook: Option<WebhookOptions>,
    cache: CacheOptions,
    destinations: Destinations,
) -> (Arc<Hub>, String, tokio::task::JoinHandle<()>) {
    let registry = Registry::load(dir.join("profiles")).expect("profiles load");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(db).await.expect("store").with_events(webhook.is_some()));
    let keys = Arc::new(Keyring::parse(keys_text).expect("keys"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let options = HubOptions {
        public_url: base.clone(),
        http: HttpOptions { timeout: Duration::from_secs(2), destinations, ..Default::default() },
        refresh: RefreshPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..Default::default()
        },
        webhook,
        give_up_after: keyway_server::hub::GIVE_UP_AFTER,
        cache,
        audit_reads: true,
    };
    let hub = Arc::new(Hub::new(registry, store, keys, clock, options).expect("hub"));
    let app = router(AppState::new(Arc::clone(&hub)));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (hub, base, server)
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(ProviderConfig::default()).await
    }

    pub async fn start_with(config: ProviderConfig) -> Harness {
        Harness::start_with_webhook(config, None).await
    }

    /// With webhook events sent to `webhook`.
    pub async fn start_with_webhook(config: ProviderConfig, webhook: Option<WebhookOptions>) -> Harness {
        let provider = TestProvider::start(config).await.expect("provider");
        let dir = TempDir::new("hub");
        keyway_testkit::profiles::write_profiles(&dir.path().join("profiles"), &provider.host()).expect("profiles");
        let keys_text = Keyring::generate_line();
        let clock = Arc::new(ManualClock::default());
        let db = new_database(dir.path()).await;
        let (hub, base, server) = serve(
            &db,
            dir.path(),
            &keys_text,
            Arc::clone(&clock),
            webhook.clone(),
            CacheOptions::default(),
            Destinations::default(),
        )
        .await;
        let key = Hub::create_api_key(hub.store().as_ref(), "tests", 0).await.expect("api key");
        Harness { provider, dir, db, webhook, keys_text, clock, hub, base, key, api: reqwest::Client::new(), server }
    }

    /// Stops the server and starts a new one over the same database, keys and provider.
    pub async fn restart(&mut self) {
        self.server.abort();
        let (hub, base, server) = serve(
            &self.db,
            self.dir.path(),
            &self.keys_text,
            Arc::clone(&self.clock),
            self.webhook.clone(),
            CacheOptions::default(),
            Destinations::default(),
        )
        .await;
        self.hub = hub;
        self.base = base;
        self.server = server;
    }

    /// Every byte the database keeps on disk: the SQLite files (WAL included), or, on
    /// PostgreSQL, the whole data directory after a checkpoint (tables, WAL, every database
    /// of the cluster).
    pub async fn raw_database(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut dirs = if on_postgres() {
            use sqlx::Row as _;
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.db).await.expect("connect");
            sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await.expect("checkpoint");
            let oid: String =
                sqlx::query("SELECT CAST(oid AS TEXT) AS oid FROM pg_database WHERE datname = current_database()")
                    .fetch_one(&mut conn)
                    .await
                    .expect("oid")
                    .try_get("oid")
                    .expect("oid");
            let data = PathBuf::from(
                std::env::var("KEYWAY_TEST_POSTGRES_DATA").expect("KEYWAY_TEST_POSTGRES_DATA (scripts/pg.sh)"),
            );
            // This database's files, and the write-ahead log every write passes through.
            vec![data.join("base").join(oid), data.join("pg_wal")]
        } else {
            vec![self.dir.path().to_owned()]
        };
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    if on_postgres() {
                        dirs.push(path);
                    }
                } else if on_postgres() || (name.starts_with("hub.db") && !name.ends_with(".keys")) {
                    bytes.extend(std::fs::read(&path).unwrap_or_default());
                }
            }
        }
        bytes
    }

    /// Another instance on the same database, keys and provider (its own process state:
    /// token cache, single-flight locks, lease owner name): its base URL and a guard.
    pub async fn another_instance(&self) -> (String, Instance) {
        self.another_instance_with(CacheOptions::default()).await
    }

    /// Another instance keeping at most what `cache` says in memory.
    pub async fn another_instance_with(&self, cache: CacheOptions) -> (String, Instance) {
        self.instance(cache, Destinations::default()).await
    }

    /// Another instance that reaches only public addresses (`keyway serve` without
    /// `--allow-private-network`).
    pub async fn public_only_instance(&self) -> (String, Instance) {
        self.instance(CacheOptions::default(), Destinations::Public).await
    }

    async fn instance(&self, cache: CacheOptions, destinations: Destinations) -> (String, Instance) {
        let (hub, base, server) = serve(
            &self.db,
            self.dir.path(),
            &self.keys_text,
            Arc::clone(&self.clock),
            self.webhook.clone(),
            cache,
            destinations,
        )
        .await;
        (base, Instance { hub, server })
    }

    /// Delivers every due webhook event.
    pub async fn deliver_all(&self) {
        loop {
            let (delivered, failed) = self.hub.deliver_webhooks().await.expect("deliver");
            assert_eq!(failed, 0, "a delivery failed");
            if delivered == 0 {
                break;
            }
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.api.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key)
    }

    /// Sends a JSON request; the status and the body (JSON, or a string when it is not).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("send")).await
    }

    pub async fn create_integration(&self, extra: Value) -> String {
        let mut body = json!({
            "profile": "salesforce-local",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "environment": "local",
            "actions": ["list_accounts"],
        });
        merge(&mut body, extra);
        let (status, value) = self.call(Method::POST, "/v1/integrations", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        value["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_session(&self, extra: Value) -> Value {
        let mut body = json!({
            "end_user": {"id": "user-1", "email": USER},
            "return_url": "https://app.example.com/connected",
            "allowed_origins": ["https://app.example.com"],
        });
        merge(&mut body, extra);
        let (status, value) = self.call(Method::POST, "/v1/connect/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        value
    }

    /// A session, opened in a new browser, its integration's form sent, the provider's user
    /// `username` consenting: the callback URL the provider redirects to, and the browser.
    pub async fn authorize(&self, session: &Value, integration: &str, username: &str) -> (Browser, String) {
        let browser = Browser::new();
        let page = browser.open(session["connect_url"].as_str().expect("connect_url")).await;
        assert!(page.contains(integration), "{page}");
        let location = browser.submit(&self.base, integration, &[]).await.expect("redirect to the provider");
        let callback = self.provider.browse(&location, username).await.expect("provider redirects back");
        (browser, callback)
    }

    /// The whole link: the done page and the new connection's id.
    pub async fn link(&self, integration: &str) -> String {
        let session = self.create_session(json!({})).await;
        let (browser, callback) = self.authorize(&session, integration, USER).await;
        let (status, page) = browser.get(&callback).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        connection_id_in(&page)
    }

    /// Sends a JSON request to another instance at `base`, with this harness's key.
    pub async fn call_at(&self, base: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.api.request(method, format!("{base}{path}")).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("send")).await
    }

    pub async fn token(&self, connection: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &format!("/v1/connections/{connection}/token"), None).await
    }
}

/// A second hub, stopped on drop.
pub struct Instance {
    pub hub: Arc<Hub>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn connection_id_in(page: &str) -> String {
    let start = page.find("conn_").expect("a connection id on the page");
    page[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

pub fn merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        for (k, v) in e {
            if v.is_null() {
                t.remove(&k);
            } else {
                t.insert(k, v);
            }
        }
    }
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let problem =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default();
    let text = response.text().await.expect("body");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(problem, "application/problem+json", "errors are problem documents: {status} {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A browser: keeps cookies, does not follow redirects.
pub struct Browser {
    pub client: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser { client }
    }

    pub async fn get(&self, url: &str) -> (StatusCode, String) {
        let response = self.client.get(url).send().await.expect("get");
        (response.status(), response.text().await.expect("body"))
    }

    /// Opens a connect link: the token is traded for a cookie, then the page is shown.
    pub async fn open(&self, connect_url: &str) -> String {
        let response = self.client.get(connect_url).send().await.expect("open");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the token is traded for a cookie");
        let base = connect_url.split("/connect").next().expect("base");
        let (status, page) = self.get(&format!("{base}/connect")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }

    /// Sends an integration's form: the provider's URL, or the status and page of a refusal.
    pub async fn submit(
        &self,
        base: &str,
        integration: &str,
        form: &[(&str, &str)],
    ) -> Result<String, (StatusCode, String)> {
        let response =
            self.client.post(format!("{base}/connect/{integration}")).form(form).send().await.expect("submit");
        if response.status() == StatusCode::SEE_OTHER {
            let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("location");
            return Ok(location.to_owned());
        }
        Err((response.status(), response.text().await.expect("body")))
    }
}
