//! Client credentials, JWT bearer, the device flow, and an app that is not active yet.

use std::time::Duration;

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyway_testkit::{ProviderConfig, TestProvider, rsa_key_pair};
use serde_json::json;

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[tokio::test]
async fn client_credentials_issue_a_token_for_the_run_as_user() {
    let provider = start_default().await;
    let form =
        [("grant_type", "client_credentials"), ("client_id", "3MVG9testkit"), ("client_secret", "testkit-secret")];
    let answer = post_form(&provider.token_url(), &form).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert!(json.get("refresh_token").is_none());
    assert!(json.get("expires_in").is_none());
    let info = get_bearer(&provider.userinfo_url(), &s(&json, "access_token")).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.str("preferred_username"), "integration@example.com");
    assert_eq!(provider.active_refresh_tokens("integration@example.com"), 0);

    post_form(&provider.token_url(), &form[..2]).await.assert_error(
        401,
        "invalid_client",
        "invalid client credentials",
    );
    let wrong_id =
        [("grant_type", "client_credentials"), ("client_id", "3MVG9other"), ("client_secret", "testkit-secret")];
    post_form(&provider.token_url(), &wrong_id).await.assert_error(
        400,
        "invalid_client_id",
        "client identifier invalid",
    );

    let no_user = start(ProviderConfig { client_credentials_user: None, ..ProviderConfig::default() }).await;
    post_form(&no_user.token_url(), &form).await.assert_error(
        400,
        "invalid_grant",
        "no client credentials user enabled",
    );
    assert_eq!(no_user.counts().grant("client_credentials"), 1);
}

fn jwt_provider_config(public_pem: &str) -> ProviderConfig {
    ProviderConfig { jwt_public_key_pem: Some(public_pem.to_owned()), ..ProviderConfig::default() }
}

