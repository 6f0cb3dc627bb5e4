//! Every grant and every provider switch, end to end over loopback HTTP against the test
//! provider.

use crate::support;

use keyway_runtime::{
    Callback, DevicePolling, DiagnosisKind, ExpirySource, FlowError, GrantUsed, StateError, TokenKind,
};
use keyway_testkit::{Endpoint, ProviderConfig, wait_until};
use secrecy::ExposeSecret;
use std::time::Duration;
use support::World;

fn diagnosis(result: Result<keyway_runtime::TokenSet, FlowError>) -> keyway_runtime::Diagnosis {
    match result {
        Err(FlowError::Provider(d)) => *d,
        Err(other) => panic!("expected a provider error, got {other}"),
        Ok(_) => panic!("expected a provider error, got tokens"),
    }
}

#[tokio::test]
async fn code_flow_with_required_pkce_keeps_salesforce_fields_and_learns_expiry_by_introspection() {
    let world = World::start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let connector = world.connector(world.config());
    assert!(connector.sends_pkce());
    let url = connector.begin_authorization("s1").expect("url");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("scope=api+refresh_token+offline_access"), "{url}");

    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    assert_eq!(tokens.grant, GrantUsed::AuthorizationCode);
    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.fields["instance_url"], world.provider.base_url());
    assert!(tokens.fields["id"].as_str().is_some_and(|id| id.contains("/id/")));
    assert!(tokens.fields.contains_key("signature"));
    // issued_at is a string of milliseconds; the token set reads it as such.
    let issued_at = tokens.issued_at_ms.expect("issued_at read");
    assert!(issued_at > 1_600_000_000_000, "{issued_at} is milliseconds");
    // No expires_in: the expiry comes from introspection's exp (2 hours by default).
    assert_eq!(tokens.expiry_source, ExpirySource::Introspection);
    let expires_at = tokens.expires_at.expect("expiry");
    let lifetime = expires_at as i64 - (issued_at / 1000) as i64;
    assert!((7190..=7210).contains(&lifetime), "lifetime {lifetime}");

    // The verifier the provider checked is the one of the challenge it saw.
    let exchange = world
        .provider
        .requests()
        .into_iter()
        .find(|r| r.form_value("grant_type") == Some("authorization_code"))
        .expect("code exchange");
    assert!(exchange.form_value("code_verifier").is_some_and(|v| v.len() >= 43));
    assert_eq!(exchange.form_value("redirect_uri"), Some(support::REDIRECT));
}

#[tokio::test]
async fn pkce_required_but_turned_off_is_diagnosed_as_configuration() {
    let world = World::start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let connector = world.connector(keyway_runtime::ConnectorConfig { pkce: Some(false), ..world.config() });
    let url = connector.begin_authorization("s1").expect("url");
    assert!(!url.contains("code_challenge"), "{url}");
    let d = diagnosis(world.authorize(&connector, "ada@example.com").await);
    assert_eq!(d.kind, DiagnosisKind::FixConfiguration);
    assert_eq!(d.rule.as_deref(), Some("pkce_missing_code_challenge"));
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("Require Proof Key for Code Exchange")), "{d}");
    assert_eq!(world.provider.counts().token, 0, "no code exchange after an authorization error");
}

#[tokio::test]
async fn pkce_off_against_a_provider_that_does_not_require_it_works() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(keyway_runtime::ConnectorConfig { pkce: Some(false), ..world.config() });
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    assert!(tokens.refresh_token.is_some());
    let exchange = world.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert_eq!(exchange.form_value("code_verifier"), None);
}

