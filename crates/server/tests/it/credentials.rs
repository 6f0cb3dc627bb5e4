//! Credentials other than OAuth 2.0 (API keys, HTTP Basic, token exchange, none): linked
//! through the API and the connect page, tried with the profile's connection test before
//! anything is stored, handed out from `/credentials`, used against keyway-testkit's keyed
//! APIs, never stored in plaintext.

use crate::support::{Browser, Harness, connection_id_in};
use keyway_testkit::ProviderConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const API_KEY: &str = "testkit-api-key-0123456789";
const USER_NAME: &str = "testkit-user";
const PASSWORD: &str = "testkit-password";
const JWT_SECRET: &str = "testkit-jwt-secret-0123456789";

async fn integration(hub: &Harness, profile: &str) -> String {
    let (status, value) = hub.call(Method::POST, "/v1/integrations", Some(json!({"profile": profile}))).await;
    assert_eq!(status, StatusCode::CREATED, "{value}");
    value["id"].as_str().expect("id").to_owned()
}

async fn import(hub: &Harness, integration: &str, fields: Option<Value>) -> (StatusCode, Value) {
    let mut body = json!({"integration_id": integration, "end_user": {"id": "user-1"}});
    if let Some(fields) = fields {
        body["fields"] = fields;
    }
    hub.call(Method::POST, "/v1/connections", Some(body)).await
}

async fn connection_count(hub: &Harness) -> usize {
    let (status, list) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().map_or(0, Vec::len)
}

