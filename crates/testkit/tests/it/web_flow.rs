//! The web server flow, refresh, rotation and the approval limit, over real loopback HTTP.

use std::time::Duration;

use crate::common::*;
use keyway_testkit::{DEFAULT_USER, ProviderConfig};

#[tokio::test]
async fn code_flow_with_pkce_returns_salesforce_shaped_tokens() {
    let provider = start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let (verifier, challenge) = pkce("a-verifier-of-enough-length-0123456789-abcdefghijklmnop");
    let code = get_code(
        &provider,
        "alice@example.com",
        &[("code_challenge", &challenge), ("code_challenge_method", "S256"), ("scope", "api refresh_token")],
    )
    .await;
    let before_ms = provider.now().as_millis();
    let answer = exchange(&provider, &code, &[("code_verifier", &verifier)]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let json = answer.json();
    assert!(s(&json, "access_token").starts_with("00D5g000004TEST"));
    assert!(!s(&json, "refresh_token").is_empty());
    assert!(!s(&json, "signature").is_empty());
    assert_eq!(s(&json, "scope"), "api refresh_token");
    assert_eq!(s(&json, "instance_url"), provider.base_url());
    let id = s(&json, "id");
    assert!(id.starts_with(&format!("{}/id/00D5g000004TESTAAA/005", provider.base_url())), "{id}");
    assert_eq!(s(&json, "token_type"), "Bearer");
    assert!(json.get("expires_in").is_none(), "Salesforce sends no expires_in");
    // issued_at: a string of milliseconds of the provider clock
    let issued_at: u128 = s(&json, "issued_at").parse().expect("issued_at is a number");
    assert!(issued_at >= before_ms && issued_at < before_ms + 60_000, "{issued_at} vs {before_ms}");
    // the id is stable per user
    let again = connect(&provider, "alice@example.com", "api").await;
    assert_eq!(s(&again, "id"), id);
    assert!(again.get("refresh_token").is_none(), "no refresh token without refresh_token/offline_access scope");
    let bob = connect(&provider, "bob@example.com", "api offline_access").await;
    assert_ne!(s(&bob, "id"), id);
    assert!(bob.get("refresh_token").is_some());
}

#[tokio::test]
async fn issued_at_follows_the_provider_clock_and_expires_in_when_configured() {
    let provider = start(ProviderConfig { expires_in: Some(7200), ..ProviderConfig::default() }).await;
    let first = connect(&provider, DEFAULT_USER, "api").await;
    assert_eq!(first["expires_in"], 7200);
    provider.advance_clock(Duration::from_secs(3600));
    let second = connect(&provider, DEFAULT_USER, "api").await;
    let a: u64 = s(&first, "issued_at").parse().expect("ms");
    let b: u64 = s(&second, "issued_at").parse().expect("ms");
    assert!(b - a >= 3_600_000, "{a} {b}");
    assert!(b - a < 3_700_000, "{a} {b}");
}

#[tokio::test]
async fn missing_challenge_when_required_redirects_with_error_and_state() {
    let provider = start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let config = ProviderConfig::default();
    let url = authorize_url(&provider, &default_authorize_params(&config, &[]));
    let location = provider.browse(&url, DEFAULT_USER).await.expect("redirect");
    assert!(location.starts_with(REDIRECT), "{location}");
    let params = location_params(&location);
    assert_eq!(param(&params, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&params, "error_description").as_deref(), Some("missing required code challenge"));
    assert_eq!(param(&params, "state").as_deref(), Some("st4te"));
    assert!(param(&params, "code").is_none());

    // a plain challenge method is refused
    let url = authorize_url(
        &provider,
        &default_authorize_params(&config, &[("code_challenge", "abc"), ("code_challenge_method", "plain")]),
    );
    let params = location_params(&provider.browse(&url, DEFAULT_USER).await.expect("redirect"));
    assert_eq!(param(&params, "error_description").as_deref(), Some("invalid code challenge method"));
}

#[tokio::test]
async fn wrong_or_missing_verifier_is_invalid_grant() {
    let provider = start_default().await;
    let (_, challenge) = pkce("right-verifier-right-verifier-right-verifier-0001");
    let extra = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let code = get_code(&provider, DEFAULT_USER, &extra).await;
    exchange(&provider, &code, &[("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-01")])
        .await
        .assert_error(400, "invalid_grant", "invalid code verifier");
    let code = get_code(&provider, DEFAULT_USER, &extra).await;
    exchange(&provider, &code, &[]).await.assert_error(400, "invalid_grant", "invalid code verifier");
}

#[tokio::test]
async fn state_is_echoed_exactly() {
    let provider = start_default().await;
    let config = ProviderConfig::default();
    let tricky = "a b&c=d/é+%20#x";
    let mut params = default_authorize_params(&config, &[]);
    params.retain(|(k, _)| *k != "state");
    params.push(("state", tricky));
    let location = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect("redirect");
    assert_eq!(param(&location_params(&location), "state").as_deref(), Some(tricky));
    // no state: none sent back
    params.retain(|(k, _)| *k != "state");
    let location = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect("redirect");
    assert!(!location.contains("state="), "{location}");
    assert!(location.starts_with(&format!("{REDIRECT}?code=")), "{location}");
}

#[tokio::test]
async fn redirect_uri_keeps_its_own_query() {
    let provider = start_default().await;
    let config = ProviderConfig::default();
    let mut params = default_authorize_params(&config, &[]);
    params.retain(|(k, _)| *k != "redirect_uri");
    params.push(("redirect_uri", "http://127.0.0.1:9/cb?tenant=42"));
    let location = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect("redirect");
    let params = location_params(&location);
    assert_eq!(param(&params, "tenant").as_deref(), Some("42"));
    assert!(param(&params, "code").is_some());
}

#[tokio::test]
async fn user_denial_redirects_access_denied() {
    let provider = start_default().await;
    let config = ProviderConfig::default();
    let url = authorize_url(&provider, &default_authorize_params(&config, &[]));
    let location = provider.browse(&url, keyway_testkit::DENY_USER).await.expect("redirect");
    assert!(location.contains("error=access_denied&error_description=end-user+denied+authorization"), "{location}");
    assert_eq!(param(&location_params(&location), "state").as_deref(), Some("st4te"));
}

#[tokio::test]
async fn unknown_client_and_bad_redirect_uri_do_not_redirect() {
    let provider = start(ProviderConfig {
        callback_urls: vec![REDIRECT.to_owned(), "https://app.example.com/cb".to_owned()],
        ..ProviderConfig::default()
    })
    .await;
    let config = ProviderConfig::default();
    let mut params = default_authorize_params(&config, &[]);
    params.retain(|(k, _)| *k != "client_id");
    params.push(("client_id", "3MVG9unknown"));
    let err = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect_err("no redirect");
    assert!(err.starts_with("400 "), "{err}");
    assert!(err.contains("invalid_client_id") && err.contains("client identifier invalid"), "{err}");

    let mut params = default_authorize_params(&config, &[]);
    params.retain(|(k, _)| *k != "redirect_uri");
    params.push(("redirect_uri", "https://evil.example.com/cb"));
    let err = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect_err("no redirect");
    assert!(err.starts_with("400 ") && err.contains("redirect_uri_mismatch"), "{err}");

    // a listed callback works
    let code = get_code(&provider, DEFAULT_USER, &[]).await;
    assert_eq!(exchange(&provider, &code, &[]).await.status, 200);
}

#[tokio::test]
async fn codes_are_single_use_bound_to_redirect_uri_and_expire() {
    let provider = start_default().await;
    let code = get_code(&provider, DEFAULT_USER, &[]).await;
    assert_eq!(exchange(&provider, &code, &[]).await.status, 200);
    exchange(&provider, &code, &[]).await.assert_error(400, "invalid_grant", "expired authorization code");

    let code = get_code(&provider, DEFAULT_USER, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://localhost:1717/other"),
        ("client_id", "3MVG9testkit"),
        ("client_secret", "testkit-secret"),
    ];
    post_form(&provider.token_url(), &form).await.assert_error(400, "invalid_grant", "redirect_uri mismatch");

    let code = get_code(&provider, DEFAULT_USER, &[]).await;
    provider.advance_clock(Duration::from_secs(15 * 60 + 1));
    exchange(&provider, &code, &[]).await.assert_error(400, "invalid_grant", "expired authorization code");

    exchange(&provider, "aPrxnot-a-code==", &[]).await.assert_error(400, "invalid_grant", "expired authorization code");
}

#[tokio::test]
async fn code_exchange_needs_the_client_secret() {
    let provider =
        start(ProviderConfig { staged_client_secret: Some("staged-secret".to_owned()), ..ProviderConfig::default() })
            .await;
    let code = get_code(&provider, DEFAULT_USER, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "3MVG9testkit"),
    ];
    post_form(&provider.token_url(), &form).await.assert_error(401, "invalid_client", "invalid client credentials");
    let mut wrong = form.to_vec();
    wrong.push(("client_secret", "wrong"));
    post_form(&provider.token_url(), &wrong).await.assert_error(401, "invalid_client", "invalid client credentials");
    // the staged secret works too, and HTTP Basic is accepted
    let answer = Answer::read(
        http()
            .post(provider.token_url())
            .basic_auth("3MVG9testkit", Some("staged-secret"))
            .form(&form[..3])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let recorded = provider.requests();
    let last = recorded.last().expect("recorded");
    assert_eq!(last.basic_auth, Some(("3MVG9testkit".to_owned(), "staged-secret".to_owned())));
    assert_eq!(last.form_value("client_id"), None);
}

#[tokio::test]
async fn refresh_with_and_without_secret() {
    let provider = start_default().await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    refresh(&provider, &rt, false).await.assert_error(401, "invalid_client", "invalid client credentials");
    let answer = refresh(&provider, &rt, true).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert!(json.get("refresh_token").is_none(), "no rotation: no new refresh token");
    assert_ne!(s(&json, "access_token"), s(&tokens, "access_token"));
    assert_eq!(s(&json, "scope"), "api refresh_token");
    assert_eq!(s(&json, "instance_url"), provider.base_url());
    assert_eq!(s(&json, "id"), s(&tokens, "id"));
    // the old access token still works (no rotation of access tokens on refresh)
    assert_eq!(get_bearer(&provider.userinfo_url(), &s(&tokens, "access_token")).await.status, 200);

    let lenient = start(ProviderConfig { require_secret_on_refresh: false, ..ProviderConfig::default() }).await;
    let tokens = connect(&lenient, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    assert_eq!(refresh(&lenient, &rt, false).await.status, 200);
    // a wrong secret fails even when none is required
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", "3MVG9testkit"),
        ("client_secret", "wrong"),
    ];
    post_form(&lenient.token_url(), &form).await.assert_error(401, "invalid_client", "invalid client credentials");
    refresh(&lenient, "5Aep861unknown", false).await.assert_error(400, "invalid_grant", "expired access/refresh token");
}

#[tokio::test]
async fn rotation_and_reuse_detection_revoke_the_family() {
    let provider = start(ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt1 = s(&tokens, "refresh_token");
    let answer = refresh(&provider, &rt1, true).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let rt2 = answer.str("refresh_token");
    let at2 = answer.str("access_token");
    assert_ne!(rt1, rt2);
    let answer = refresh(&provider, &rt2, true).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let rt3 = answer.str("refresh_token");
    let at3 = answer.str("access_token");
    assert_eq!(introspect(&provider, &rt2).await["active"], false, "rotated out");
    assert_eq!(introspect(&provider, &rt3).await["active"], true);

    // reuse of rt1: the whole family dies
    refresh(&provider, &rt1, true).await.assert_error(400, "invalid_grant", "expired access/refresh token");
    refresh(&provider, &rt3, true).await.assert_error(400, "invalid_grant", "expired access/refresh token");
    assert_eq!(get_bearer(&provider.userinfo_url(), &at2).await.status, 401);
    assert_eq!(get_bearer(&provider.userinfo_url(), &at3).await.status, 401);
    assert_eq!(get_bearer(&provider.userinfo_url(), &s(&tokens, "access_token")).await.status, 401);
    assert_eq!(provider.active_refresh_tokens(DEFAULT_USER), 0);
}

#[tokio::test]
async fn sixth_approval_revokes_the_least_recently_used() {
    let provider = start_default().await;
    let user = "five@example.com";
    let mut refresh_tokens = Vec::new();
    for _ in 0..5 {
        refresh_tokens.push(s(&connect(&provider, user, "api refresh_token").await, "refresh_token"));
    }
    assert_eq!(provider.active_refresh_tokens(user), 5);
    // using the oldest makes the second the least recently used
    assert_eq!(refresh(&provider, &refresh_tokens[0], true).await.status, 200);
    let other = connect(&provider, "someone-else@example.com", "api refresh_token").await;
    let sixth = connect(&provider, user, "api refresh_token").await;
    assert_eq!(provider.active_refresh_tokens(user), 5);
    assert_eq!(provider.active_refresh_tokens("someone-else@example.com"), 1);
    refresh(&provider, &refresh_tokens[1], true).await.assert_error(
        400,
        "invalid_grant",
        "expired access/refresh token",
    );
    for rt in [&refresh_tokens[0], &refresh_tokens[2], &refresh_tokens[3], &refresh_tokens[4]] {
        assert_eq!(refresh(&provider, rt, true).await.status, 200);
    }
    assert_eq!(refresh(&provider, &s(&sixth, "refresh_token"), true).await.status, 200);
    assert_eq!(refresh(&provider, &s(&other, "refresh_token"), true).await.status, 200);
    // tokens without a refresh scope are not approvals
    connect(&provider, user, "api").await;
    assert_eq!(provider.active_refresh_tokens(user), 5);
}

#[tokio::test]
async fn the_oauth2_crate_speaks_to_the_provider() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, RefreshToken,
        RequestTokenError, Scope, TokenResponse as _, TokenUrl,
    };
    let provider = start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let client = BasicClient::new(ClientId::new("3MVG9testkit".to_owned()))
        .set_client_secret(ClientSecret::new("testkit-secret".to_owned()))
        .set_auth_uri(AuthUrl::new(provider.authorize_url()).expect("auth url"))
        .set_token_uri(TokenUrl::new(provider.token_url()).expect("token url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).expect("redirect url"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("api".to_owned()))
        .add_scope(Scope::new("refresh_token".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let location = provider.browse(url.as_str(), DEFAULT_USER).await.expect("redirect");
    let params = location_params(&location);
    assert_eq!(param(&params, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = param(&params, "code").expect("code");
    let http = http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    assert!(tokens.expires_in().is_none());
    let refresh_token = tokens.refresh_token().expect("refresh token").clone();
    let refreshed = client.exchange_refresh_token(&refresh_token).request_async(&http).await.expect("refresh");
    assert!(refreshed.refresh_token().is_none());
    // an error body without Content-Type is still parsed as an OAuth error
    let err = client
        .exchange_refresh_token(&RefreshToken::new("5Aep861nope".to_owned()))
        .request_async(&http)
        .await
        .expect_err("unknown refresh token");
    match err {
        RequestTokenError::ServerResponse(response) => {
            assert_eq!(response.error().as_ref(), "invalid_grant");
            assert_eq!(response.error_description().map(String::as_str), Some("expired access/refresh token"));
        }
        other => panic!("unexpected {other:?}"),
    }
}