#[tokio::test]
async fn state_is_single_use_bound_to_the_session_and_expires() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let url = connector.begin_authorization("alice").expect("url");
    let location = world.provider.browse(&url, "ada@example.com").await.expect("redirect");
    let callback = Callback::from_query(location.split_once('?').expect("query").1);
    // Another session cannot use it, and trying does not cancel it.
    let err = connector.complete_authorization("mallory", &callback).await.expect_err("wrong session");
    assert!(matches!(err, FlowError::State(StateError::WrongSession)), "{err}");
    connector.complete_authorization("alice", &callback).await.expect("rightful session");
    let err = connector.complete_authorization("alice", &callback).await.expect_err("reuse");
    assert!(matches!(err, FlowError::State(StateError::Unknown)), "{err}");
    // A forged state is unknown.
    let forged = Callback { state: Some("forged".into()), code: Some("x".into()), ..Callback::default() };
    assert!(matches!(
        connector.complete_authorization("alice", &forged).await,
        Err(FlowError::State(StateError::Unknown))
    ));
    // Ten minutes later the state is dead.
    let url = connector.begin_authorization("alice").expect("url");
    let location = world.provider.browse(&url, "ada@example.com").await.expect("redirect");
    world.advance(Duration::from_secs(601));
    let callback = Callback::from_query(location.split_once('?').expect("query").1);
    let err = connector.complete_authorization("alice", &callback).await.expect_err("expired");
    assert!(matches!(err, FlowError::State(StateError::Expired)), "{err}");
}

#[tokio::test]
async fn user_denial_is_diagnosed_from_the_redirect() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let d = diagnosis(world.authorize(&connector, "deny").await);
    assert_eq!(d.rule.as_deref(), Some("access_denied"));
    assert_eq!(d.kind, DiagnosisKind::Reauthorize);
}

#[tokio::test]
async fn refresh_sends_the_secret_when_the_app_requires_it() {
    let world = World::start(ProviderConfig { require_secret_on_refresh: true, ..ProviderConfig::default() }).await;
    let connector = world.connector(world.config());
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let refreshed = connector.refresh(&tokens).await.expect("refresh");
    assert_ne!(refreshed.access_token.expose_secret(), tokens.access_token.expose_secret());
    // Without rotation the refresh token is kept.
    assert_eq!(
        refreshed.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()),
        tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_owned())
    );
    let refresh = world.provider.requests().into_iter().rfind(|r| r.form_value("grant_type") == Some("refresh_token"));
    assert_eq!(refresh.expect("refresh request").form_value("client_secret"), Some("testkit-secret"));
}

#[tokio::test]
async fn refresh_without_the_secret_works_when_the_app_allows_it() {
    let world = World::start(ProviderConfig { require_secret_on_refresh: false, ..ProviderConfig::default() }).await;
    let connector =
        world.connector(keyway_runtime::ConnectorConfig { refresh_sends_secret: Some(false), ..world.config() });
    assert!(!connector.refresh_sends_secret());
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    connector.refresh(&tokens).await.expect("refresh without secret");
    let refresh = world.provider.requests().into_iter().rfind(|r| r.form_value("grant_type") == Some("refresh_token"));
    let refresh = refresh.expect("refresh request");
    assert_eq!(refresh.form_value("client_secret"), None);
    assert_eq!(refresh.form_value("client_id"), Some("3MVG9testkit"));
}

#[tokio::test]
async fn refresh_without_the_secret_when_the_app_requires_it_says_which_setting() {
    let world = World::start(ProviderConfig { require_secret_on_refresh: true, ..ProviderConfig::default() }).await;
    let connector =
        world.connector(keyway_runtime::ConnectorConfig { refresh_sends_secret: Some(false), ..world.config() });
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let d = diagnosis(connector.refresh(&tokens).await);
    assert_eq!(d.rule.as_deref(), Some("client_credentials_invalid"));
    assert_eq!(d.kind, DiagnosisKind::FixConfiguration);
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("uncheck **Require Secret for Refresh Token Flow**")), "{d}");
}

#[tokio::test]
async fn the_sixth_approval_revokes_the_first_and_the_diagnosis_says_why() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let mut connections = Vec::new();
    for _ in 0..6 {
        connections.push(world.authorize(&connector, "ada@example.com").await.expect("approval"));
    }
    assert_eq!(world.provider.active_refresh_tokens("ada@example.com"), 5);
    let d = diagnosis(connector.refresh(&connections[0]).await);
    assert_eq!(d.kind, DiagnosisKind::Reauthorize);
    assert_eq!(d.rule.as_deref(), Some("refresh_token_expired"));
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("more than 5 times")), "{d}");
    // The others still work.
    for tokens in &connections[1..] {
        connector.refresh(tokens).await.expect("later approvals live");
    }
}

