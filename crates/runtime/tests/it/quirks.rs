//! The OAuth 2.0 and token-exchange quirks a profile can declare, each against a small
//! provider written here that insists on it, over loopback HTTP: renamed authorization
//! parameters, the code under another name, a token set nested in the answer, a GET
//! exchange whose answer says when the token expires as a date-time.

use crate::support;

use axum::Json;
use axum::extract::{Query, State};
use keyway_runtime::{Callback, Connector, ConnectorConfig, HttpClient, HttpOptions, Registry, Selection};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

async fn token(State(seen): State<Seen>, body: String) -> Json<Value> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    seen.lock().expect("lock").push(form);
    // Slack's user-token shape: no token on top, the user's token set under `authed_user`.
    Json(json!({
        "ok": true,
        "team": {"id": "T1"},
        "authed_user": {"id": "U1", "access_token": "xoxp-user", "refresh_token": "r-1", "expires_in": 43200, "scope": "chat:write"},
    }))
}

async fn login(
    State(seen): State<Seen>,
    Query(query): Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    seen.lock().expect("lock").push(query.clone());
    if query.get("key").map(String::as_str) != Some("k-1") {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"error": "bad_key"})));
    }
    (axum::http::StatusCode::OK, Json(json!({"session": {"token": "s-1", "expires": "2030-01-01T00:00:00Z"}})))
}

fn profiles(host: &str) -> [(&'static str, String); 2] {
    [
        (
            "quirky",
            format!(
                "id: quirky
name: Quirky
environments:
  production: {{label: Production, default: true}}
auth:
  grants: [authorization_code, refresh_token]
  endpoints:
    authorize: 'http://{host}/authorize'
    token: 'http://{host}/token'
  pkce: off
  authorization_param_names: {{redirect_uri: redirect_url, client_id: appKey, response_type: ''}}
  callback_code_param: spapi_oauth_code
  refresh: {{send_client_secret: true, rotation: optional, needs_scope: false}}
  tokens:
    response_pointer: /authed_user
    keep_fields: [team]
scopes:
  chat:write: {{label: Write}}
actions:
  post: {{name: Post, method: POST, path: /chat.postMessage, scopes: ['chat:write']}}
"
            ),
        ),
        (
            "getexchange",
            format!(
                "id: getexchange
name: GET exchange
environments:
  production: {{label: Production, default: true}}
auth:
  kind: token_exchange
  fields:
    key: {{label: Key}}
  exchange:
    url: 'http://{host}/login'
    method: get
    secret_in_query: true
    body: {{key: '{{{{ fields.key }}}}'}}
    token_pointer: /session/token
    expires_at_pointer: /session/expires
  apply:
    headers: {{Authorization: 'Session {{{{ token.access_token }}}}'}}
"
            ),
        ),
    ]
}

async fn start() -> (Arc<Registry>, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/login", axum::routing::get(login))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = support::TempDir::new("quirks");
    for (id, text) in profiles(&host) {
        std::fs::write(dir.path().join(format!("{id}.yaml")), text).expect("write");
    }
    let registry = match Registry::load(dir.path()) {
        Ok(r) => r,
        Err(e) => panic!("{e}: {:#?}", e.diagnostics),
    };
    (Arc::new(registry), seen)
}

#[tokio::test]
async fn renamed_parameters_another_code_name_and_a_nested_token_set() {
    let (registry, seen) = start().await;
    let config = ConnectorConfig {
        client_id: "client-1".into(),
        client_secret: Some("secret-1".to_owned().into()),
        selection: Selection {
            redirect_uri: Some(support::REDIRECT.into()),
            actions: vec!["post".into()],
            ..Selection::default()
        },
        ..ConnectorConfig::default()
    };
    let http = HttpClient::new(&HttpOptions::default()).expect("http");
    let connector = Connector::new(registry.get("quirky").expect("profile"), config, http).expect("connector");
    let request = connector.authorization_request().expect("url");
    let url = url::Url::parse(&request.url).expect("url");
    let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert!(names.contains(&"appKey".to_owned()) && names.contains(&"redirect_url".to_owned()), "{names:?}");
    for gone in ["client_id", "redirect_uri", "response_type"] {
        assert!(!names.iter().any(|n| n == gone), "`{gone}` is renamed or left out: {names:?}");
    }
    assert!(names.contains(&"state".to_owned()), "state is never renamed");
    // The code arrives as `spapi_oauth_code`; a `code` parameter is not it.
    let query = format!("code=not-it&spapi_oauth_code=the-code&state={}", request.state);
    let tokens = connector.finish_callback(&Callback::from_query(&query), None, None).await.expect("tokens");
    assert_eq!(seen.lock().expect("lock")[0].get("code").map(String::as_str), Some("the-code"));
    assert_eq!(tokens.access_token.expose_secret(), "xoxp-user", "the nested token set");
    assert_eq!(tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()), Some("r-1".to_owned()));
    assert!(tokens.expires_at.is_some());
    assert_eq!(tokens.fields["team"], json!({"id": "T1"}), "kept fields come from the top level");
    let missing = connector.finish_callback(&Callback::from_query("code=x&state=s"), None, None).await;
    assert!(missing.is_err_and(|e| e.to_string().contains("spapi_oauth_code")));
}

