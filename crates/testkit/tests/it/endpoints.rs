//! Introspection, revocation, userinfo and API calls, faults, error formats, counters, concurrency, hostile input.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use keyway_testkit::{DEFAULT_USER, Endpoint, Fault, ProviderConfig, TestProvider, wait_until};

const CLIENT: [(&str, &str); 2] = [("client_id", "3MVG9testkit"), ("client_secret", "testkit-secret")];

#[tokio::test]
async fn introspection_reports_exp_iat_and_goes_inactive() {
    let provider = start_default().await;
    let tokens = connect(&provider, "intro@example.com", "api refresh_token").await;
    let access = s(&tokens, "access_token");
    let issued_ms: u64 = s(&tokens, "issued_at").parse().expect("ms");
    let json = introspect(&provider, &access).await;
    assert_eq!(json["active"], true);
    assert_eq!(json["token_type"], "access_token");
    assert_eq!(json["scope"], "api refresh_token");
    assert_eq!(json["client_id"], "3MVG9testkit");
    assert_eq!(json["username"], "intro@example.com");
    assert_eq!(json["sub"], tokens["id"]);
    let iat = json["iat"].as_u64().expect("iat");
    assert_eq!(iat, issued_ms / 1000);
    assert_eq!(json["nbf"].as_u64(), Some(iat));
    assert_eq!(json["exp"].as_u64(), Some(iat + 7200));

    let refresh_json = introspect(&provider, &s(&tokens, "refresh_token")).await;
    assert_eq!(refresh_json["active"], true);
    assert_eq!(refresh_json["token_type"], "refresh_token");

    assert_eq!(introspect(&provider, "00Dnope").await, serde_json::json!({"active": false}));

    // expiry by the provider clock
    provider.advance_clock(Duration::from_secs(7200));
    assert_eq!(introspect(&provider, &access).await["active"], false);
    assert_eq!(introspect(&provider, &s(&tokens, "refresh_token")).await["active"], true, "refresh tokens live on");

    // a shorter lifetime
    let short =
        start(ProviderConfig { access_token_lifetime: Duration::from_secs(60), ..ProviderConfig::default() }).await;
    let tokens = connect(&short, DEFAULT_USER, "api").await;
    let json = introspect(&short, &s(&tokens, "access_token")).await;
    assert_eq!(json["exp"].as_u64(), json["iat"].as_u64().map(|iat| iat + 60));

    // client authentication is required (form or Basic)
    let answer = post_form(&provider.introspect_url(), &[("token", access.as_str())]).await;
    answer.assert_error(401, "invalid_client", "invalid client credentials");
    let answer = Answer::read(
        http()
            .post(provider.introspect_url())
            .basic_auth("3MVG9testkit", Some("testkit-secret"))
            .form(&[("token", access.as_str()), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let provider = start_default().await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let access = s(&tokens, "access_token");
    let rt = s(&tokens, "refresh_token");
    let second = refresh(&provider, &rt, true).await.str("access_token");

    // revoking an access token kills only that token
    let answer = post_form(&provider.revoke_url(), &[("token", access.as_str())]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    assert_eq!(introspect(&provider, &access).await["active"], false);
    assert_eq!(get_bearer(&provider.userinfo_url(), &access).await.status, 401);
    assert_eq!(get_bearer(&provider.userinfo_url(), &second).await.status, 200);
    post_form(&provider.revoke_url(), &[("token", access.as_str())]).await.assert_error(
        400,
        "invalid_token",
        "invalid token",
    );

    // revoking the refresh token kills its access tokens
    let mut form = vec![("token", rt.as_str())];
    form.extend(CLIENT);
    assert_eq!(post_form(&provider.revoke_url(), &form).await.status, 200);
    assert_eq!(get_bearer(&provider.userinfo_url(), &second).await.status, 401);
    refresh(&provider, &rt, true).await.assert_error(400, "invalid_grant", "expired access/refresh token");
    assert_eq!(provider.active_refresh_tokens(DEFAULT_USER), 0);

    post_form(&provider.revoke_url(), &[("token", "nope")]).await.assert_error(400, "invalid_token", "invalid token");
    // a wrong secret is refused when one is sent
    let tokens = connect(&provider, DEFAULT_USER, "api").await;
    let answer = post_form(
        &provider.revoke_url(),
        &[("token", &s(&tokens, "access_token")), ("client_id", "3MVG9testkit"), ("client_secret", "bad")],
    )
    .await;
    answer.assert_error(401, "invalid_client", "invalid client credentials");
    assert_eq!(provider.counts().revoke, 5);
}

#[tokio::test]
async fn userinfo_and_api_need_a_live_bearer_token() {
    let provider = start_default().await;
    let tokens = connect(&provider, "carol@example.com", "api").await;
    let access = s(&tokens, "access_token");
    let info = get_bearer(&provider.userinfo_url(), &access).await;
    assert_eq!(info.status, 200, "{}", info.body);
    let json = info.json();
    assert_eq!(json["sub"], tokens["id"]);
    assert_eq!(json["preferred_username"], "carol@example.com");
    assert_eq!(json["email"], "carol@example.com");
    assert_eq!(json["organization_id"], "00D5g000004TESTAAA");
    assert!(s(&tokens, "id").ends_with(&s(&json, "user_id")));
    assert!(!s(&json, "name").is_empty());
    // the identity URL answers too
    assert_eq!(get_bearer(&s(&tokens, "id"), &access).await.status, 200);

    let api = get_bearer(&format!("{}/services/data/v62.0/sobjects", provider.base_url()), &access).await;
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(api.json()["sobjects"].is_array());
    let query =
        get_bearer(&format!("{}/services/data/v62.0/query?q=SELECT+Id+FROM+Case", provider.base_url()), &access).await;
    assert_eq!(query.status, 200);

    provider.advance_clock(Duration::from_secs(2 * 3600 + 1));
    for url in [provider.userinfo_url(), format!("{}/services/data/v62.0/sobjects", provider.base_url())] {
        let answer = get_bearer(&url, &access).await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.json(),
            serde_json::json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])
        );
    }
    let no_token = Answer::read(http().get(provider.userinfo_url()).send().await.expect("GET")).await;
    assert_eq!(no_token.status, 401);
    let counts = provider.counts();
    assert_eq!((counts.userinfo, counts.api), (4, 3));
}

#[tokio::test]
async fn errors_have_no_content_type_unless_configured() {
    let provider = start_default().await;
    let answer = refresh(&provider, "unknown", true).await;
    assert_eq!(answer.content_type, None);
    answer.assert_error(400, "invalid_grant", "expired access/refresh token");

    let provider = start(ProviderConfig { errors_without_content_type: false, ..ProviderConfig::default() }).await;
    let answer = refresh(&provider, "unknown", true).await;
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    answer.assert_error(400, "invalid_grant", "expired access/refresh token");
}

#[tokio::test]
async fn faults_are_consumed_in_order() {
    let provider = start(ProviderConfig { require_secret_on_refresh: false, ..ProviderConfig::default() }).await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    provider.inject_faults(Endpoint::Token, [Fault::Status(500), Fault::Status(503), Fault::MalformedJson]);
    let first = refresh(&provider, &rt, false).await;
    assert_eq!(first.status, 500);
    assert!(first.body.contains("server_error"), "{}", first.body);
    assert_eq!(refresh(&provider, &rt, false).await.status, 503);
    let malformed = refresh(&provider, &rt, false).await;
    assert_eq!(malformed.status, 200);
    assert_eq!(malformed.content_type.as_deref(), Some("application/json"));
    assert!(serde_json::from_str::<serde_json::Value>(&malformed.body).is_err());
    assert_eq!(refresh(&provider, &rt, false).await.status, 200, "faults used up");
    assert_eq!(provider.counts().grant("refresh_token"), 4, "faulted requests are counted");

    // a delay makes a client with a shorter timeout give up (the fault holds the request far
    // longer than the client waits); the next request is normal
    provider.inject_faults(Endpoint::Token, [Fault::Delay(Duration::from_secs(600))]);
    let client = oauth2::reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("client");
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", "3MVG9testkit")];
    let err = client.post(provider.token_url()).form(&form).send().await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(refresh(&provider, &rt, false).await.status, 200);

    // a delay below the client's timeout only holds the answer: it still comes, normal
    provider.inject_faults(Endpoint::Userinfo, [Fault::Delay(Duration::from_millis(100))]);
    assert_eq!(get_bearer(&provider.userinfo_url(), &s(&tokens, "access_token")).await.status, 200);

    // faults on authorize show up in browse
    provider.inject_faults(Endpoint::Authorize, [Fault::Status(502)]);
    let config = ProviderConfig::default();
    let url = authorize_url(&provider, &default_authorize_params(&config, &[]));
    let err = provider.browse(&url, DEFAULT_USER).await.expect_err("502");
    assert!(err.starts_with("502 "), "{err}");
    assert!(provider.browse(&url, DEFAULT_USER).await.is_ok());
    // an invalid status code becomes 500
    provider.inject_faults(Endpoint::Api, [Fault::Status(42)]);
    let api = get_bearer(&format!("{}/services/data/v62.0/", provider.base_url()), "x").await;
    assert_eq!(api.status, 500);
}

#[tokio::test]
async fn counts_and_recorded_requests() {
    let provider = start_default().await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    let answer = Answer::read(
        http()
            .post(provider.token_url())
            .header("User-Agent", "keyway-test/1.0")
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", "3MVG9testkit"),
                ("client_secret", "testkit-secret"),
            ])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(answer.status, 200);
    get_bearer(&provider.userinfo_url(), &s(&tokens, "access_token")).await;

    let counts = provider.counts();
    assert_eq!(
        (counts.authorize, counts.token, counts.userinfo, counts.revoke, counts.introspect, counts.api),
        (1, 2, 1, 0, 0, 0)
    );
    assert_eq!(counts.grant("authorization_code"), 1);
    assert_eq!(counts.grant("refresh_token"), 1);
    assert_eq!(counts.grant("client_credentials"), 0);

    let requests = provider.requests();
    assert_eq!(requests.len(), 4);
    let authorize = &requests[0];
    assert_eq!((authorize.method.as_str(), authorize.path.as_str()), ("GET", "/services/oauth2/authorize"));
    assert_eq!(authorize.query_value("redirect_uri"), Some(REDIRECT));
    assert_eq!(authorize.query_value("scope"), Some("api refresh_token"));
    assert_eq!(authorize.cookie_user.as_deref(), Some(DEFAULT_USER));
    let refresh = &requests[2];
    assert_eq!(refresh.method, "POST");
    assert_eq!(refresh.form_value("grant_type"), Some("refresh_token"));
    assert_eq!(refresh.form_value("refresh_token"), Some(rt.as_str()));
    assert_eq!(refresh.user_agent.as_deref(), Some("keyway-test/1.0"));
    assert_eq!(refresh.bearer, None);
    assert_eq!(requests[3].bearer.as_deref(), Some(s(&tokens, "access_token").as_str()));
    // Debug never shows secrets
    let debug = format!("{refresh:?} {:?}", ProviderConfig::default());
    assert!(!debug.contains("testkit-secret") && !debug.contains(&rt), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_refreshes_are_consistent() {
    let provider = start_default().await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    let token_url = provider.token_url();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (rt, token_url) = (rt.clone(), token_url.clone());
        tasks.push(tokio::spawn(async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", "3MVG9testkit"),
                ("client_secret", "testkit-secret"),
            ];
            post_form(&token_url, &form).await
        }));
    }
    let mut access_tokens = HashSet::new();
    for task in tasks {
        let answer = task.await.expect("task");
        assert_eq!(answer.status, 200, "{}", answer.body);
        access_tokens.insert(answer.str("access_token"));
    }
    assert_eq!(access_tokens.len(), 100);
    let counts = provider.counts();
    assert_eq!(counts.token, 101);
    assert_eq!(counts.grant("refresh_token"), 100);
    assert_eq!(provider.requests().len(), 102);
    assert_eq!(provider.active_refresh_tokens(DEFAULT_USER), 1);
    for token in access_tokens.iter().take(5) {
        assert_eq!(introspect(&provider, token).await["active"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotation_lets_exactly_one_refresh_win() {
    let provider = start(ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let tokens = connect(&provider, DEFAULT_USER, "api refresh_token").await;
    let rt = s(&tokens, "refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (provider_url, rt) = (provider.token_url(), rt.clone());
        tasks.push(tokio::spawn(async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", "3MVG9testkit"),
                ("client_secret", "testkit-secret"),
            ];
            post_form(&provider_url, &form).await.status
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.expect("task") == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "the first refresh rotates, every later reuse is refused");
    assert_eq!(provider.active_refresh_tokens(DEFAULT_USER), 0, "reuse revoked the family");
}

async fn raw(provider: &TestProvider, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(provider.addr()).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hostile_input_gets_answers_not_panics() {
    let provider = start_default().await;
    let token_url = provider.token_url();
    let bodies: [&[u8]; 6] = [
        b"grant_type=authorization_code&code=%ZZ%&redirect_uri=%",
        b"\xff\xfe\x00grant_type=refresh_token&refresh_token=\xff",
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c",
        b"grant_type=device&code=",
        b"&&&&====&&",
        b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=eyJhbGciOiJub25lIn0.eyJpc3MiOiIzTVZHOXRlc3RraXQifQ.",
    ];
    for body in bodies {
        let answer = Answer::read(
            http()
                .post(&token_url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.to_vec())
                .send()
                .await
                .expect("POST"),
        )
        .await;
        assert!(answer.status == 400 || answer.status == 401, "{} {}", answer.status, answer.body);
        assert!(answer.json()["error"].is_string());
    }
    // a basic header that is not base64, a huge scope, control characters in redirect_uri
    let answer = Answer::read(
        http()
            .post(&token_url)
            .header("Authorization", "Basic !!!")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(answer.status, 400);
    let config = ProviderConfig::default();
    let long_scope = "api ".repeat(10_000);
    let mut params = default_authorize_params(&config, &[("scope", long_scope.as_str())]);
    let location = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect("redirect");
    assert!(location.contains("code="));
    params.retain(|(k, _)| *k != "redirect_uri");
    params.push(("redirect_uri", "http://x/\r\nSet-Cookie: a=b"));
    let err = provider.browse(&authorize_url(&provider, &params), DEFAULT_USER).await.expect_err("no header injection");
    assert!(err.starts_with("400 "), "{err}");

    // wrong methods and unknown paths
    let get_token = Answer::read(http().get(&token_url).send().await.expect("GET")).await;
    assert_eq!(get_token.status, 405);
    let unknown = Answer::read(http().get(format!("{}/nope", provider.base_url())).send().await.expect("GET")).await;
    assert_eq!(unknown.status, 404);
    let raw_answer = raw(&provider, "GARBAGE\r\n\r\n").await;
    assert!(raw_answer.is_empty() || raw_answer.starts_with("HTTP/1.1 400"), "{raw_answer}");
    // still serving
    assert_eq!(connect(&provider, DEFAULT_USER, "api").await["token_type"], "Bearer");
}

#[tokio::test]
async fn discovery_and_browse_errors() {
    let provider = start_default().await;
    let discovery = Answer::read(
        http().get(format!("{}/.well-known/openid-configuration", provider.base_url())).send().await.expect("GET"),
    )
    .await;
    assert_eq!(discovery.status, 200);
    let json = discovery.json();
    assert_eq!(json["token_endpoint"], provider.token_url());
    assert_eq!(json["authorization_endpoint"], provider.authorize_url());
    assert_eq!(json["revocation_endpoint"], provider.revoke_url());
    assert_eq!(json["introspection_endpoint"], provider.introspect_url());
    assert_eq!(json["userinfo_endpoint"], provider.userinfo_url());
    assert_eq!(provider.host(), format!("127.0.0.1:{}", provider.addr().port()));
    assert_eq!(provider.base_url(), format!("http://{}", provider.host()));

    assert!(provider.browse("https://login.salesforce.com/services/oauth2/authorize", DEFAULT_USER).await.is_err());
    assert!(provider.browse("http://example.com/services/oauth2/authorize", DEFAULT_USER).await.is_err());
    let config = ProviderConfig::default();
    let localhost = authorize_url(&provider, &default_authorize_params(&config, &[])).replace("127.0.0.1", "localhost");
    assert!(provider.browse(&localhost, DEFAULT_USER).await.is_ok());
    let missing_response_type = format!(
        "{}?client_id=3MVG9testkit&redirect_uri={}",
        provider.authorize_url(),
        "http%3A%2F%2Flocalhost%3A1717%2FOauthRedirect"
    );
    let location = provider.browse(&missing_response_type, DEFAULT_USER).await.expect("redirect");
    assert!(location.contains("error=unsupported_response_type"), "{location}");
}

#[tokio::test]
async fn dropping_the_provider_stops_the_server() {
    let provider = start_default().await;
    let url = provider.userinfo_url();
    drop(provider);
    tokio::task::yield_now().await;
    let client = oauth2::reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
    assert!(client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn runtime_controls_mint_revoke_and_reconfigure() {
    let provider = start_default().await;
    let minted = provider.issue_tokens("seeded@example.com", "api refresh_token");
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(minted["instance_url"], provider.base_url());
    let rt = s(&minted, "refresh_token");
    assert_eq!(provider.counts(), keyway_testkit::Counts::default(), "minting is not a request");
    assert_eq!(provider.active_refresh_tokens("seeded@example.com"), 1);
    assert_eq!(get_bearer(&provider.userinfo_url(), &s(&minted, "access_token")).await.status, 200);
    assert!(provider.issue_tokens("seeded@example.com", "api").get("refresh_token").is_none());

    // secret rotation: the old secret stops working
    provider.update_config(|c| c.client_secret = "new-secret".to_owned());
    assert_eq!(provider.config().client_secret, "new-secret");
    refresh(&provider, &rt, true).await.assert_error(401, "invalid_client", "invalid client credentials");
    provider.update_config(|c| c.staged_client_secret = Some("testkit-secret".to_owned()));
    assert_eq!(refresh(&provider, &rt, true).await.status, 200);

    // rotation switched on mid-test
    provider.update_config(|c| c.rotate_refresh_tokens = true);
    let rotated = refresh(&provider, &rt, true).await;
    assert_eq!(rotated.status, 200);
    let rt2 = rotated.str("refresh_token");

    assert_eq!(provider.revoke_user_tokens("seeded@example.com"), 1);
    assert_eq!(provider.revoke_user_tokens("seeded@example.com"), 0);
    refresh(&provider, &rt2, true).await.assert_error(400, "invalid_grant", "expired access/refresh token");
    assert_eq!(get_bearer(&provider.userinfo_url(), &s(&minted, "access_token")).await.status, 401);
}

#[tokio::test]
async fn a_delayed_request_keeps_its_place_among_the_inactive_ones() {
    let provider = start(ProviderConfig { inactive_for_first: 1, ..ProviderConfig::default() }).await;
    provider.inject_faults(Endpoint::Token, [Fault::Delay(Duration::from_millis(500))]);
    let form =
        [("grant_type", "client_credentials"), ("client_id", "3MVG9testkit"), ("client_secret", "testkit-secret")];
    let url = provider.token_url();
    let first = tokio::spawn({
        let url = url.clone();
        async move { post_form(&url, &form).await }
    });
    wait_until("the delayed request's arrival", Duration::from_secs(30), || async { provider.counts().token == 1 })
        .await;
    let second = post_form(&url, &form).await;
    assert_eq!(second.status, 200, "{}", second.body);
    wait_until("the delayed request's answer", Duration::from_secs(30), || async { first.is_finished() }).await;
    first.await.expect("task").assert_error(400, "invalid_client_id", "client identifier invalid");
}

#[tokio::test]
async fn a_held_request_is_in_flight_until_its_client_goes_away_and_arrivals_follow_the_provider_clock() {
    let provider = start_default().await;
    assert_eq!(provider.in_flight(), 0);
    provider.inject_faults(Endpoint::Userinfo, [Fault::Delay(Duration::from_secs(600))]);
    let url = provider.userinfo_url();
    let held = tokio::spawn(async move { get_bearer(&url, "x").await });
    wait_until("the held request", Duration::from_secs(30), || async { provider.in_flight() == 1 }).await;
    assert_eq!(provider.counts().userinfo, 1);
    // The client gives up: the provider drops the request, answered or not.
    held.abort();
    wait_until("the abandoned request to end", Duration::from_secs(30), || async { provider.in_flight() == 0 }).await;
    assert_eq!(get_bearer(&provider.userinfo_url(), "x").await.status, 401, "answered again at once");
    assert_eq!(provider.in_flight(), 0);

    let before = provider.now();
    provider.advance_clock(Duration::from_secs(3600));
    assert_eq!(get_bearer(&provider.userinfo_url(), "x").await.status, 401);
    let last = provider.requests().pop().expect("recorded");
    assert!(last.received_at >= before + Duration::from_secs(3600), "{last:?} against {before:?}");
    assert!(last.received_at <= provider.now());
}