#[tokio::test]
async fn app_not_active_yet_is_retry_later_with_the_activation_delay() {
    let world = World::start(ProviderConfig { inactive_for_first: 1, ..ProviderConfig::default() }).await;
    let connector = world.connector(world.config());
    let d = diagnosis(connector.client_credentials().await);
    assert_eq!(d.kind, DiagnosisKind::RetryLater);
    assert_eq!(d.rule.as_deref(), Some("client_id_invalid"));
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("Wait up to 10 minutes")), "{d}");
    assert!(d.hint.as_deref().is_some_and(|h| h.contains("Local test provider")), "{d}");
    connector.client_credentials().await.expect("active now");
}

#[tokio::test]
async fn client_credentials_returns_an_access_token_without_refresh_token() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let tokens = connector.client_credentials().await.expect("client credentials");
    assert_eq!(tokens.grant, GrantUsed::ClientCredentials);
    assert!(tokens.refresh_token.is_none());
    assert!(tokens.fields.contains_key("instance_url"));
    let world2 = World::start(ProviderConfig { client_credentials_user: None, ..ProviderConfig::default() }).await;
    let d = diagnosis(world2.connector(world2.config()).client_credentials().await);
    assert_eq!(d.provider.error, "invalid_grant");
}

#[tokio::test]
async fn jwt_bearer_signs_an_rs256_assertion_the_provider_verifies() {
    let (private_pem, public_pem) = keyway_testkit::rsa_key_pair();
    let world =
        World::start(ProviderConfig { jwt_public_key_pem: Some(public_pem.clone()), ..ProviderConfig::default() })
            .await;
    let connector = world
        .connector(keyway_runtime::ConnectorConfig { private_key: Some(private_pem.clone().into()), ..world.config() });
    let tokens = connector.jwt_bearer("ada@example.com").await.expect("jwt bearer");
    assert_eq!(tokens.grant, GrantUsed::JwtBearer);
    assert!(tokens.refresh_token.is_none());
    let request = world.provider.requests().into_iter().rfind(|r| r.path.ends_with("/token")).expect("request");
    assert_eq!(request.form_value("grant_type"), Some("urn:ietf:params:oauth:grant-type:jwt-bearer"));
    assert_eq!(request.form_value("client_secret"), None, "the assertion is the credential");

    // A key the provider does not know is refused.
    let stranger = rsa_pem_other();
    let connector =
        world.connector(keyway_runtime::ConnectorConfig { private_key: Some(stranger.into()), ..world.config() });
    let d = diagnosis(connector.jwt_bearer("ada@example.com").await);
    assert_eq!(d.provider.error, "invalid_grant");
    // Garbage is a configuration error, and the error does not quote it.
    let connector = world.connector(keyway_runtime::ConnectorConfig {
        private_key: Some(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----".into(),
        ),
        ..world.config()
    });
    let err = connector.jwt_bearer("ada@example.com").await.expect_err("bad key");
    assert!(matches!(err, FlowError::Configuration(_)), "{err}");
    assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
}

/// A second key pair, made here (the testkit's is shared by the process).
fn rsa_pem_other() -> String {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key");
    key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem").to_string()
}

