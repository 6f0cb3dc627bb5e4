//! `keyway serve`'s hosted connect page in a real browser, end to end.
//!
//! The test provider runs in-process (with its consent page); `keyway serve` runs as a
//! process; headless Chromium, driven by `tests/browser/connect.mjs` (playwright-core), opens
//! the connect link, continues to the provider, allows access and lands on the done page.
//! Then, through the API: the token the browser's flow got is due at once (the provider says it
//! expires in 0 seconds), so the first read refreshes it (one refresh at the
//! provider, a new token that stays fresh); a second read gives the same token without a
//! refresh, and so does a read after the server is killed and started on the same database and
//! key file (nothing lost); then the connection is deleted (one revocation at the provider).
//! No step depends on how long another took.
//!
//! Needs node, playwright-core in `target/node` and Debian's chromium: `scripts/test-deps.sh`
//! installs them. Without them this test fails; it does not skip. Screenshots land in
//! `target/screenshots/` (`connect.png`, `connect-details.png`, `connect-phone.png`,
//! `consent.png`, `done.png`, `done-phone.png`).

use crate::process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server, root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The provider's access token lifetime: the tokens it issues after the browser run (when it
/// no longer says they expire at once) stay fresh for the rest of the test.
const FRESH: Duration = Duration::from_secs(24 * 3600);
/// The platform's return URL (nothing listens there; the browser script answers it).
const RETURN_URL: &str = "http://127.0.0.1:9/done";

const DEPS_HINT: &str = "run scripts/test-deps.sh to install what the browser test needs";

/// The target directory this test binary was built into.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_keyway"))
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root().join("target"))
}

/// What the browser script needs, or a failure naming `scripts/test-deps.sh`.
struct BrowserDeps {
    node: PathBuf,
    node_dir: PathBuf,
    chromium: PathBuf,
}