#[tokio::test]
async fn a_get_exchange_reads_an_rfc_3339_expiry() {
    let (registry, seen) = start().await;
    let http = HttpClient::new(&HttpOptions::default()).expect("http");
    let connector = Connector::new(registry.get("getexchange").expect("profile"), ConnectorConfig::default(), http)
        .expect("connector");
    let fields = connector.check_fields([("key".to_owned(), "k-1".to_owned())].into_iter().collect()).expect("fields");
    let tokens = connector.exchange(&fields).await.expect("exchanged");
    assert_eq!(tokens.access_token.expose_secret(), "s-1");
    assert_eq!(tokens.expires_at, Some(1_893_456_000), "2030-01-01T00:00:00Z");
    assert_eq!(seen.lock().expect("lock")[0].get("key").map(String::as_str), Some("k-1"), "sent in the query");
    let credential = connector.credential(&fields, Some(&tokens)).expect("credential");
    let headers: Vec<(String, String)> =
        credential.headers().map(|(k, v)| (k.to_string(), v.expose_secret().to_owned())).collect();
    assert_eq!(headers, vec![("authorization".to_owned(), "Session s-1".to_owned())]);
    let wrong = connector.check_fields([("key".to_owned(), "k-2".to_owned())].into_iter().collect()).expect("fields");
    assert!(
        connector.exchange(&wrong).await.is_err_and(|e| e.diagnosis().is_some()),
        "a 401 is the provider's refusal"
    );
}

#[tokio::test]
async fn an_rs256_jwt_is_signed_with_a_multi_line_pem_key_and_verifies() {
    let (private_pem, public_pem) = keyway_testkit::rsa_key_pair();
    let dir = support::TempDir::new("signed-rs256");
    std::fs::write(
        dir.path().join("signed.yaml"),
        "id: signed
name: Signed
environments:
  production: {label: Production, default: true}
auth:
  kind: signed_jwt
  fields:
    issuer: {label: Issuer ID, secret: false}
    key: {label: Private key, multiline: true}
  jwt:
    algorithm: RS256
    key: '{{ fields.key }}'
    key_id: kid-1
    claims: {iss: '{{ fields.issuer }}', aud: [api-v1], scope: ['GET /v1/apps']}
    lifetime_seconds: 900
  apply:
    headers: {Authorization: 'Bearer {{ token.access_token }}'}
",
    )
    .expect("write");
    let registry = match Registry::load(dir.path()) {
        Ok(r) => r,
        Err(e) => panic!("{e}: {:#?}", e.diagnostics),
    };
    let http = HttpClient::new(&HttpOptions::default()).expect("http");
    let connector =
        Connector::new(registry.get("signed").expect("profile"), ConnectorConfig::default(), http).expect("connector");
    let entered = [("issuer".to_owned(), "iss-1".to_owned()), ("key".to_owned(), private_pem.clone())];
    let fields = connector.check_fields(entered.into_iter().collect()).expect("a PEM key's line breaks are allowed");
    let tokens = connector.sign_jwt(&fields).expect("signed");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["api-v1"]);
    validation.set_issuer(&["iss-1"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("public key");
    let jwt = tokens.access_token.expose_secret();
    let decoded = jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("verifies");
    assert_eq!(decoded.header.kid.as_deref(), Some("kid-1"));
    assert_eq!(decoded.claims["scope"], json!(["GET /v1/apps"]));
    let (iat, exp) = (decoded.claims["iat"].as_u64().expect("iat"), decoded.claims["exp"].as_u64().expect("exp"));
    assert_eq!(exp - iat, 900);
    assert_eq!(tokens.expires_at, Some(exp));
    // A line break in a one-line field is still refused.
    let bad = [("issuer".to_owned(), "a\nb".to_owned()), ("key".to_owned(), private_pem.clone())];
    assert!(connector.check_fields(bad.into_iter().collect()).is_err());
}