#[tokio::test]
async fn device_flow_salesforce_variant_waits_through_pending_and_slow_down() {
    let world =
        World::start(ProviderConfig { device_interval: 0, device_slow_down_polls: 1, ..ProviderConfig::default() })
            .await;
    let connector = world.connector(world.config());
    let started = connector.device_start().await.expect("device start");
    assert!(!started.user_code.is_empty());
    assert!(started.verification_uri.starts_with(&world.provider.base_url()));
    let start = world.provider.requests().into_iter().rfind(|r| r.path.ends_with("/token")).expect("start");
    assert_eq!(start.form_value("response_type"), Some("device_code"));

    let polling = DevicePolling { slow_down_increment: Duration::from_millis(50), max_wait: Duration::from_secs(20) };
    let poll = {
        let connector = &connector;
        let started = &started;
        async move { connector.device_poll(started, &polling).await }
    };
    let approve = async {
        // Let it poll (slow_down, then pending) before the user approves.
        wait_until("three device polls", Duration::from_secs(30), || async {
            world.provider.counts().grant("device") >= 3
        })
        .await;
        assert!(world.provider.approve_device(&started.user_code, "ada@example.com"));
    };
    let (tokens, ()) = tokio::join!(poll, approve);
    let tokens = tokens.expect("device tokens");
    assert_eq!(tokens.grant, GrantUsed::DeviceCode);
    let polls: Vec<_> =
        world.provider.requests().into_iter().filter(|r| r.form_value("grant_type") == Some("device")).collect();
    assert!(polls.len() >= 3);
    assert!(polls.iter().all(|r| r.form_value("code").is_some()), "Salesforce polls with `code`");
}

#[tokio::test]
async fn device_flow_denied_is_diagnosed() {
    let world = World::start(ProviderConfig { device_interval: 0, ..ProviderConfig::default() }).await;
    let connector = world.connector(world.config());
    let started = connector.device_start().await.expect("device start");
    assert!(world.provider.deny_device(&started.user_code));
    let polling = DevicePolling { slow_down_increment: Duration::from_millis(10), max_wait: Duration::from_secs(5) };
    let d = diagnosis(connector.device_poll(&started, &polling).await);
    // The profile's `access_denied` rule is for the authorization redirect; at the token
    // endpoint the error is reported as the provider said it.
    assert_eq!(d.provider.error, "access_denied");
}

#[tokio::test]
async fn introspect_and_revoke() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let live = connector.introspect(&tokens.access_token, TokenKind::Access).await.expect("introspect");
    assert!(live.active);
    assert_eq!(live.username.as_deref(), Some("ada@example.com"));
    assert!(live.exp.is_some());
    let refresh = tokens.refresh_token.clone().expect("refresh token");
    connector.revoke(&refresh, TokenKind::Refresh).await.expect("revoke");
    // Revoking the refresh token revoked its access token too.
    let dead = connector.introspect(&tokens.access_token, TokenKind::Access).await.expect("introspect");
    assert!(!dead.active);
    let d = diagnosis(connector.refresh(&tokens).await);
    assert_eq!(d.kind, DiagnosisKind::Reauthorize);
}

#[tokio::test]
async fn a_hostile_my_domain_is_refused_before_any_request() {
    let world = World::start(ProviderConfig::default()).await;
    let profile = world.registry.get("salesforce-local").expect("profile");
    for hostile in [
        "evil.example.com",
        "acme.my.salesforce.com.evil.com",
        "acme.my.salesforce.com/@evil.com",
        "acme.my.salesforce.com#@evil.com",
        "127.0.0.1:1",
        "https://acme.my.salesforce.com",
        "acme.lightning.force.com",
        "acme.my.salesforce.com\r\nHost: evil",
        "ACME.MY.SALESFORCE.CO\u{212A}",
    ] {
        let mut config = world.config();
        config.selection.parameters.insert("my_domain".to_owned(), hostile.to_owned());
        let err = keyway_runtime::Connector::new(profile.clone(), config, world.http.clone()).expect_err(hostile);
        assert!(err.0.iter().any(|d| d.code == keyway_diagnostics::Code::InvalidParameter), "{hostile}: {err}");
    }
    assert_eq!(world.provider.counts(), keyway_testkit::Counts::default(), "no request was made");
    // A good one is accepted (and used in production, not in the local environment).
    let mut config = world.config();
    config.selection.parameters.insert("my_domain".to_owned(), "acme.my.salesforce.com".to_owned());
    config.selection.environment = Some("production".to_owned());
    let connector = keyway_runtime::Connector::new(profile, config, world.http.clone()).expect("accepted");
    let url = connector.authorization_request().expect("url").url;
    assert!(url.starts_with("https://acme.my.salesforce.com/services/oauth2/authorize?"), "{url}");
}

