//! Who may do what: API keys with scopes, an expiry and revocation, created and listed
//! through the API (and the CLI, in crates/cli's tests), each operation refused to a key
//! without its scope, as the OpenAPI document states.

use crate::support::{Harness, read};
use keyway_server::domain::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// A key holding `scopes`, created through the API with the harness's (every-scope) key.
pub async fn key_with(hub: &Harness, name: &str, scopes: &[&str], expires_in: Option<u64>) -> (String, Value) {
    let mut body = json!({"name": name, "scopes": scopes});
    if let Some(s) = expires_in {
        body["expires_in"] = json!(s);
    }
    let (status, created) = hub.call(Method::POST, "/v1/api-keys", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["secret"].as_str().expect("secret").to_owned(), created)
}

async fn call_with(
    base: &str,
    key: &str,
    method: Method,
    path: &str,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    let headers = response.headers().clone();
    let (status, body) = read(response).await;
    (status, body, headers)
}

async fn listed(hub: &Harness, id: &str) -> Value {
    let (status, list) = hub.call(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(!list.to_string().contains("kwk_"), "a list never carries a secret: {list}");
    list["data"].as_array().expect("data").iter().find(|k| k["id"] == id).cloned().expect("listed")
}

/// Polls the list until the key's `last_used_at` is `wanted` (its write is off the request's
/// path).
async fn last_used_becomes(hub: &Harness, id: &str, wanted: i64) {
    for _ in 0..100 {
        if listed(hub, id).await["last_used_at"].as_i64() == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("last_used_at never became {wanted}: {}", listed(hub, id).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_lives_until_it_expires_or_is_revoked_and_the_list_shows_its_last_use() {
    let hub = Harness::start().await;
    let (b, _b) = hub.another_instance().await;
    let now = || keyway_runtime::Clock::now(hub.clock.as_ref()) as i64;

    // Created with one scope and an hour to live; the secret only in this answer.
    let (key, created) = key_with(&hub, "web backend", &["integrations:read"], Some(3600)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(&format!("kwk_{id}_")), "{created}");
    assert_eq!(created["scopes"], json!(["integrations:read"]));
    assert_eq!((created["status"].as_str(), created["every_scope"].as_bool()), (Some("active"), Some(false)));
    assert_eq!(created["expires_at"].as_i64(), Some(now() + 3600));
    assert_eq!(listed(&hub, &id).await["last_used_at"], Value::Null, "never used yet");

    // Used: `last used` recorded, then not rewritten within the minute, then again after it.
    let t0 = now();
    assert_eq!(call_with(&hub.base, &key, Method::GET, "/v1/integrations").await.0, StatusCode::OK);
    last_used_becomes(&hub, &id, t0).await;
    hub.clock.advance(Duration::from_secs(30));
    assert_eq!(call_with(&hub.base, &key, Method::GET, "/v1/integrations").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(listed(&hub, &id).await["last_used_at"].as_i64(), Some(t0), "at most one write a minute");
    hub.clock.advance(Duration::from_secs(31));
    assert_eq!(call_with(&hub.base, &key, Method::GET, "/v1/integrations").await.0, StatusCode::OK);
    last_used_becomes(&hub, &id, t0 + 61).await;

    // Expired: refused on every instance, and listed as expired.
    hub.clock.advance(Duration::from_secs(3600));
    for base in [&hub.base, &b] {
        let (status, problem, _) = call_with(base, &key, Method::GET, "/v1/integrations").await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("expired")), "{problem}");
    }
    assert_eq!(listed(&hub, &id).await["status"], "expired");

    // Revoked on A while B holds it: B refuses it on its next request.
    let (other, created) = key_with(&hub, "worker", &["credentials:read", "integrations:read"], None).await;
    let other_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(call_with(&b, &other, Method::GET, "/v1/integrations").await.0, StatusCode::OK);
    let (status, revoked) = hub.call(Method::DELETE, &format!("/v1/api-keys/{other_id}"), None).await;
    assert_eq!((status, revoked["status"].as_str()), (StatusCode::OK, Some("revoked")), "{revoked}");
    let (status, problem, _) = call_with(&b, &other, Method::GET, "/v1/integrations").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("revoked")), "{problem}");
    let (status, _) = hub.call(Method::DELETE, "/v1/api-keys/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Refused before they exist: every refusal points at its field.
    for (body, pointer) in [
        (json!({"name": "x", "scopes": []}), "/scopes"),
        (json!({"name": "x", "scopes": ["connections:read", "tokens:read"]}), "/scopes/1"),
        (json!({"name": "", "scopes": ["admin"]}), "/name"),
        (json!({"name": "x", "scopes": ["admin"], "expires_in": 0}), "/expires_in"),
        (json!({"name": "x", "scopes": ["admin"], "expires_in": 400_000_000u64}), "/expires_in"),
    ] {
        let (status, problem) = hub.call(Method::POST, "/v1/api-keys", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        assert_eq!(problem["diagnostics"][0]["pointer"], pointer, "{body}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_before_scopes_keeps_every_scope_and_the_list_says_so() {
    let hub = Harness::start().await;
    // A row as the previous version wrote it: no scopes, no expiry.
    let secret = "legacylegacylegacylegacylegacylegacylega";
    let hash: String = sha256_hex(secret);
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&hub.db).await.expect("database");
    sqlx::query("INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind("LegacyKey001")
        .bind("old backend")
        .bind(hash)
        .bind(1_i64)
        .execute(&mut conn)
        .await
        .expect("insert");
    let key = format!("kwk_LegacyKey001_{secret}");
    let listed = listed(&hub, "LegacyKey001").await;
    assert_eq!(listed["every_scope"], true, "{listed}");
    let every: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(listed["scopes"], json!(every));
    for path in ["/v1/api-keys", "/v1/connections", "/v1/integrations", "/v1/connections/conn_nope/token"] {
        let (status, body, _) = call_with(&hub.base, &key, Method::GET, path).await;
        assert_ne!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every operation of the OpenAPI document with its security requirement's one scope.
fn secured_operations() -> Vec<(Method, String, Scope)> {
    let doc: Value = serde_json::from_str(&keyway_server::http::openapi()).expect("openapi");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Some(security) = op.get("security") else { continue };
            let scopes = security[0]["api_key"].as_array().expect("api_key requirement");
            assert_eq!(scopes.len(), 1, "{method} {path} names one scope: {security}");
            let scope = Scope::parse(scopes[0].as_str().expect("name")).expect("a scope");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            out.push((method, path.replace("{id}", "nope"), scope));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn each_scope_alone_opens_exactly_the_operations_the_openapi_document_gives_it() {
    let hub = Harness::start().await;
    let ops = secured_operations();
    assert!(ops.len() >= 18, "{ops:?}");
    for scope in Scope::ALL {
        assert!(ops.iter().any(|(_, _, s)| s == scope), "no operation needs `{scope}`");
    }
    // Reading credentials is a scope of its own: nothing else opens the token.
    let token_scope = ops.iter().find(|(m, p, _)| m == Method::GET && p.ends_with("/token")).expect("token").2;
    assert_eq!(token_scope, Scope::CredentialsRead);
    for scope in Scope::ALL {
        let (key, _) = key_with(&hub, &format!("only {scope}"), &[scope.as_str()], None).await;
        for (method, path, needs) in &ops {
            let (status, body, headers) = call_with(&hub.base, &key, method.clone(), path).await;
            if needs == scope {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {path} with `{scope}`: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} with `{scope}`: {body}");
                assert_eq!(body["code"], "insufficient_scope", "{body}");
                assert_eq!(body["scope"], needs.as_str(), "the refusal names the scope: {body}");
                assert!(body["detail"].as_str().is_some_and(|d| d.contains(needs.as_str())), "{body}");
                let challenge = headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
                assert!(challenge.contains(&format!("scope=\"{needs}\"")), "{challenge}");
            }
        }
    }
}