fn assertion(private_pem: &str, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("private key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("sign")
}

fn claims(provider: &TestProvider, iss: &str, sub: &str, exp_in: i64) -> serde_json::Value {
    let now = i64::try_from(provider.now().as_secs()).expect("time fits");
    json!({"iss": iss, "sub": sub, "aud": provider.base_url(), "exp": now + exp_in})
}

async fn jwt_grant(provider: &TestProvider, assertion: &str) -> Answer {
    post_form(&provider.token_url(), &[("grant_type", JWT_GRANT), ("assertion", assertion)]).await
}

#[tokio::test]
async fn jwt_bearer_verifies_the_assertion() {
    let (private_pem, public_pem) = rsa_key_pair();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let provider = start(jwt_provider_config(public_pem)).await;

    let good = assertion(private_pem, &claims(&provider, "3MVG9testkit", "jwt@example.com", 180));
    let answer = jwt_grant(&provider, &good).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert!(json.get("refresh_token").is_none());
    let info = get_bearer(&provider.userinfo_url(), &s(&json, "access_token")).await;
    assert_eq!(info.str("preferred_username"), "jwt@example.com");

    // Salesforce's own audiences are accepted by default
    let mut salesforce_aud = claims(&provider, "3MVG9testkit", "jwt@example.com", 180);
    salesforce_aud["aud"] = json!("https://login.salesforce.com");
    assert_eq!(jwt_grant(&provider, &assertion(private_pem, &salesforce_aud)).await.status, 200);

    // wrong issuer
    let wrong_iss = assertion(private_pem, &claims(&provider, "3MVG9other", "jwt@example.com", 180));
    let answer = jwt_grant(&provider, &wrong_iss).await;
    assert_eq!((answer.status, answer.error().0.as_str()), (400, "invalid_grant"), "{}", answer.body);

    // wrong audience
    let mut wrong_aud = claims(&provider, "3MVG9testkit", "jwt@example.com", 180);
    wrong_aud["aud"] = json!("https://example.com");
    let answer = jwt_grant(&provider, &assertion(private_pem, &wrong_aud)).await;
    assert_eq!((answer.status, answer.error().0.as_str()), (400, "invalid_grant"), "{}", answer.body);

    // expired per the provider's clock, although still valid by the system clock
    provider.advance_clock(Duration::from_secs(600));
    let answer = jwt_grant(&provider, &good).await;
    answer.assert_error(400, "invalid_grant", "expired assertion");

    // garbage and missing assertions
    jwt_grant(&provider, "not.a.jwt").await.assert_error(400, "invalid_grant", "invalid assertion");
    post_form(&provider.token_url(), &[("grant_type", JWT_GRANT)]).await.assert_error(
        400,
        "invalid_grant",
        "invalid assertion",
    );
    assert_eq!(provider.counts().grant(JWT_GRANT), 7);
}

#[tokio::test]
async fn jwt_bearer_rejects_other_keys_and_unconfigured_providers() {
    let (private_pem, public_pem) = rsa_key_pair();
    let (other_private, _) = keyway_testkit::generate_rsa_key_pair();
    let provider = start(jwt_provider_config(public_pem)).await;
    let signed_by_other = assertion(&other_private, &claims(&provider, "3MVG9testkit", "jwt@example.com", 180));
    jwt_grant(&provider, &signed_by_other).await.assert_error(400, "invalid_grant", "invalid assertion");

    let unconfigured = start_default().await;
    let good = assertion(private_pem, &claims(&unconfigured, "3MVG9testkit", "jwt@example.com", 180));
    jwt_grant(&unconfigured, &good).await.assert_error(400, "invalid_grant", "invalid assertion");

    // a configured audience replaces the defaults
    let custom = start(ProviderConfig {
        jwt_audience: Some("https://aud.example".to_owned()),
        ..jwt_provider_config(public_pem)
    })
    .await;
    let default_aud = assertion(private_pem, &claims(&custom, "3MVG9testkit", "jwt@example.com", 180));
    assert_eq!(jwt_grant(&custom, &default_aud).await.status, 400);
    let mut custom_aud = claims(&custom, "3MVG9testkit", "jwt@example.com", 180);
    custom_aud["aud"] = json!(["https://aud.example"]);
    assert_eq!(jwt_grant(&custom, &assertion(private_pem, &custom_aud)).await.status, 200);
}

async fn device_start(provider: &TestProvider, scope: &str) -> serde_json::Value {
    let answer = post_form(
        &provider.token_url(),
        &[("response_type", "device_code"), ("client_id", "3MVG9testkit"), ("scope", scope)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn device_poll(provider: &TestProvider, device_code: &str) -> Answer {
    post_form(&provider.token_url(), &[("grant_type", "device"), ("client_id", "3MVG9testkit"), ("code", device_code)])
        .await
}

#[tokio::test]
async fn device_flow_pending_slow_down_approve() {
    let provider = start_default().await;
    let start = device_start(&provider, "api refresh_token").await;
    let device_code = s(&start, "device_code");
    let user_code = s(&start, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(user_code.as_bytes()[4], b'-');
    assert_eq!(s(&start, "verification_uri"), format!("{}/setup/connect", provider.base_url()));
    assert_eq!(start["interval"], 5);

    device_poll(&provider, &device_code).await.assert_error(400, "authorization_pending", "authorization pending");
    // too soon (provider clock has not moved)
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "slow_down");
    provider.advance_clock(Duration::from_secs(5));
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "authorization_pending");

    assert!(!provider.approve_device("ZZZZ-0000", "dev@example.com"));
    assert!(provider.approve_device(&user_code, "dev@example.com"));
    assert!(!provider.approve_device(&user_code, "dev@example.com"), "no longer pending");
    provider.advance_clock(Duration::from_secs(5));
    let answer = device_poll(&provider, &device_code).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert!(json.get("refresh_token").is_some());
    assert_eq!(s(&json, "scope"), "api refresh_token");
    assert_eq!(provider.active_refresh_tokens("dev@example.com"), 1);
    let info = get_bearer(&provider.userinfo_url(), &s(&json, "access_token")).await;
    assert_eq!(info.str("preferred_username"), "dev@example.com");

    provider.advance_clock(Duration::from_secs(5));
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "invalid_grant", "a device code is single use");
    let counts = provider.counts();
    assert_eq!(counts.grant("device_code"), 1);
    assert_eq!(counts.grant("device"), 5);
}

#[tokio::test]
async fn device_flow_deny_expiry_and_forced_slow_down() {
    let provider =
        start(ProviderConfig { device_interval: 0, device_slow_down_polls: 2, ..ProviderConfig::default() }).await;
    let start = device_start(&provider, "api").await;
    assert_eq!(start["interval"], 0);
    let device_code = s(&start, "device_code");
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "slow_down");
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "slow_down");
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "authorization_pending");
    assert_eq!(device_poll(&provider, &device_code).await.error().0, "authorization_pending", "interval 0");
    assert!(provider.deny_device(&s(&start, "user_code")));
    device_poll(&provider, &device_code).await.assert_error(400, "access_denied", "end-user denied authorization");

    let start = device_start(&provider, "api").await;
    provider.advance_clock(Duration::from_secs(601));
    assert!(!provider.approve_device(&s(&start, "user_code"), "late@example.com"));
    assert_eq!(device_poll(&provider, &s(&start, "device_code")).await.error().0, "expired_token");

    // approval without a refresh scope: no refresh token, no approval counted
    let start = device_start(&provider, "api").await;
    assert!(provider.approve_device(&s(&start, "user_code").to_lowercase(), "dev@example.com"));
    let answer = device_poll(&provider, &s(&start, "device_code")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json().get("refresh_token").is_none());
    assert_eq!(provider.active_refresh_tokens("dev@example.com"), 0);

    // an unknown client cannot start
    let answer =
        post_form(&provider.token_url(), &[("response_type", "device_code"), ("client_id", "3MVG9nope")]).await;
    answer.assert_error(400, "invalid_client_id", "client identifier invalid");
}

