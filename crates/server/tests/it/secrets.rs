//! Secrets at rest and in flight: none in the raw database files, in any log line at TRACE
//! (keyway's and its dependencies'), in `Debug` output, or in any response but the token
//! endpoint's access token. Key rotation re-encrypts every row.

use keyway_server::crypto::Keyring;
use keyway_server::store::{SqlStore, Store};
use reqwest::Method;
use serde_json::json;

use crate::support::{CLIENT_SECRET, Harness, USER};
use std::time::Duration;

use keyway_testkit::scratch::Captured;

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_the_database_file_the_logs_debug_output_or_other_responses() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Every thread of the runtime logs into the capture.
    let _ = tracing::subscriber::set_global_default(subscriber);

    let hub = Harness::start_with(keyway_testkit::ProviderConfig {
        rotate_refresh_tokens: true,
        require_pkce: true,
        ..Default::default()
    })
    .await;
    let integration = hub.create_integration(json!({"staged_client_secret": "staged-secret-value"})).await;
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.into(), "staged-secret-value".into(), hub.key.clone()];
    let mut responses = Vec::new();

    let session = hub.create_session(json!({})).await;
    secrets.push(session["token"].as_str().expect("token").to_owned());
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    let code = callback.split("code=").nth(1).and_then(|c| c.split('&').next()).expect("code").to_owned();
    secrets.push(code);
    let authorize = hub.provider.requests().into_iter().find(|r| r.path.ends_with("/authorize")).expect("authorize");
    let (_, done) = browser.get(&callback).await;
    responses.push(done.clone());
    let token_request = hub
        .provider
        .requests()
        .into_iter()
        .find(|r| r.form_value("grant_type") == Some("authorization_code"))
        .expect("exchange");
    secrets.push(token_request.form_value("code_verifier").expect("verifier").to_owned());
    let _ = authorize;
    let id = crate::support::connection_id_in(&done);

    let (_, first) = hub.token(&id).await;
    hub.clock.advance(Duration::from_secs(3 * 3600));
    hub.provider.advance_clock(Duration::from_secs(3 * 3600));
    let (_, second) = hub.token(&id).await;
    // Kept token fields are not credentials (Salesforce's `signature` only proves the
    // identity URL), but they are stored encrypted like the rest of the token set.
    let mut at_rest: Vec<String> = Vec::new();
    for token in [&first, &second] {
        secrets.push(token["access_token"].as_str().expect("access").to_owned());
        at_rest.push(token["fields"]["signature"].as_str().expect("signature").to_owned());
    }
    for r in hub.provider.requests() {
        if let Some(refresh) = r.form_value("refresh_token") {
            secrets.push(refresh.to_owned());
        }
    }
    let issued = hub.provider.issue_tokens("imported@example.com", "api refresh_token");
    secrets.push(issued["access_token"].as_str().expect("a").to_owned());
    secrets.push(issued["refresh_token"].as_str().expect("r").to_owned());
    let body = json!({"integration_id": integration, "end_user": {"id": "u2"},
        "tokens": {"access_token": issued["access_token"], "refresh_token": issued["refresh_token"], "fields": {"instance_url": hub.provider.base_url()}}});
    for (method, path, body) in [
        (Method::POST, "/v1/connections".to_owned(), Some(body)),
        (Method::GET, "/v1/connections".to_owned(), None),
        (Method::GET, format!("/v1/connections/{id}"), None),
        (Method::POST, format!("/v1/connections/{id}/test"), None),
        (Method::GET, "/v1/integrations".to_owned(), None),
        (
            Method::PATCH,
            format!("/v1/integrations/{integration}"),
            Some(json!({"client_secret": "patched-secret-value"})),
        ),
        (Method::GET, "/metrics".to_owned(), None),
        (Method::POST, "/v1/connections/conn_nope/refresh".to_owned(), None),
    ] {
        let (_, value) = hub.call(method, &path, body).await;
        responses.push(value.to_string());
    }
    secrets.push("patched-secret-value".into());
    // A key created through the API: its secret is in its creation's answer only.
    let (_, created) =
        hub.call(Method::POST, "/v1/api-keys", Some(json!({"name": "worker", "scopes": ["credentials:read"]}))).await;
    let worker = created["secret"].as_str().expect("secret").to_owned();
    secrets.push(worker.clone());
    let (_, worker_read) = crate::support::read(
        hub.api.get(format!("{}/v1/connections/{id}/token", hub.base)).bearer_auth(&worker).send().await.expect("send"),
    )
    .await;
    secrets.push(worker_read["access_token"].as_str().expect("access").to_owned());
    for path in ["/v1/api-keys", "/v1/audit?limit=1000"] {
        let (_, value) = hub.call(Method::GET, path, None).await;
        responses.push(value.to_string());
    }
    // The audit table, every column of every row.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&hub.db).await.expect("database");
    let rows = sqlx::query(
        "SELECT id, actor_kind, actor_id, actor_name, instance, action, connection_id, integration_id, target_id, \
         outcome, problem_code, request_id, detail FROM audit_log",
    )
    .fetch_all(&mut conn)
    .await
    .expect("audit rows");
    assert!(rows.len() >= 8, "the flows were recorded: {}", rows.len());
    let mut audit_text = String::new();
    for row in &rows {
        use sqlx::Row as _;
        for i in 0..13 {
            audit_text.push_str(&row.try_get::<Option<String>, _>(i).expect("text").unwrap_or_default());
            audit_text.push('\n');
        }
    }
    let debug = format!("{:?}", hub.hub);
    secrets.retain(|s| s.len() >= 8);
    assert!(secrets.len() >= 12, "{}", secrets.len());

    let database = hub.raw_database().await;
    assert!(database.len() > 4096, "the database was written");
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("request") && logs.contains("account linked"), "logging was captured");
    assert!(logs.contains("request_id=req_"), "request lines carry the request id");
    for value in &at_rest {
        assert!(
            !database.windows(value.len()).any(|w| w == value.as_bytes()),
            "a kept token field is in the database file"
        );
    }
    for secret in &secrets {
        assert!(memchr::memmem::find(&database, secret.as_bytes()).is_none(), "a secret is in the database file");
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        assert!(!debug.contains(secret.as_str()), "a secret is in Debug output: {}", &secret[..6]);
        assert!(!audit_text.contains(secret.as_str()), "a secret is in the audit table: {}", &secret[..6]);
        for response in &responses {
            assert!(!response.contains(secret.as_str()), "a secret is in a response: {response}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_reencrypts_every_row_and_the_old_key_can_then_go() {
    let mut hub = Harness::start().await;
    let integration = hub.create_integration(json!({"staged_client_secret": "staged-secret-value"})).await;
    let id = hub.link(&integration).await;
    // Leave an authorization pending too (it holds an encrypted PKCE verifier).
    let session = hub.create_session(json!({})).await;
    let _pending = hub.authorize(&session, &integration, USER).await;
    let (_, before) = hub.token(&id).await;

    let old = hub.keys_text.clone();
    let new = Keyring::generate_line();
    let both = Keyring::parse(&format!("{new}\n{old}")).expect("keys");
    let store = SqlStore::open(&hub.db).await.expect("store");
    assert!(store.cells_not_under(both.primary_id(), 100).await.expect("scan").len() >= 4);
    let (done, failed) = keyway_server::rotate_keys(&store, &both).await.expect("rotate");
    assert_eq!((done >= 4, failed), (true, 0), "{done}");
    assert!(store.cells_not_under(both.primary_id(), 100).await.expect("scan").is_empty());
    // Resumable: running again finds nothing to do.
    assert_eq!(keyway_server::rotate_keys(&store, &both).await.expect("again"), (0, 0));

    // The new key alone now serves everything.
    hub.keys_text = new;
    hub.restart().await;
    let (status, after) = hub.token(&id).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{after}");
    assert_eq!(after["access_token"], before["access_token"]);
    hub.clock.advance(Duration::from_secs(3 * 3600));
    hub.provider.advance_clock(Duration::from_secs(3 * 3600));
    let (status, refreshed) = hub.token(&id).await;
    assert_eq!(status, reqwest::StatusCode::OK, "the client secret decrypts: {refreshed}");

    // A key file without the key a row needs: rotation says so instead of looping.
    let stranger = Keyring::parse(&Keyring::generate_line()).expect("keys");
    let (done, failed) = keyway_server::rotate_keys(&store, &stranger).await.expect("rotate");
    assert_eq!(done, 0);
    assert!(failed >= 3, "{failed}");
}
