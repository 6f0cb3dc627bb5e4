//! The HTTP API fuzzed from its own OpenAPI document: schemathesis (PyPI; installed into
//! `target/venv` by `scripts/test-deps.sh`) runs against a live `keyway serve` process and
//! must find no 5xx and no answer that breaks the document: status codes, content types,
//! headers and bodies as declared, schema-violating requests refused, refused credentials
//! honoured, deleted resources gone.
//!
//! `positive_data_acceptance` is left out on purpose: the API refuses some schema-valid
//! requests by design (a profile that does not exist, an action the profile does not offer),
//! with 422 and the validator's diagnostics.

use keyway_testkit::{ProviderConfig, TestProvider};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `keyway serve` process, killed on drop.
struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(dir: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["--profiles"])
        .arg(dir.join("profiles"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite://{}", dir.join("hub.db").display()))
        .env("KEYWAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keyway serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("listening line");
    let base = line.trim().strip_prefix("keyway serve: listening on ").expect("listening line").to_owned();
    Serve { child, base }
}

fn api_key(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["keys", "api", "create", "--db"])
        .arg(format!("sqlite://{}", dir.join("hub.db").display()))
        .output()
        .expect("keys api create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn post(base: &str, key: &str, path: &str, body: Value) -> Value {
    let response =
        reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(key).json(&body).send().await.expect("send");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let schemathesis = workspace_root().join("target/venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "schemathesis is missing at {}: run scripts/test-deps.sh (README's test command does)",
        schemathesis.display()
    );
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let dir = workspace_root().join(format!("target/tmp/serve-api-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    keyway_testkit::profiles::write_profiles(&dir.join("profiles"), &provider.host()).expect("profiles");
    let serve = start_serve(&dir);
    let key = api_key(&dir);
    let integration = post(
        &serve.base,
        &key,
        "/v1/integrations",
        json!({"profile": "salesforce-local", "client_id": "3MVG9testkit", "client_secret": "testkit-secret",
               "environment": "local", "actions": ["list_accounts"]}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut connections = Vec::new();
    for user in ["kept@example.com", "deleted@example.com"] {
        let issued = provider.issue_tokens(user, "api refresh_token");
        let body = json!({"integration_id": integration, "end_user": {"id": user}, "tokens": {
            "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
            "fields": {"instance_url": provider.base_url()}}});
        connections.push(post(&serve.base, &key, "/v1/connections", body).await["id"].as_str().expect("id").to_owned());
    }
    // Real ids for the operations that take one; destructive ones get their own connection.
    let config = format!(
        r#"
[[operations]]
include-path = ["/v1/connections/{{id}}", "/v1/connections/{{id}}/token", "/v1/connections/{{id}}/refresh", "/v1/connections/{{id}}/test"]
include-method = ["GET", "POST"]
parameters = {{ "path.id" = "{kept}" }}

[[operations]]
include-path = ["/v1/connections/{{id}}", "/v1/connections/{{id}}/revoke"]
include-method = ["DELETE", "POST"]
parameters = {{ "path.id" = "{deleted}" }}

[[operations]]
include-path = ["/v1/integrations/{{id}}"]
include-method = ["GET", "PATCH", "DELETE"]
parameters = {{ "path.id" = "{integration}" }}
"#,
        kept = connections[0],
        deleted = connections[1],
    );
    let config_path = dir.join("schemathesis.toml");
    std::fs::write(&config_path, config).expect("config");
    let output = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", &format!("{}/openapi.json", serve.base)])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "50", "--workers", "2"])
        .args(["--generation-deterministic", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(&dir)
        .output()
        .expect("schemathesis runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found problems:\n{text}");
    eprintln!("{text}");
    assert!(text.contains("Tested: 18") || text.contains("Tested:"), "{text}");
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}