#[tokio::test]
async fn an_inactive_app_answers_invalid_client_id_for_its_first_requests() {
    let provider = start(ProviderConfig { inactive_for_first: 2, ..ProviderConfig::default() }).await;
    let form =
        [("grant_type", "client_credentials"), ("client_id", "3MVG9testkit"), ("client_secret", "testkit-secret")];
    for _ in 0..2 {
        post_form(&provider.token_url(), &form).await.assert_error(
            400,
            "invalid_client_id",
            "client identifier invalid",
        );
    }
    assert_eq!(post_form(&provider.token_url(), &form).await.status, 200);
    assert_eq!(provider.counts().token, 3);
}

#[tokio::test]
async fn unsupported_grant_types() {
    let provider = start_default().await;
    let form = [("grant_type", "password"), ("client_id", "3MVG9testkit"), ("username", "u"), ("password", "p")];
    post_form(&provider.token_url(), &form).await.assert_error(
        400,
        "unsupported_grant_type",
        "grant type not supported",
    );
    post_form(&provider.token_url(), &[]).await.assert_error(400, "unsupported_grant_type", "grant type not supported");
    let counts = provider.counts();
    assert_eq!(counts.token, 2);
    assert_eq!(counts.grant("password"), 1);
    assert_eq!(counts.by_grant.len(), 1);
}

#[tokio::test]
async fn an_expired_device_code_keeps_answering_expired_token() {
    let provider = start(ProviderConfig { device_interval: 0, ..ProviderConfig::default() }).await;
    let start = device_start(&provider, "api").await;
    provider.advance_clock(Duration::from_secs(600));
    for _ in 0..2 {
        device_poll(&provider, &s(&start, "device_code")).await.assert_error(
            400,
            "expired_token",
            "device code expired",
        );
    }
    device_poll(&provider, "DEVunknown").await.assert_error(400, "invalid_grant", "invalid device code");
    // Basic client authentication works for the device flow too
    let answer = Answer::read(
        http()
            .post(provider.token_url())
            .basic_auth("3MVG9testkit", Some("testkit-secret"))
            .form(&[("response_type", "device_code")])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["interval"], 0);
}