/// Calls `{api_base_url}/me` at the provider with what `/credentials` answered.
async fn use_credentials(credentials: &Value) -> StatusCode {
    let base = credentials["api_base_url"].as_str().expect("api_base_url");
    let mut request = reqwest::Client::new().get(format!("{base}/me"));
    for (name, value) in credentials["headers"].as_object().expect("headers") {
        request = request.header(name, value.as_str().expect("value"));
    }
    let query: Vec<(String, String)> = credentials["query"]
        .as_object()
        .expect("query")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    request.query(&query).send().await.expect("send").status()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_is_refused_with_the_providers_answer_then_linked_read_and_used() {
    let hub = Harness::start().await;
    let cases = [
        (
            "testkit-api-key",
            "api_key",
            json!({"api_key": "wrong-key-000000"}),
            json!({"api_key": API_KEY}),
            "x-api-key",
        ),
        (
            "testkit-basic",
            "basic",
            json!({"username": USER_NAME, "password": "not-the-pw-zq"}),
            json!({"username": USER_NAME, "password": PASSWORD}),
            "authorization",
        ),
        (
            "testkit-exchange",
            "token_exchange",
            json!({"username": USER_NAME, "password": "not-the-pw-zq"}),
            json!({"username": USER_NAME, "password": PASSWORD}),
            "authorization",
        ),
        (
            "testkit-jwt",
            "signed_jwt",
            json!({"key_id": "testkit-kid", "secret": "not-the-pw-zq"}),
            json!({"key_id": "testkit-kid", "secret": JWT_SECRET}),
            "authorization",
        ),
    ];
    for (profile, kind, wrong, right, header) in cases {
        let integration = integration(&hub, profile).await;
        let (status, refusal) = import(&hub, &integration, Some(wrong)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{profile}: {refusal}");
        assert_eq!(refusal["code"], "credentials_refused", "{profile}: {refusal}");
        let detail = refusal["detail"].as_str().expect("detail");
        assert!(detail.contains("401"), "{profile}: the provider's answer is diagnosed: {detail}");
        assert!(
            !detail.contains("not-the-pw-zq") && !detail.contains("wrong-key"),
            "{profile}: the refused value is not repeated: {detail}"
        );
        assert_eq!(connection_count(&hub).await, 0, "{profile}: a refusal stores nothing");

        let (status, connection) = import(&hub, &integration, Some(right)).await;
        assert_eq!(status, StatusCode::CREATED, "{profile}: {connection}");
        assert_eq!(connection["state"], "active");
        assert!(connection["verified_at"].is_i64(), "{profile}: the connection test ran: {connection}");
        assert!(connection.get("fields").is_none() && !connection.to_string().contains(PASSWORD));
        let id = connection["id"].as_str().expect("id");
        let (status, credentials) = hub.call(Method::GET, &format!("/v1/connections/{id}/credentials"), None).await;
        assert_eq!(status, StatusCode::OK, "{profile}: {credentials}");
        assert_eq!(credentials["kind"], kind);
        assert!(credentials["headers"][header].is_string(), "{profile}: {credentials}");
        assert_eq!(use_credentials(&credentials).await, StatusCode::OK, "{profile}: the credentials work");
        // The import and the read are in the audit trail, with no secret in it.
        let (status, trail) = hub.call(Method::GET, &format!("/v1/audit?connection={id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{trail}");
        let actions: Vec<&str> =
            trail["data"].as_array().expect("data").iter().filter_map(|r| r["action"].as_str()).collect();
        assert!(
            actions.contains(&"connection.imported") && actions.contains(&"credential.read"),
            "{profile}: {actions:?}"
        );
        assert!(!trail.to_string().contains(PASSWORD) && !trail.to_string().contains(API_KEY), "{profile}: {trail}");
        // `/token` is for access tokens; an API key connection holds none.
        if matches!(kind, "api_key" | "basic") {
            let (status, body) = hub.token(id).await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["code"], "no_access_token");
        }
        let (status, _) = hub.call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    // No credential at all: linked with no fields, used as is.
    let public = integration(&hub, "testkit-public").await;
    let (status, connection) = import(&hub, &public, None).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let id = connection["id"].as_str().expect("id");
    let (_, credentials) = hub.call(Method::GET, &format!("/v1/connections/{id}/credentials"), None).await;
    assert_eq!(credentials["kind"], "none");
    assert_eq!(credentials["headers"], json!({}));
    assert_eq!(use_credentials(&credentials).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn entered_fields_are_checked_before_any_call_and_oauth_imports_keep_their_shape() {
    let hub = Harness::start().await;
    let keyed = integration(&hub, "testkit-api-key").await;
    for (fields, pointer) in [
        (json!({}), "/fields"),
        (json!({"api_key": "has space"}), "/fields/api_key"),
        (json!({"api_key": "a\nb"}), "/fields/api_key"),
        (json!({"api_key": API_KEY, "extra": "x"}), "/fields/extra"),
    ] {
        let (status, refusal) = import(&hub, &keyed, Some(fields.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{fields}: {refusal}");
        assert_eq!(refusal["code"], "invalid_credentials", "{refusal}");
        let pointers: Vec<&str> = refusal["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter_map(|d| d["pointer"].as_str())
            .collect();
        assert!(pointers.contains(&pointer), "{fields}: {refusal}");
    }
    assert_eq!(hub.provider.counts().api_call("GET", "/keyed/api-key/me"), 0, "nothing reached the provider");
    let requests = hub.provider.requests();
    assert!(requests.iter().all(|r| !r.path.starts_with("/keyed/")), "no call was made for refused fields");
    // Tokens for a key-based integration, and fields for an OAuth one, are refused by name.
    let (status, refusal) = hub
        .call(
            Method::POST,
            "/v1/connections",
            Some(json!({"integration_id": keyed, "end_user": {"id": "u"}, "tokens": {"access_token": "t"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
    assert!(refusal.to_string().contains("/fields"), "{refusal}");
    // A key-based integration takes no OAuth client.
    let (status, refusal) = hub
        .call(Method::POST, "/v1/integrations", Some(json!({"profile": "testkit-api-key", "client_id": "abc"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_holds_no_entered_secret_or_exchanged_token_in_plaintext() {
    let hub = Harness::start().await;
    let keyed = integration(&hub, "testkit-api-key").await;
    let (status, _) = import(&hub, &keyed, Some(json!({"api_key": API_KEY}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let exchange = integration(&hub, "testkit-exchange").await;
    let (status, connection) =
        import(&hub, &exchange, Some(json!({"username": USER_NAME, "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let id = connection["id"].as_str().expect("id");
    let (_, credentials) = hub.call(Method::GET, &format!("/v1/connections/{id}/credentials"), None).await;
    let bearer = credentials["headers"]["authorization"].as_str().expect("bearer");
    let token = bearer.trim_start_matches("Bearer ");
    assert!(token.starts_with("kx_"), "{credentials}");
    let raw = hub.raw_database().await;
    for secret in [API_KEY, PASSWORD, token] {
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "`{secret}` is stored in plaintext");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sixty_second_exchanged_token_read_by_a_thousand_callers_on_three_instances_is_exchanged_once_per_lifetime() {
    let hub =
        Harness::start_with(ProviderConfig { exchange_lifetime: Duration::from_secs(60), ..Default::default() }).await;
    let exchange = integration(&hub, "testkit-exchange").await;
    let (status, connection) =
        import(&hub, &exchange, Some(json!({"username": USER_NAME, "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let id = connection["id"].as_str().expect("id").to_owned();
    assert_eq!(hub.provider.counts().exchange, 1, "linking exchanged once");
    let (b, _b) = hub.another_instance().await;
    let (c, _c) = hub.another_instance().await;
    let bases = [hub.base.clone(), b, c];
    for lifetime in 1..=2u64 {
        let past = Duration::from_secs(61);
        hub.clock.advance(past);
        hub.provider.advance_clock(past);
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let url = format!("{}/v1/connections/{id}/credentials", bases[i % 3]);
            let request = hub.api.get(url).bearer_auth(&hub.key);
            calls.spawn(async move { crate::support::read(request.send().await.expect("send")).await });
        }
        let answers = calls.join_all().await;
        let headers: std::collections::HashSet<String> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, StatusCode::OK, "{body}");
                body["headers"]["authorization"].as_str().expect("authorization").to_owned()
            })
            .collect();
        assert_eq!(headers.len(), 1, "every caller got the same token");
        assert_eq!(hub.provider.counts().exchange, 1 + lifetime, "one exchange per lifetime for 1,000 callers");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connect_page_asks_for_the_key_refuses_a_wrong_one_without_echoing_it_and_links_the_right_one() {
    let hub = Harness::start().await;
    let keyed = integration(&hub, "testkit-api-key").await;
    let session = hub.create_session(json!({"integrations": [keyed]})).await;
    let browser = Browser::new();
    let page = browser.open(session["connect_url"].as_str().expect("connect_url")).await;
    assert!(page.contains("type=\"password\"") && page.contains("name=\"field.api_key\""), "{page}");
    assert!(page.contains("Where do I find it?"), "the field's help is on the page");
    assert!(page.contains("<code>ProviderConfig::api_key</code>"), "its Markdown rendered as guides render it");
    let wrong = "wrong-key-0000000000";
    let (status, refused) =
        browser.submit(&hub.base, &keyed, &[("field.api_key", wrong)]).await.expect_err("a page, not a redirect");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.contains("refused these credentials") && refused.contains("401"), "{refused}");
    assert!(!refused.contains(wrong), "the refused key is not sent back");
    assert_eq!(connection_count(&hub).await, 0);
    let (status, done) =
        browser.submit(&hub.base, &keyed, &[("field.api_key", API_KEY)]).await.expect_err("the done page");
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(!done.contains(API_KEY));
    let id = connection_id_in(&done);
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "active", "{connection}");
    // Reconnecting replaces the key and keeps the id.
    let again = hub.create_session(json!({"connection_id": id})).await;
    let browser = Browser::new();
    browser.open(again["connect_url"].as_str().expect("connect_url")).await;
    let (status, done) =
        browser.submit(&hub.base, &keyed, &[("field.api_key", API_KEY)]).await.expect_err("the done page");
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(connection_id_in(&done), id);
    assert_eq!(connection_count(&hub).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_jwt_is_handed_out_until_due_then_signed_again_and_its_key_never_stored_in_plaintext() {
    let hub = Harness::start().await;
    let jwt = integration(&hub, "testkit-jwt").await;
    let (status, connection) = import(&hub, &jwt, Some(json!({"key_id": "testkit-kid", "secret": JWT_SECRET}))).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let id = connection["id"].as_str().expect("id");
    let path = format!("/v1/connections/{id}/credentials");
    let (_, first) = hub.call(Method::GET, &path, None).await;
    let (_, again) = hub.call(Method::GET, &path, None).await;
    assert_eq!(first["headers"], again["headers"], "a fresh JWT is handed out as it is");
    let expires = first["expires_at"].as_u64().expect("expires_at");
    let later = Duration::from_secs(301);
    hub.clock.advance(later);
    hub.provider.advance_clock(later);
    let (status, renewed) = hub.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["headers"], first["headers"], "a due JWT is signed again");
    assert!(renewed["expires_at"].as_u64() > Some(expires));
    assert_eq!(use_credentials(&renewed).await, StatusCode::OK, "the new JWT is accepted");
    let raw = hub.raw_database().await;
    assert!(!raw.windows(JWT_SECRET.len()).any(|w| w == JWT_SECRET.as_bytes()), "the key is stored encrypted");
    // A key the algorithm cannot use is the end user's to fix, before anything is stored.
    let rsa = integration(&hub, "testkit-jwt").await;
    let (status, refusal) = import(&hub, &rsa, Some(json!({"key_id": "testkit-kid", "secret": "x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
}
