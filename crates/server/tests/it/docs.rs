//! docs/server.md lists every problem code and every connection state of the registries in
//! the source (`keyway_server::error::ProblemCode`, `keyway_server::domain::ConnectionState`),
//! with the registry's status, and nothing else.

use keyway_server::domain::ConnectionState;
use keyway_server::error::ProblemCode;
use std::path::Path;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md")).expect("docs")
}

/// The rows of the markdown table whose header starts with `| {first} |`: their cells.
fn table(doc: &str, first: &str) -> Vec<Vec<String>> {
    let header = format!("| {first} |");
    let start = doc.find(&header).unwrap_or_else(|| panic!("docs/server.md has no `{header}` table"));
    doc[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.trim_matches('|').split(" | ").map(|cell| cell.trim().to_owned()).collect())
        .collect()
}

fn code_cell(cell: &str) -> String {
    cell.trim_matches('`').to_owned()
}

#[test]
fn every_problem_code_is_documented_with_its_status_and_nothing_else() {
    let rows = table(&doc(), "code");
    let documented: Vec<(String, String)> = rows.iter().map(|r| (code_cell(&r[0]), r[1].clone())).collect();
    for code in ProblemCode::ALL {
        let Some((_, status)) = documented.iter().find(|(c, _)| c == code.as_str()) else {
            panic!("docs/server.md does not list `{code}`");
        };
        let number = status.split_whitespace().next().unwrap_or_default();
        assert_eq!(number, code.status().to_string(), "`{code}`: the docs say {status}");
    }
    for (code, _) in &documented {
        assert!(ProblemCode::ALL.iter().any(|c| c.as_str() == code), "docs/server.md lists `{code}`, not a code");
    }
    assert_eq!(documented.len(), ProblemCode::ALL.len(), "each code once");
}

#[test]
fn every_connection_state_is_documented_and_nothing_else() {
    let rows = table(&doc(), "state");
    let documented: Vec<String> = rows.iter().map(|r| code_cell(&r[0])).collect();
    let states: Vec<String> = ConnectionState::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(documented, states);
}

#[test]
fn the_openapi_document_names_every_state() {
    let doc: serde_json::Value = serde_json::from_str(&keyway_server::http::openapi()).expect("openapi");
    let states = &doc["components"]["schemas"]["ConnectionState"]["enum"];
    let expected: Vec<&str> = ConnectionState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(states, &serde_json::json!(expected), "{}", doc["components"]["schemas"]["ConnectionState"]);
}

/// The ```json blocks of docs/server.md's "First calls", in order.
fn first_call_bodies() -> Vec<serde_json::Value> {
    let doc = doc();
    let section = doc.split("### First calls").nth(1).expect("a First calls section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .split("```json\n")
        .skip(1)
        .map(|block| {
            let text = block.split("\n```").next().unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
        })
        .collect()
}

/// The documented example bodies are accepted as they are by a real hub (only the
/// integration id the second one names is filled in).
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_first_calls_are_accepted() {
    let bodies = first_call_bodies();
    assert_eq!(bodies.len(), 2, "an integration and a connect session");
    let hub = crate::support::Harness::start().await;
    let (status, integration) = hub.call(reqwest::Method::POST, "/v1/integrations", Some(bodies[0].clone())).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{integration}");
    let id = integration["id"].as_str().expect("id");
    let session = bodies[1].to_string().replace("INTEGRATION_ID", id);
    let session: serde_json::Value = serde_json::from_str(&session).expect("json");
    let (status, created) = hub.call(reqwest::Method::POST, "/v1/connect/sessions", Some(session)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    assert!(created["connect_url"].as_str().is_some_and(|u| u.contains("/connect")), "{created}");
}

#[test]
fn every_scope_and_every_audit_action_is_documented_and_nothing_else() {
    use keyway_server::domain::{AuditAction, Scope};
    let doc = doc();
    let scopes: Vec<String> = table(&doc, "scope").iter().map(|r| code_cell(&r[0])).collect();
    let expected: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(scopes, expected, "docs/server.md's scopes table, in the registry's order");
    let actions: Vec<String> = table(&doc, "action").iter().map(|r| code_cell(&r[0])).collect();
    let expected: Vec<String> = AuditAction::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    assert_eq!(actions, expected, "docs/server.md's audit actions table, in the registry's order");
}
