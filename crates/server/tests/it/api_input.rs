//! Access control on every route of the OpenAPI document, and bad input to every endpoint:
//! each refusal is a problem document with a stable code and the right status, never a 5xx,
//! and nothing stored changes.

use crate::support::{Harness, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every operation of the OpenAPI document: (method, path with ids filled in, needs a key).
fn operations(id: &str) -> Vec<(Method, String, bool)> {
    let doc: Value = serde_json::from_str(&keyway_server::http::openapi()).expect("openapi");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let secured = op.get("security").is_some();
            out.push((method, path.replace("{id}", id), secured));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_secured_route_refuses_no_key_a_wrong_key_and_a_session_token() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await["token"].as_str().expect("session token").to_owned();
    // The right key with its last character changed (to one it is not).
    let last = if hub.key.ends_with('x') { "y" } else { "x" };
    let wrong_secret = format!("{}{last}", &hub.key[..hub.key.len() - 1]);
    assert_ne!(wrong_secret, hub.key);
    let ops = operations(&integration);
    assert!(ops.iter().filter(|(_, _, secured)| *secured).count() >= 15, "{ops:?}");
    for (method, path, secured) in ops {
        let url = format!("{}{path}", hub.base);
        let attempts: [Option<&str>; 5] =
            [None, Some("kwk_AAAAAAAAAAAA_wrong"), Some(&wrong_secret), Some(&session), Some("Basic x")];
        for key in attempts {
            let mut request =
                hub.api.request(method.clone(), &url).header("content-type", "application/json").body("{}");
            if let Some(key) = key {
                request = request.header(
                    "authorization",
                    if key.starts_with("Basic") { key.to_owned() } else { format!("Bearer {key}") },
                );
            }
            let (status, body) = read(request.send().await.expect("send")).await;
            if secured {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}: {body}");
                assert_eq!(body["code"], "unauthorized");
            } else {
                assert!(status.is_success(), "{method} {path} is open: {status} {body}");
            }
        }
    }
    let (status, problem) = hub.call(Method::GET, "/v1/nope", None).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    let (status, problem) = hub.call(Method::PUT, "/v1/integrations", None).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
}

