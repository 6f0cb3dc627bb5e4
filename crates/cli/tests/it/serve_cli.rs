//! `keyway serve` and `keyway keys` as a user runs them: refusals at start, key files, API
//! keys, JSON logs, and reloading profiles on SIGHUP.

use crate::process;

use process::Server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keyway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyway")).args(args).env("KEYWAY_LOG", "info").output().expect("runs")
}

/// In `dir`: a profiles directory with the bundled Salesforce profile, a new key file, and
/// the SQLite database URL beside them.
fn hub_files(dir: &Path) -> (PathBuf, PathBuf, String) {
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).expect("dir");
    std::fs::copy(bundled().join("salesforce.yaml"), profiles.join("salesforce.yaml")).expect("copy");
    let keys = dir.join("keyway.keys");
    assert!(keyway(&["keys", "generate", "--file", &keys.display().to_string()]).status.success());
    (profiles, keys, format!("sqlite://{}", dir.join("hub.db").display()))
}

fn temp(tag: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/tmp/serve-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn serve(profiles: &Path, db: &str, extra: &[&str]) -> Server {
    let log = Path::new(db.trim_start_matches("sqlite://")).with_extension("log");
    Server::start(profiles, db, extra, &log)
}

#[test]
fn serve_refuses_to_start_without_a_key_and_says_how_to_make_one() {
    let dir = temp("nokey");
    let db = format!("sqlite://{}", dir.join("hub.db").display());
    let out =
        keyway(&["--profiles", &bundled().display().to_string(), "serve", "--db", &db, "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no encryption key") && err.contains("keyway keys generate") && err.contains("--dev"),
        "{err}"
    );
    assert!(!dir.join("hub.db").exists(), "nothing was created");
    for bad in ["", "k1:c2hvcnQ=\n", "not a key file"] {
        let file = dir.join("bad.keys");
        std::fs::write(&file, bad).expect("write");
        let out = keyway(&[
            "--profiles",
            &bundled().display().to_string(),
            "serve",
            "--db",
            &db,
            "--keys-file",
            &file.display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad.keys"), "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_profiles_with_errors_and_reports_them_located() {
    let dir = temp("badprofile");
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).expect("dir");
    std::fs::copy(bundled().join("salesforce.yaml"), profiles.join("salesforce.yaml")).expect("copy");
    std::fs::write(profiles.join("acme.yaml"), "id: acme\nextends: salesforce\nauth:\n  scope_separtor: \",\"\n")
        .expect("write");
    let db = format!("sqlite://{}", dir.join("hub.db").display());
    let out = keyway(&["--profiles", &profiles.display().to_string(), "serve", "--dev", "--db", &db]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KW0201") && err.contains("acme.yaml:4:3") && err.contains("not starting"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_generate_writes_a_private_file_and_puts_each_new_key_first() {
    let dir = temp("keys");
    let out = keyway(&["keys", "generate"]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(keyway_server::crypto::Keyring::parse(&line).is_ok(), "{line}");
    let file = dir.join("keyway.keys");
    let path = file.display().to_string();
    let created = keyway(&["keys", "generate", "--file", &path]);
    assert!(created.status.success());
    let said = String::from_utf8_lossy(&created.stderr);
    assert!(said.contains("created") && said.contains("--keys-file"), "a new file: how to start, {said}");
    assert!(!said.contains("rotate"), "nothing to rotate on first setup: {said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first = keyway_server::read_key_file(&file).expect("keys").primary_id().to_owned();
    let prepended = keyway(&["keys", "generate", "--file", &path]);
    assert!(prepended.status.success());
    assert!(String::from_utf8_lossy(&prepended.stderr).contains("keyway keys rotate"), "a new key: rotate");
    let keys = keyway_server::read_key_file(&file).expect("keys");
    assert_eq!(keys.ids().len(), 2);
    assert_ne!(keys.primary_id(), first);
    assert_eq!(keys.ids()[1], first, "the old key still decrypts");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_rotation_json_logs_and_reload_on_sighup() {
    let dir = temp("serve");
    let (profiles, keys, db) = hub_files(&dir);
    let created = keyway(&["keys", "api", "create", "--db", &db, "--name", "ci"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(key.starts_with("kwk_"));

    let mut hub = serve(&profiles, &db, &["--keys-file", &keys.display().to_string(), "--log-format", "json"]);
    let client = reqwest::Client::new();
    let create = |profile: &str| {
        client
            .post(format!("{}/v1/integrations", hub.url))
            .bearer_auth(&key)
            .json(&serde_json::json!({"profile": profile, "client_id": "3MVG9x", "client_secret": "s3cret-value"}))
            .send()
    };
    let response = create("salesforce").await.expect("send");
    assert_eq!(response.status(), 201);
    // A profile added while running is unknown until SIGHUP reloads the directory.
    std::fs::copy(bundled().join("salesforce-service-cloud.yaml"), profiles.join("salesforce-service-cloud.yaml"))
        .expect("copy");
    let response = create("salesforce-service-cloud").await.expect("send");
    assert_eq!(response.status(), 422);
    let hup = Command::new("kill").args(["-HUP", &hub.child.id().to_string()]).status().expect("kill");
    assert!(hup.success());
    // Until the reload, each attempt is a 422 that creates nothing; the first 201 is the reload.
    keyway_testkit::wait_until("SIGHUP to reload the profiles", std::time::Duration::from_secs(30), || async {
        let status = create("salesforce-service-cloud").await.expect("send").status().as_u16();
        assert!(status == 201 || status == 422, "{status}");
        status == 201
    })
    .await;
    // The reload is logged just after it takes effect.
    keyway_testkit::wait_until("the reload's log line", std::time::Duration::from_secs(30), || async {
        hub.log_text().contains("profiles reloaded")
    })
    .await;
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    let stderr = hub.log_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    assert!(stderr.contains("profiles reloaded"), "{stderr}");
    assert!(!stderr.contains("s3cret-value") && !stderr.contains(&key), "no secret in the logs");

    // Rotation: a new key first, every secret re-encrypted to it.
    assert!(keyway(&["keys", "generate", "--file", &keys.display().to_string()]).status.success());
    let out = keyway(&["keys", "rotate", "--db", &db, "--keys-file", &keys.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("re-encrypted 2 value(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = keyway(&["keys", "rotate", "--db", &db, "--keys-file", &keys.display().to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("re-encrypted 0 value(s)"));
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_refresher_runs_in_the_process_without_any_token_read() {
    let provider =
        keyway_testkit::TestProvider::start(keyway_testkit::ProviderConfig::default()).await.expect("provider");
    let scratch = process::Scratch::new("serve-refresher");
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    let hub = serve(&profiles, &scratch.sqlite(), &["--dev", "--refresh-every", "1"]);
    let api = process::Api::new(&hub.url, &process::api_key(&scratch.sqlite()));
    let integration = process::create_integration(&api).await;
    let connection = process::import_connection(&api, &provider, &integration, "idle@example.com").await;
    // Due: one forced refresh while the provider says its tokens expire at once. No token is read.
    provider.update_config(|c| c.expires_in = Some(0));
    api.expect(reqwest::Method::POST, &format!("/v1/connections/{connection}/refresh"), None, 200).await;
    provider.update_config(|c| c.expires_in = None);
    // The refresher logs its pass once the pass is over: that line, then the refresh it made.
    // On failure the server's log is kept in the scratch directory (it says where).
    keyway_testkit::wait_until("the background refresher's pass", std::time::Duration::from_secs(30), || async {
        hub.log_text().contains("background refresh")
    })
    .await;
    assert!(
        provider.counts().grant("refresh_token") >= 2,
        "the forced refresh, then the refresher's: {}",
        hub.log_text()
    );
}

/// `keyway keys api create|list|revoke`: scopes and an expiry at creation, a list that shows
/// last use and never a secret, and a revocation the running hub honours on its next request.
#[tokio::test(flavor = "multi_thread")]
async fn api_keys_with_scopes_are_listed_with_their_last_use_and_revoked_from_the_command_line() {
    let dir = temp("keys-api");
    let (profiles, keys, db) = hub_files(&dir);
    let refused = keyway(&["keys", "api", "create", "--db", &db, "--scope", "tokens:read"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("credentials:read"), "the scopes are named");
    let refused = keyway(&["keys", "api", "create", "--db", &db, "--scope", "admin", "--expires-in", "2w"]);
    assert!(!refused.status.success());
    let created = keyway(&[
        "keys",
        "api",
        "create",
        "--db",
        &db,
        "--name",
        "web",
        "--scope",
        "integrations:read,connect_sessions:write",
        "--expires-in",
        "30d",
    ]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let id = key.strip_prefix("kwk_").and_then(|k| k.split('_').next()).expect("id").to_owned();
    let list = |format: &str| {
        let out = keyway(&["keys", "api", "list", "--db", &db, "--format", format]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains(&key) && !text.contains("kwk_"), "never a secret: {text}");
        text
    };
    let text = list("text");
    let row = text.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(row.contains("web\tactive\tintegrations:read,connect_sessions:write\t"), "{row}");
    assert!(row.ends_with("\t-"), "never used: {row}");

    let hub = serve(&profiles, &db, &["--keys-file", &keys.display().to_string()]);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", hub.url)).bearer_auth(&key).send();
    assert_eq!(get("/v1/integrations").await.expect("send").status(), 200);
    assert_eq!(get("/v1/connections").await.expect("send").status(), 403, "not its scope");
    keyway_testkit::wait_until("the key's last use to be listed", std::time::Duration::from_secs(10), || async {
        let json = list("json");
        let entry: serde_json::Value = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .find(|k: &serde_json::Value| k["id"] == id)
            .expect("listed");
        entry["last_used_at"].is_i64()
    })
    .await;

    let revoked = keyway(&["keys", "api", "revoke", "--db", &db, &id]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(get("/v1/integrations").await.expect("send").status(), 401, "refused on its next request");
    assert!(list("text").lines().any(|l| l.starts_with(&id) && l.contains("\trevoked\t")));
    assert!(!keyway(&["keys", "api", "revoke", "--db", &db, "nope"]).status.success());
    hub.kill();

    // The audit trail as JSON Lines: the key's creation and revocation by the operator, the
    // request refused for its scope by the key.
    let export = keyway(&["audit", "export", "--db", &db, "--since", "1d"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record a line"))
        .collect();
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["api_key.created", "request.refused", "api_key.revoked"], "{records:?}");
    assert_eq!(records[0]["actor"]["kind"], "operator");
    assert_eq!(records[1]["actor"]["id"], id.as_str());
    assert_eq!(records[1]["problem_code"], "insufficient_scope");
    assert!(!String::from_utf8_lossy(&export.stdout).contains(&key), "no secret");
    let none = keyway(&["audit", "export", "--db", &db, "--until", "1000"]);
    assert!(none.status.success() && none.stdout.is_empty());
    assert!(!keyway(&["audit", "export", "--db", &db, "--action", "nope"]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every option `keyway serve --help` lists is in docs/server.md's table of them, and the
/// table names no option the command does not have.
#[test]
fn every_serve_option_is_documented_and_nothing_else() {
    let help = keyway(&["serve", "--help"]);
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let options = |text: &str, line_starts: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.trim_start().starts_with(line_starts))
            .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map(str::to_owned))
            .filter(|w| w.starts_with("--") && w.len() > 2 && w != "--help" && w != "--version")
            .collect()
    };
    let listed = options(&help, "-");
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md")).expect("doc");
    let documented = options(&doc, "| `--");
    assert!(!listed.is_empty(), "{help}");
    assert_eq!(listed, documented, "`keyway serve --help` against docs/server.md's options table");
}

/// `keyway serve --audit-reads off`: a token handed out leaves no record; a refused read, the
/// import and the revocation still do.
#[tokio::test(flavor = "multi_thread")]
async fn with_audit_reads_off_only_handed_out_credentials_go_unrecorded() {
    let provider =
        keyway_testkit::TestProvider::start(keyway_testkit::ProviderConfig::default()).await.expect("provider");
    let scratch = process::Scratch::new("serve-audit-reads-off");
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    let db = scratch.sqlite();
    let hub = serve(&profiles, &db, &["--dev", "--refresh-every", "0", "--audit-reads", "off"]);
    let api = process::Api::new(&hub.url, &process::api_key(&db));
    let integration = process::create_integration(&api).await;
    let connection = process::import_connection(&api, &provider, &integration, "quiet@example.com").await;
    let token = format!("/v1/connections/{connection}/token");
    for _ in 0..3 {
        api.expect(reqwest::Method::GET, &token, None, 200).await;
    }
    api.expect(reqwest::Method::POST, &format!("/v1/connections/{connection}/revoke"), None, 200).await;
    api.expect(reqwest::Method::GET, &token, None, 409).await;
    let export = keyway(&["audit", "export", "--db", &db, "--connection", &connection]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let actions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap_or_default(), r["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        actions,
        [("connection.imported", "ok"), ("connection.revoked", "ok"), ("credential.read", "refused")],
        "{records:?}"
    );
}
