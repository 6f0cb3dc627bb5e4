//! No secret in any log line, error text or `Debug` output: every flow runs with a
//! subscriber capturing all events at TRACE level (keyway's and its dependencies'), then
//! every secret seen on the way is searched for.

use crate::support;

use keyway_runtime::{ConnectorConfig, DevicePolling, MemoryTokenStore, RefreshPolicy, TokenKind, TokenManager};
use keyway_testkit::{Endpoint, Fault, ProviderConfig};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use support::World;

use keyway_testkit::scratch::Captured;

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (private_pem, public_pem) = keyway_testkit::rsa_key_pair();
    // A timeout that leaves every normal answer room on a loaded machine, and a delay fault
    // far longer than it: which request times out never depends on the machine's speed.
    let world = World::start_with(
        ProviderConfig {
            require_pkce: true,
            rotate_refresh_tokens: true,
            device_interval: 0,
            jwt_public_key_pem: Some(public_pem.clone()),
            client_secret: "staged-secret-value".into(),
            ..ProviderConfig::default()
        },
        keyway_runtime::HttpOptions { timeout: Duration::from_secs(2), ..Default::default() },
    )
    .await;
    let config = ConnectorConfig {
        client_secret: Some("main-secret-value".to_owned().into()),
        staged_client_secret: Some("staged-secret-value".to_owned().into()),
        private_key: Some(private_pem.clone().into()),
        ..world.config()
    };
    let connector = Arc::new(world.connector(config.clone()));
    let mut secrets: Vec<String> = vec!["main-secret-value".into(), "staged-secret-value".into()];
    // The key's base64 body lines.
    secrets.extend(private_pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned));
    let mut texts: Vec<String> = vec![format!("{config:?}"), format!("{connector:?}")];

    // Authorization code with PKCE: the verifier and the code are secrets too.
    let request = connector.authorization_request().expect("url");
    secrets.push(request.code_verifier.as_ref().expect("verifier").expose_secret().to_owned());
    texts.push(format!("{request:?}"));
    let location = world.provider.browse(&request.url, "ada@example.com").await.expect("redirect");
    let callback = keyway_runtime::Callback::from_query(location.split_once('?').expect("query").1);
    secrets.push(callback.code.clone().expect("code"));
    let tokens = connector
        .finish_callback(&callback, request.code_verifier.as_ref(), request.nonce.as_deref())
        .await
        .expect("tokens");
    let remember = |t: &keyway_runtime::TokenSet, secrets: &mut Vec<String>, texts: &mut Vec<String>| {
        secrets.push(t.access_token.expose_secret().to_owned());
        if let Some(r) = &t.refresh_token {
            secrets.push(r.expose_secret().to_owned());
        }
        texts.push(format!("{t:?}"));
    };
    remember(&tokens, &mut secrets, &mut texts);

    // Refresh through the manager, with a 500, a timeout and a malformed answer on the way.
    let manager = TokenManager::new(
        Arc::new(MemoryTokenStore::default()),
        world.clock.clone(),
        RefreshPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..Default::default()
        },
    );
    manager.insert("t1", connector.clone(), tokens.clone()).await.expect("insert");
    world.advance(Duration::from_secs(3 * 3600));
    world.provider.inject_faults(
        Endpoint::Token,
        [Fault::Status(500), Fault::Delay(Duration::from_secs(600)), Fault::MalformedJson],
    );
    let access = manager.access_token("t1").await.expect("refreshed after faults");
    texts.push(format!("{access:?}"));
    let current = manager.tokens("t1").expect("tokens");
    remember(&current, &mut secrets, &mut texts);

    // Errors: a rotated-out refresh token, a revoked one, bad key, device flow, client credentials.
    let stale = connector.refresh(&tokens).await.expect_err("rotated out");
    texts.push(format!("{stale} {stale:?}"));
    let cc = connector.client_credentials().await.expect("client credentials");
    remember(&cc, &mut secrets, &mut texts);
    let jwt = connector.jwt_bearer("ada@example.com").await.expect("jwt");
    remember(&jwt, &mut secrets, &mut texts);
    let started = connector.device_start().await.expect("device");
    texts.push(format!("{started:?}"));
    world.provider.approve_device(&started.user_code, "ada@example.com");
    let polling = DevicePolling { slow_down_increment: Duration::from_millis(10), max_wait: Duration::from_secs(5) };
    let device = connector.device_poll(&started, &polling).await.expect("device tokens");
    remember(&device, &mut secrets, &mut texts);
    let introspection = connector.introspect(&device.access_token, TokenKind::Access).await.expect("introspect");
    texts.push(format!("{introspection:?}"));
    connector.revoke(&device.access_token, TokenKind::Access).await.expect("revoke");
    let gone = connector.revoke(&device.access_token, TokenKind::Access).await.expect_err("already revoked");
    texts.push(format!("{gone} {gone:?}"));
    let bad_key = world.connector(ConnectorConfig {
        private_key: Some(
            "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWJ1dC1zZWNyZXQ=\n-----END PRIVATE KEY-----".into(),
        ),
        ..config.clone()
    });
    secrets.push("bm90LWEta2V5LWJ1dC1zZWNyZXQ=".into());
    let err = bad_key.jwt_bearer("ada@example.com").await.expect_err("bad key");
    texts.push(format!("{err} {err:?}"));
    let wrong = world.connector(ConnectorConfig {
        client_secret: Some("wrong-secret-value".to_owned().into()),
        staged_client_secret: None,
        ..config.clone()
    });
    secrets.push("wrong-secret-value".into());
    let err = wrong.client_credentials().await.expect_err("wrong secret");
    texts.push(format!("{err} {err:?}"));
    texts.push(format!("{manager:?}"));

    drop(_guard);
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("http exchange"), "the capture works: {logs}");
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    assert!(secrets.len() > 15, "secrets collected: {}", secrets.len());
    for secret in &secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret}");
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs:\n{logs}");
        for text in &texts {
            assert!(!text.contains(secret.as_str()), "a secret reached error or Debug text: {text}");
        }
    }
}
