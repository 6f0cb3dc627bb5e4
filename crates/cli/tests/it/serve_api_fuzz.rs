//! The HTTP API fuzzed from its own OpenAPI document: schemathesis (PyPI; installed into
//! `target/venv` by `scripts/test-deps.sh`) runs against a live `keyway serve` process and
//! must find no 5xx and no answer that breaks the document: status codes, content types,
//! headers and bodies as declared, schema-violating requests refused, refused credentials
//! honoured, deleted resources gone.
//!
//! `positive_data_acceptance` is left out on purpose: the API refuses some schema-valid
//! requests by design (a profile that does not exist, an action the profile does not offer),
//! with 422 and the validator's diagnostics.

use crate::process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server};
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let schemathesis = process::root().join("target/venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "schemathesis is missing at {}: run scripts/test-deps.sh (README's test command does)",
        schemathesis.display()
    );
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let scratch = Scratch::new("serve-api-fuzz");
    let dir = scratch.path();
    keyway_testkit::profiles::write_profiles(&dir.join("profiles"), &provider.host()).expect("profiles");
    let serve = Server::start(&dir.join("profiles"), &scratch.sqlite(), &["--dev"], &dir.join("serve.log"));
    let key = process::api_key(&scratch.sqlite());
    let api = Api::new(&serve.url, &key);
    let integration = process::create_integration(&api).await;
    let mut connections = Vec::new();
    for user in ["kept@example.com", "deleted@example.com"] {
        connections.push(process::import_connection(&api, &provider, &integration, user).await);
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
        .args(["run", &format!("{}/openapi.json", serve.url)])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // One worker: Hypothesis parses source files to describe its filters, and CPython
        // 3.11 keeps the AST builder's depth counter per interpreter, so two threads parsing
        // at once fail one of them at random ("AST constructor recursion depth mismatch").
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "50", "--workers", "1"])
        .args(["--generation-deterministic", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir)
        .output()
        .expect("schemathesis runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found problems:\n{text}");
    eprintln!("{text}");
    assert!(text.contains("Tested: 18") || text.contains("Tested:"), "{text}");
    drop(serve);
}