fn browser_deps() -> BrowserDeps {
    let node = PathBuf::from(std::env::var_os("KEYWAY_NODE").unwrap_or_else(|| "node".into()));
    let version = Command::new(&node).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "`{}` does not run ({version:?}): install Node.js 20 or later, then {DEPS_HINT}",
        node.display()
    );
    let node_dir = std::env::var_os("KEYWAY_NODE_DIR").map_or_else(|| root().join("target/node"), PathBuf::from);
    let playwright = node_dir.join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "playwright-core is not installed ({} is missing): {DEPS_HINT}",
        playwright.display()
    );
    let chromium = PathBuf::from(std::env::var_os("KEYWAY_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    assert!(chromium.is_file(), "no Chromium at {}: {DEPS_HINT}", chromium.display());
    BrowserDeps { node, node_dir, chromium }
}

fn access_token(view: &Value) -> String {
    view["access_token"].as_str().filter(|t| !t.is_empty()).expect("an access token").to_owned()
}

/// Runs the browser script; returns its JSON report.
async fn drive_browser(deps: BrowserDeps, connect_url: &str, integration: &str, out: &Path, extra: &[String]) -> Value {
    let script = root().join("crates/cli/tests/browser/connect.mjs");
    let mut command = Command::new(&deps.node);
    command
        .arg(&script)
        .args(["--url", connect_url, "--integration", integration, "--user", "ada@example.com"])
        .args(["--timeout-ms", "20000"])
        .arg("--out")
        .arg(out)
        .arg("--chromium")
        .arg(&deps.chromium)
        .args(extra)
        .env("KEYWAY_NODE_DIR", &deps.node_dir)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed ({}):\n{stderr}\n{stdout}", output.status);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("the browser script printed no JSON report ({e}):\n{stdout}"))
}

/// A connect session for `integration` (the end user Ada, returning to [`RETURN_URL`]): its
/// connect link.
async fn connect_url(api: &Api, integration: &str) -> String {
    let session = api
        .expect(
            reqwest::Method::POST,
            "/v1/connect/sessions",
            Some(json!({
                "end_user": {"id": "u1", "email": "ada@example.com"},
                "integrations": [integration],
                "return_url": RETURN_URL,
                "allowed_origins": ["http://127.0.0.1:9"],
            })),
            201,
        )
        .await;
    session["connect_url"].as_str().expect("connect_url").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_page_in_a_browser_then_tokens_survive_refresh_restart_and_revoke() {
    // First, so a machine without the browser fails at once with the fix.
    let deps = browser_deps();

    let provider = TestProvider::start(ProviderConfig {
        consent_page: true,
        access_token_lifetime: FRESH,
        // The browser flow's token is due as it arrives.
        expires_in: Some(0),
        ..ProviderConfig::default()
    })
    .await
    .expect("test provider");
    let scratch = Scratch::new("serve-browser");
    let dir = scratch.path().to_owned();
    keyway_testkit::profiles::write_profiles(&dir.join("profiles"), &provider.host()).expect("profiles");
    let start = |run: u32| {
        // The background refresher is off: the test counts the refreshes it causes.
        Server::start(
            &dir.join("profiles"),
            &scratch.sqlite(),
            &["--dev", "--refresh-every", "0"],
            &dir.join(format!("serve-{run}.log")),
        )
    };

    let server = start(1);
    let key = process::api_key(&scratch.sqlite());
    assert!(key.starts_with("kwk_"), "{key}");
    let mut api = Api {
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client"),
        base: server.url.clone(),
        key,
    };

    let integration = api
        .expect(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(json!({
                "profile": "salesforce-local",
                "client_id": "3MVG9testkit",
                "client_secret": "testkit-secret",
                "environment": "local",
                "actions": ["list_accounts"],
            })),
            201,
        )
        .await;
    let integration = integration["id"].as_str().expect("integration id").to_owned();
    let connect_url = connect_url(&api, &integration).await;
    assert!(connect_url.starts_with(&format!("{}/connect?session_token=", server.url)), "{connect_url}");

    // ---- the browser ----
    let shots = target_dir().join("screenshots");
    let report = drive_browser(deps, &connect_url, &integration, &shots, &[]).await;
    eprintln!("browser run: {report}");
    let connection = report["done"]["connection_id"].as_str().expect("connection id on the done page").to_owned();
    assert!(connection.starts_with("conn_"), "{connection}");
    let h1 = report["done"]["h1"].as_str().unwrap_or_default();
    assert!(h1.contains("is connected"), "done page heading: {h1:?}; server log:\n{}", server.log_text());
    assert_eq!(report["done"]["result"]["connection_id"], connection.as_str());
    assert_eq!(report["done"]["result"]["status"], "connected");
    let back = report["returned_to"].as_str().expect("the done page returned to the application");
    let back = reqwest::Url::parse(back).expect("return URL");
    assert_eq!(back.path(), "/done");
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    assert!(query.contains(&("connection_id".to_owned(), connection.clone())), "{back}");
    assert!(query.contains(&("status".to_owned(), "connected".to_owned())), "{back}");
    // Page errors, blocked resources (CSP), failed loads: none, but a missing favicon.
    let errors: Vec<&str> = report["console_errors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).filter(|e| !e.contains("/favicon.ico")).collect())
        .unwrap_or_default();
    assert!(errors.is_empty(), "the browser reported errors: {errors:#?}");
    for name in ["connect.png", "connect-details.png", "connect-phone.png", "consent.png", "done.png", "done-phone.png"]
    {
        let len = std::fs::metadata(shots.join(name)).map_or(0, |m| m.len());
        assert!(len > 1000, "{name} is missing or empty in {}", shots.display());
    }
    let counts = provider.counts();
    assert_eq!(counts.grant("authorization_code"), 1, "{counts:?}");
    assert_eq!(counts.grant("refresh_token"), 0, "{counts:?}");
    let stored = api.expect(reqwest::Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    assert_eq!(stored["state"], "active", "{stored}");
    let issued_expiry = stored["expires_at"].as_u64().expect("expires_at, learned from introspection");

    // ---- due from the start: the first read refreshes, once, to a token that stays fresh ----
    provider.update_config(|c| c.expires_in = None);
    let first = api.token(&connection).await;
    assert_eq!(provider.counts().grant("refresh_token"), 1, "one refresh: the token was due");
    assert!(first["expires_at"].as_u64() > Some(issued_expiry), "{first} after {stored}");
    assert_eq!(first["fields"]["instance_url"], provider.base_url().as_str(), "{first}");

    // ---- fresh: the same token, no refresh ----
    let second = api.token(&connection).await;
    assert_eq!(access_token(&second), access_token(&first), "a fresh token is handed out as it is");
    assert_eq!(provider.counts().grant("refresh_token"), 1, "no refresh for a fresh token");

    // ---- killed and started again on the same database and key file: nothing lost ----
    server.kill();
    let server = start(2);
    api.base = server.url.clone();
    let third = api.token(&connection).await;
    assert_eq!(access_token(&third), access_token(&second), "the refreshed token survived the restart");
    assert_eq!(third["expires_at"], second["expires_at"]);
    assert_eq!(provider.counts().grant("refresh_token"), 1, "no refresh after the restart");

    // ---- deleted: revoked at the provider, once ----
    let revokes = provider.counts().revoke;
    let deleted = api.expect(reqwest::Method::DELETE, &format!("/v1/connections/{connection}"), None, 200).await;
    assert_eq!(deleted["revoked_at_provider"], true, "{deleted}");
    assert_eq!(deleted["deleted"], true, "{deleted}");
    assert_eq!(provider.counts().revoke, revokes + 1, "exactly one revocation");
    let (status, gone) = api.call(reqwest::Method::GET, &format!("/v1/connections/{connection}/token"), None).await;
    assert_eq!(status, 404, "{gone}");

    drop(server);
    drop(scratch);
    eprintln!("serve_browser: screenshots in {}", shots.display());
}

/// An API-key integration on the connect page in a real browser: the form asks for the key
/// (a password input, with where to find it), a key the provider refuses is answered on the
/// page with the provider's diagnosis and the input empty, and nothing is stored; the right
/// key lands on the done page, and the connection's credentials work at the provider. The
/// server logs at TRACE; its log holds none of the keys, passwords or exchanged tokens, also
/// of a Basic and a token-exchange connection linked and read through the API.
/// Screenshots in `target/screenshots/api-key/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_form_in_a_browser_refuses_a_wrong_key_on_the_page_and_links_the_right_one() {
    let deps = browser_deps();
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("test provider");
    let scratch = Scratch::new("serve-browser-key");
    let dir = scratch.path().to_owned();
    keyway_testkit::profiles::write_profiles(&dir.join("profiles"), &provider.host()).expect("profiles");
    let server =
        Server::start_logging(&dir.join("profiles"), &scratch.sqlite(), &["--dev"], &dir.join("serve.log"), "trace");
    let api = Api {
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client"),
        base: server.url.clone(),
        key: process::api_key(&scratch.sqlite()),
    };
    let integration =
        api.expect(reqwest::Method::POST, "/v1/integrations", Some(json!({"profile": "testkit-api-key"})), 201).await;
    let integration = integration["id"].as_str().expect("integration id").to_owned();
    let connect_url = connect_url(&api, &integration).await;
    let wrong = "wrong-key-0000000000";
    let right = provider.config().api_key;
    let shots = target_dir().join("screenshots/api-key");
    let extra = [
        "--wrong-fields".to_owned(),
        json!({"api_key": wrong}).to_string(),
        "--fields".to_owned(),
        json!({"api_key": right}).to_string(),
    ];
    let report = drive_browser(deps, &connect_url, &integration, &shots, &extra).await;
    eprintln!("browser run: {report}");
    let alert = report["refused"]["alert"].as_str().unwrap_or_default();
    assert!(alert.contains("refused these credentials") && alert.contains("401"), "{alert}");
    assert!(!alert.contains(wrong), "the refused key is not shown back: {alert}");
    assert_eq!(report["refused"]["secret_values"], json!([""]), "the key input is empty after a refusal");
    assert_eq!(report["refused"]["overflow_px"], 0, "{report}");
    assert_eq!(report["refused"]["phone_overflow_px"], 0, "{report}");
    assert_eq!(report["connect"]["phone_overflow_px"], 0, "{report}");
    let connection = report["done"]["connection_id"].as_str().expect("connection id on the done page").to_owned();
    assert_eq!(report["done"]["result"]["status"], "connected", "{report}");
    let errors: Vec<&str> = report["console_errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|e| !e.contains("/favicon.ico"))
                // The refused form's own answer is a 422, as it should be.
                .filter(|e| !e.contains("status of 422"))
                .collect()
        })
        .unwrap_or_default();
    assert!(errors.is_empty(), "the browser reported errors: {errors:#?}");
    for name in ["connect.png", "connect-phone.png", "connect-refused.png", "connect-refused-phone.png", "done.png"] {
        let len = std::fs::metadata(shots.join(name)).map_or(0, |m| m.len());
        assert!(len > 1000, "{name} is missing or empty in {}", shots.display());
    }
    let list = api.expect(reqwest::Method::GET, "/v1/connections", None, 200).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "only the right key was stored: {list}");
    let credentials =
        api.expect(reqwest::Method::GET, &format!("/v1/connections/{connection}/credentials"), None, 200).await;
    assert_eq!(credentials["headers"]["x-api-key"], right.as_str(), "{credentials}");
    // A Basic and a token-exchange connection too, linked and read through the API.
    let config = provider.config();
    let mut secrets = vec![right.clone(), wrong.to_owned(), config.basic_password.clone()];
    for profile in ["testkit-basic", "testkit-exchange"] {
        let created =
            api.expect(reqwest::Method::POST, "/v1/integrations", Some(json!({"profile": profile})), 201).await;
        let linked = api
            .expect(
                reqwest::Method::POST,
                "/v1/connections",
                Some(json!({
                    "integration_id": created["id"],
                    "end_user": {"id": "u2"},
                    "fields": {"username": config.basic_user, "password": config.basic_password},
                })),
                201,
            )
            .await;
        let id = linked["id"].as_str().expect("id");
        let read = api.expect(reqwest::Method::GET, &format!("/v1/connections/{id}/credentials"), None, 200).await;
        let authorization = read["headers"]["authorization"].as_str().expect("authorization").to_owned();
        secrets.push(authorization.split_once(' ').map(|(_, v)| v.to_owned()).unwrap_or(authorization));
    }
    let log = server.log_text();
    assert!(log.contains("request method=POST route=\"/v1/connections\""), "the log records the calls");
    assert!(log.contains(" TRACE ") || log.contains(" DEBUG "), "the log is below INFO");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the TRACE log");
    }
    drop(server);
    drop(scratch);
}