/// Sends the headers of a request with a `size`-byte JSON body, then as much of the body as
/// the server takes, and reads the answer (a server may answer before reading a body it
/// refuses, and close).
async fn raw_request(hub: &Harness, method: &str, path: &str, size: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n",
        hub.key
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw);
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(raw.to_ascii_lowercase().contains("content-type: application/problem+json"), "{raw}");
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn counts(hub: &Harness) -> (usize, usize) {
    let (_, i) = hub.call(Method::GET, "/v1/integrations", None).await;
    let (_, c) = hub.call(Method::GET, "/v1/connections", None).await;
    (i["data"].as_array().map_or(0, Vec::len), c["data"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_problems_and_change_nothing() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let before = counts(&hub).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let patch = format!("/v1/integrations/{integration}");
    let bodies: Vec<(&str, String, &str)> = vec![
        ("application/json", "{".to_owned(), "malformed_json"),
        ("application/json", String::new(), "malformed_json"),
        ("application/json", "[]".to_owned(), "invalid_request"),
        ("application/json", "null".to_owned(), "invalid_request"),
        ("application/json", "\"s3cret\"".to_owned(), "invalid_request"),
        (
            "application/json",
            json!({"profile": "salesforce", "client_id": "x", "nope": 1}).to_string(),
            "invalid_request",
        ),
        ("application/json", json!({"profile": 5, "client_id": "x"}).to_string(), "invalid_request"),
        (
            "application/json",
            json!({"profile": "salesforce", "client_id": "x", "client_secret": 12345}).to_string(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"profile": "salesforce", "client_id": "x", "actions": "s3cret"}).to_string(),
            "invalid_request",
        ),
        ("application/json", deep, "malformed_json"),
        ("text/plain", "{}".to_owned(), "unsupported_media_type"),
        ("application/x-www-form-urlencoded", "a=b".to_owned(), "unsupported_media_type"),
    ];
    for path in ["/v1/integrations", "/v1/connect/sessions", "/v1/connections", patch.as_str()] {
        let method = if path == patch { Method::PATCH } else { Method::POST };
        for (content_type, body, code) in &bodies {
            // A PATCH takes any object: unknown and wrong-typed fields are caught by the typed check.
            let response = hub
                .request(method.clone(), path)
                .header("content-type", *content_type)
                .body(body.clone())
                .send()
                .await
                .expect("send");
            let (status, problem) = read(response).await;
            assert!(status.is_client_error(), "{method} {path} {code}: {status} {problem}");
            if !(path == patch && *code == "invalid_request" && body == "[]") {
                assert_eq!(
                    problem["code"].as_str(),
                    Some(*code),
                    "{method} {path} {}: {problem}",
                    &body[..body.len().min(60)]
                );
            }
            assert!(!problem.to_string().contains("s3cret"), "{problem}");
        }
    }
    // 10 MB: refused from its Content-Length, before the body is read.
    for path in ["/v1/integrations", "/v1/connect/sessions", "/v1/connections", patch.as_str()] {
        let method = if path == patch { "PATCH" } else { "POST" };
        let (status, problem) = raw_request(&hub, method, path, 10 * 1024 * 1024).await;
        assert_eq!((status, problem["code"].as_str()), (413, Some("body_too_large")), "{path}: {problem}");
    }
    // Unknown ids, and ids no route could name.
    for path in [
        "/v1/integrations/intg_nope".to_owned(),
        "/v1/connections/conn_nope".to_owned(),
        "/v1/connections/conn_nope/token".to_owned(),
        format!("/v1/connections/{}", "x".repeat(5000)),
        "/v1/connections/%FF%FE".to_owned(),
    ] {
        let (status, problem) = hub.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
    }
    for path in
        ["/v1/connections/conn_nope/refresh", "/v1/connections/conn_nope/test", "/v1/connections/conn_nope/revoke"]
    {
        let (status, _) = hub.call(Method::POST, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = hub.call(Method::DELETE, "/v1/integrations/intg_nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad queries.
    for query in ["state=bogus", "limit=abc", "limit=-1", "nope=1", "state=active&state=degraded"] {
        let (status, problem) = hub.call(Method::GET, &format!("/v1/connections?{query}"), None).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {status} {problem}"
        );
    }
    assert_eq!(counts(&hub).await, before, "nothing stored changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn configurations_the_profile_refuses_come_back_with_every_diagnostic_located() {
    let hub = Harness::start().await;
    let body = json!({
        "profile": "salesforce",
        "client_id": "3MVG9x",
        "environment": "staging",
        "actions": ["list_accounts", "delete_evrything"],
        "custom_scopes": ["api", "not_a_scope"],
        "parameters": {"my_domain": "evil.com/x", "my_domian": "x"},
        "pkce": false,
    });
    let (status, problem) = hub.call(Method::POST, "/v1/integrations", Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "urn:keyway:problem:invalid_configuration");
    let found: Vec<(String, String)> = problem["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| (d["code"].as_str().unwrap_or("?").to_owned(), d["pointer"].as_str().unwrap_or("").to_owned()))
        .collect();
    for (code, pointer) in [
        ("KW0501", "/actions/1"),
        ("KW0506", "/parameters/my_domain"),
        ("KW0506", "/parameters/my_domian"),
        ("KW0505", "/environment"),
        ("KW0502", "/custom_scopes/1"),
    ] {
        assert!(found.iter().any(|(c, p)| c == code && p == pointer), "{code} at {pointer} in {found:?}");
    }
    assert!(found.iter().any(|(_, p)| p.starts_with("/custom_scopes")), "{found:?}");
    assert!(problem["diagnostics"].as_array().expect("d").iter().all(|d| d["message"].is_string()));
    let (status, problem) =
        hub.call(Method::POST, "/v1/integrations", Some(json!({"profile": "salesforse", "client_id": "x"}))).await;
    assert_eq!(
        (status, problem["diagnostics"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/profile"))
    );
    assert_eq!(problem["diagnostics"][0]["fix"], "did you mean `salesforce`?");
    for (field, value) in [
        ("return_url", json!("javascript:alert(1)")),
        ("return_url", json!("http://example.com/x")),
        ("return_url", json!("https://user:pw@example.com/")),
        ("allowed_origins", json!(["https://a.example.com/path"])),
        ("allowed_origins", json!(["*"])),
        ("end_user", json!({"id": ""})),
        ("integrations", json!(["intg_nope"])),
        ("integrations", json!([])),
    ] {
        let mut session = json!({"end_user": {"id": "u"}});
        session[field] = value.clone();
        let (status, problem) = hub.call(Method::POST, "/v1/connect/sessions", Some(session)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field} {value}: {problem}");
        assert!(
            problem["diagnostics"][0]["pointer"].as_str().is_some_and(|p| p.starts_with(&format!("/{field}"))),
            "{problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_request_id_the_callers_when_safe_and_problems_quote_it() {
    let hub = Harness::start().await;
    let id_of = |r: &reqwest::Response| {
        r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned).expect("x-request-id")
    };
    // Ours when the caller sends none: open routes, pages, assets and API answers alike.
    for path in ["/healthz", "/openapi.json", "/assets/keyway.css", "/guide/nope", "/v1/integrations"] {
        let response = hub.request(Method::GET, path).send().await.expect("send");
        let id = id_of(&response);
        assert!(id.starts_with("req_") && id.len() == 26, "{path}: {id}");
    }
    // The caller's, kept, when it is safe; a problem document quotes it.
    let response =
        hub.request(Method::GET, "/v1/connections/conn_nope").header("x-request-id", "web-7f3a.42:b_c").send().await;
    let response = response.expect("send");
    assert_eq!(id_of(&response), "web-7f3a.42:b_c");
    let (status, problem) = read(response).await;
    assert_eq!((status, problem["request_id"].as_str()), (StatusCode::NOT_FOUND, Some("web-7f3a.42:b_c")));
    // Refused before any handler (no key): still the caller's id, in the header and the body.
    let response = hub
        .api
        .get(format!("{}/v1/integrations", hub.base))
        .header("x-request-id", "abc-1")
        .send()
        .await
        .expect("send");
    assert_eq!(id_of(&response), "abc-1");
    assert_eq!(read(response).await.1["request_id"], "abc-1");
    // Unsafe ones are replaced, never echoed: too long, spaces, quotes, non-ASCII.
    let long = "a".repeat(65);
    for unsafe_id in [long.as_str(), "a b", "a\"b", "a<b>", "é"] {
        let response = hub.request(Method::GET, "/v1/nope").header("x-request-id", unsafe_id).send().await;
        let response = response.expect("send");
        let id = id_of(&response);
        assert!(id.starts_with("req_") && id != unsafe_id, "{unsafe_id:?} -> {id}");
        assert_eq!(read(response).await.1["request_id"].as_str(), Some(id.as_str()));
    }
}
