//! Profile variants the Salesforce-like provider does not exercise: token requests in JSON,
//! a separate refresh endpoint with extra refresh parameters, HTTP Basic client
//! authentication. Served by a small provider written here, over loopback HTTP.

use crate::support;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use keyway_runtime::{Callback, Connector, ConnectorConfig, GrantUsed, HttpClient, HttpOptions, Registry, Selection};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

async fn token(State(seen): State<Seen>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    answer("/token", seen, headers, body)
}

async fn refresh(State(seen): State<Seen>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    answer("/refresh", seen, headers, body)
}

fn answer(path: &str, seen: Seen, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    let json_body = headers.get("content-type").is_some_and(|v| v == "application/json");
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.lock().expect("lock").push((path.to_owned(), headers, parsed.clone()));
    if !json_body || !parsed.is_object() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": "JSON only"})));
    }
    let n = seen.lock().expect("lock").len();
    (
        StatusCode::OK,
        Json(
            json!({"access_token": format!("at-{n}"), "refresh_token": "rt-1", "expires_in": 3600, "token_type": "bearer"}),
        ),
    )
}

fn profile(host: &str) -> String {
    format!(
        "id: jsonprov
name: JSON Provider
environments:
  production: {{label: Production, default: true, vars: {{host: '{host}'}}}}
auth:
  grants: [authorization_code, refresh_token, client_credentials]
  endpoints:
    authorize: 'http://{{{{ env.host }}}}/authorize'
    token: 'http://{{{{ env.host }}}}/token'
    refresh: 'http://{{{{ env.host }}}}/refresh'
  client_auth: basic
  pkce: required
  token_request_format: json
  token_params: {{audience: api}}
  refresh_params: {{resource: 'https://api.example.com'}}
  refresh: {{send_client_secret: true, rotation: never, needs_scope: false}}
scopes:
  read: {{label: Read}}
actions:
  get_thing: {{name: Get Thing, method: GET, path: /thing, scopes: [read]}}
"
    )
}

#[tokio::test]
async fn json_token_requests_refresh_endpoint_and_basic_auth() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/refresh", axum::routing::post(refresh))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = support::TempDir::new("variants");
    std::fs::write(dir.path().join("jsonprov.yaml"), profile(&host)).expect("write");
    let registry = match Registry::load(dir.path()) {
        Ok(r) => r,
        Err(e) => panic!("{e}: {:#?}", e.diagnostics),
    };
    let config = ConnectorConfig {
        client_id: "client-1".into(),
        client_secret: Some("secret-1".to_owned().into()),
        selection: Selection {
            redirect_uri: Some(support::REDIRECT.into()),
            actions: vec!["get_thing".into()],
            ..Selection::default()
        },
        ..ConnectorConfig::default()
    };
    let http = HttpClient::new(&HttpOptions::default()).expect("http");
    let connector = Connector::new(registry.get("jsonprov").expect("profile"), config, http).expect("connector");

    let request = connector.authorization_request().expect("url");
    assert!(request.url.contains("scope=read"), "{}", request.url);
    let callback =
        Callback { code: Some("the-code".into()), state: Some(request.state.clone()), ..Callback::default() };
    let tokens = connector
        .finish_callback(&callback, request.code_verifier.as_ref(), request.nonce.as_deref())
        .await
        .expect("tokens");
    assert_eq!(tokens.grant, GrantUsed::AuthorizationCode);
    let refreshed = connector.refresh(&tokens).await.expect("refresh");
    assert_eq!(refreshed.access_token.expose_secret(), "at-2");
    connector.client_credentials().await.expect("client credentials");

    let seen = seen.lock().expect("lock").clone();
    let basic = |h: &HeaderMap| h.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (path, headers, body) = &seen[0];
    assert_eq!(path, "/token");
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "the-code");
    assert_eq!(body["redirect_uri"], support::REDIRECT);
    assert_eq!(body["audience"], "api");
    assert_eq!(body["code_verifier"].as_str().map(str::len), Some(43));
    assert!(body.get("client_secret").is_none(), "basic auth, not the body");
    // base64("client-1:secret-1")
    assert_eq!(basic(headers).as_deref(), Some("Basic Y2xpZW50LTE6c2VjcmV0LTE="));
    let (path, headers, body) = &seen[1];
    assert_eq!(path, "/refresh");
    assert_eq!((body["grant_type"].as_str(), body["refresh_token"].as_str()), (Some("refresh_token"), Some("rt-1")));
    assert_eq!(body["resource"], "https://api.example.com");
    assert!(basic(headers).is_some());
    let (path, _, body) = &seen[2];
    assert_eq!((path.as_str(), body["grant_type"].as_str()), ("/token", Some("client_credentials")));
}