#[tokio::test]
async fn staged_secret_is_tried_when_the_main_one_is_refused() {
    let world = World::start(ProviderConfig { client_secret: "new-secret".into(), ..ProviderConfig::default() }).await;
    let connector = world.connector(keyway_runtime::ConnectorConfig {
        client_secret: Some("old-secret".to_owned().into()),
        staged_client_secret: Some("new-secret".to_owned().into()),
        ..world.config()
    });
    connector.client_credentials().await.expect("staged secret accepted");
    let secrets: Vec<_> = world
        .provider
        .requests()
        .into_iter()
        .filter_map(|r| r.form_value("client_secret").map(str::to_owned))
        .collect();
    assert_eq!(secrets[..2], ["old-secret", "new-secret"]);
    // From then on the staged secret goes first (introspection for the expiry used it).
    assert!(secrets[2..].iter().all(|s| s == "new-secret"), "{secrets:?}");
    connector.client_credentials().await.expect("again");
    let last = world.provider.requests().into_iter().rfind(|r| r.form_value("grant_type").is_some()).expect("request");
    assert_eq!(last.form_value("client_secret"), Some("new-secret"));
}

#[tokio::test]
async fn faults_are_transport_errors_and_malformed_json_never_echoes_the_body() {
    // A timeout that leaves every normal answer room on a loaded machine, and a delay fault
    // far longer than it: which request times out never depends on the machine's speed.
    let world = World::start_with(
        ProviderConfig::default(),
        keyway_runtime::HttpOptions { timeout: Duration::from_secs(2), ..Default::default() },
    )
    .await;
    let connector = world.connector(world.config());
    world.provider.inject_faults(
        Endpoint::Token,
        [
            keyway_testkit::Fault::Status(500),
            keyway_testkit::Fault::Delay(Duration::from_secs(600)),
            keyway_testkit::Fault::MalformedJson,
        ],
    );
    let e1 = connector.client_credentials().await.expect_err("500");
    assert!(e1.is_transient() && e1.to_string().contains("HTTP 500"), "{e1}");
    let e2 = connector.client_credentials().await.expect_err("timeout");
    assert!(e2.is_transient() && e2.to_string().contains("timed out"), "{e2}");
    let e3 = connector.client_credentials().await.expect_err("malformed");
    assert!(matches!(e3, FlowError::InvalidResponse { .. }), "{e3}");
    assert!(!e3.to_string().contains("tru"), "{e3}");
    connector.client_credentials().await.expect("recovered");
}

#[tokio::test]
async fn expires_in_when_the_provider_sends_it_needs_no_introspection() {
    let world = World::start(ProviderConfig { expires_in: Some(900), ..ProviderConfig::default() }).await;
    let connector = world.connector(world.config());
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    assert_eq!(tokens.expiry_source, ExpirySource::ExpiresIn);
    assert_eq!(tokens.expires_at, Some(world.clock_now() + 900));
    assert_eq!(world.provider.counts().introspect, 0);
}

#[tokio::test]
async fn errors_are_read_with_or_without_a_content_type() {
    for errors_without_content_type in [true, false] {
        let world = World::start(ProviderConfig { errors_without_content_type, ..ProviderConfig::default() }).await;
        let connector = world.connector(keyway_runtime::ConnectorConfig {
            client_secret: Some("wrong".to_owned().into()),
            ..world.config()
        });
        let d = diagnosis(connector.client_credentials().await);
        assert_eq!(d.provider.error, "invalid_client", "content type omitted: {errors_without_content_type}");
        assert_eq!(d.rule.as_deref(), Some("client_credentials_invalid"));
    }
}

#[tokio::test]
async fn every_request_carries_the_user_agent() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let requests: Vec<_> = world.provider.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert!(requests.len() >= 2);
    for r in requests {
        assert!(r.user_agent.as_deref().is_some_and(|ua| ua.starts_with("keyway/")), "{:?}", r.user_agent);
    }
}
