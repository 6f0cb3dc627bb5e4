//! The connect flow over loopback HTTP: the hosted page, the provider's consent, the callback,
//! and every way a callback can be refused.

use crate::support::{Browser, Harness, USER, connection_id_in};
use keyway_testkit::{DENY_USER, ProviderConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn links_an_account_tests_it_and_hands_out_its_token() {
    let hub = Harness::start_with(ProviderConfig { require_pkce: true, ..Default::default() }).await;
    let integration = hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    assert!(callback.starts_with(&format!("{}/v1/connect/oauth2/salesforce-local/callback?", hub.base)), "{callback}");
    let authorize = hub.provider.requests().into_iter().find(|r| r.path.ends_with("/authorize")).expect("authorize");
    assert_eq!(authorize.query_value("code_challenge_method"), Some("S256"));
    assert_eq!(authorize.query_value("scope"), Some("api refresh_token offline_access"));

    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is connected") && page.contains("a test call"), "{page}");
    let unescaped = page.replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(unescaped.contains("href=\"https://app.example.com/connected?connection_id=conn_"), "return link: {page}");
    let id = connection_id_in(&page);
    assert_eq!(hub.provider.counts().api, 1, "the connection test called the API once");

    let (status, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(connection["state"], "active");
    assert_eq!(connection["end_user"]["email"], USER);
    assert!(connection["verified_at"].is_i64(), "{connection}");
    assert_eq!(connection["scopes"], json!(["api", "refresh_token", "offline_access"]));

    let (status, token) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert!(token["access_token"].as_str().is_some_and(|t| t.starts_with("00D")), "{token}");
    assert_eq!(token["fields"]["instance_url"], hub.provider.base_url());
    assert_eq!(token["api_base_url"], format!("{}/services/data/v62.0", hub.provider.base_url()));
    assert!(!connection.to_string().contains(token["access_token"].as_str().unwrap_or("?")));
    assert_eq!(hub.provider.counts().grant("refresh_token"), 0, "a fresh token is not refreshed");

    // The callback is single use.
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("state_unknown"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_token_is_single_use_and_the_page_needs_its_cookie() {
    let hub = Harness::start().await;
    hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let url = session["connect_url"].as_str().expect("url");
    let first = Browser::new();
    first.open(url).await;
    // A second browser with the same link: the token was used.
    let (status, page) = Browser::new().get(url).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("session_invalid"), "{page}");
    // No cookie, a forged cookie, a made-up token.
    let (status, page) = Browser::new().get(&format!("{}/connect", hub.base)).await;
    assert_eq!((status, page.contains("session_missing")), (StatusCode::FORBIDDEN, true));
    let forged = hub
        .api
        .get(format!("{}/connect", hub.base))
        .header("cookie", "keyway_connect=cs_x.AAAA")
        .send()
        .await
        .expect("get");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    for token in ["kwcs_made-up", "", "x", &"kwcs_".repeat(40)] {
        let (status, _) = Browser::new().get(&format!("{}/connect?session_token={token}", hub.base)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_refused() {
    let hub = Harness::start().await;
    hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    hub.clock.advance(std::time::Duration::from_secs(31 * 60));
    let (status, page) = Browser::new().get(session["connect_url"].as_str().expect("url")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_my_domain_values_are_refused_on_the_page_with_the_profiles_message() {
    let hub = Harness::start().await;
    // The production environment takes a My Domain host (the local one ignores it).
    let integration = hub.create_integration(json!({"environment": "production"})).await;
    let session = hub.create_session(json!({})).await;
    let browser = Browser::new();
    let page = browser.open(session["connect_url"].as_str().expect("url")).await;
    assert!(page.contains("name=\"param.my_domain\""), "{page}");
    for hostile in [
        "evil.com/x",
        "acme.my.salesforce.com@evil.com",
        "acme.my.salesforce.com#x",
        "acme.lightning.force.com",
        "169.254.169.254",
        "acme.my.salesforce.com:8443",
        "ac me.my.salesforce.com",
        "acme.my.salesforce.com\n.evil.com",
    ] {
        let (status, page) =
            browser.submit(&hub.base, &integration, &[("param.my_domain", hostile)]).await.expect_err(hostile);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{hostile}");
        assert!(page.contains("class=\"error\"") && page.contains("aria-invalid=\"true\""), "{hostile}: {page}");
    }
    assert_eq!(hub.provider.counts().authorize, 0);
    // A good value goes to the provider's My Domain (https in production).
    let location =
        browser.submit(&hub.base, &integration, &[("param.my_domain", "acme.my.salesforce.com")]).await.expect("ok");
    assert!(location.starts_with("https://acme.my.salesforce.com/services/oauth2/authorize?"), "{location}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_foreign_and_mixed_up_callbacks_are_refused_before_any_token_request() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    let token_requests = || hub.provider.counts().token;
    let before = token_requests();

    // Another browser (its own session) cannot finish this one's authorization, and trying
    // does not cancel it.
    let other_session = hub.create_session(json!({})).await;
    let other = Browser::new();
    other.open(other_session["connect_url"].as_str().expect("url")).await;
    let (status, page) = other.get(&callback).await;
    assert_eq!((status, page.contains("state_wrong_session")), (StatusCode::BAD_REQUEST, true), "{page}");
    let (status, page) = Browser::new().get(&callback).await;
    assert_eq!((status, page.contains("state_wrong_session")), (StatusCode::BAD_REQUEST, true), "{page}");

    // A forged state, no state, an error without a state.
    let base = format!("{}/v1/connect/oauth2/salesforce-local/callback", hub.base);
    for (query, code) in [
        ("code=x&state=forged", "state_unknown"),
        ("code=x", "state_missing"),
        ("error=access_denied", "state_missing"),
        ("", "state_missing"),
    ] {
        let (status, page) = browser.get(&format!("{base}?{query}")).await;
        assert_eq!((status, page.contains(code)), (StatusCode::BAD_REQUEST, true), "{query}: {page}");
    }
    // RFC 9207: an `iss` naming another server is refused before the code is exchanged...
    let (status, page) = browser.get(&format!("{callback}&iss=https%3A%2F%2Fevil.example.com")).await;
    assert_eq!((status, page.contains("issuer_mismatch")), (StatusCode::BAD_REQUEST, true), "{page}");
    assert_eq!(token_requests(), before, "no token request for a refused callback");
    // The profile declares its issuer: the same origin with another path is another issuer
    // (the runtime's exact comparison, not an origin check).
    let (browser, callback) = hub.authorize(&hub.create_session(json!({})).await, &integration, USER).await;
    let other_path = url::form_urlencoded::byte_serialize(format!("{}/other", hub.provider.base_url()).as_bytes())
        .collect::<String>();
    let (status, page) = browser.get(&format!("{callback}&iss={other_path}")).await;
    assert_eq!((status, page.contains("issuer_mismatch")), (StatusCode::BAD_REQUEST, true), "{page}");
    assert_eq!(token_requests(), before, "no token request for a refused callback");
    drop(browser);
    // ...and the state is spent: start again, this time with the right `iss`.
    let (browser, callback) = hub.authorize(&hub.create_session(json!({})).await, &integration, USER).await;
    let iss = url::form_urlencoded::byte_serialize(hub.provider.base_url().as_bytes()).collect::<String>();
    let (status, page) = browser.get(&format!("{callback}&iss={iss}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // A callback at another profile's path.
    let (browser, callback) = hub.authorize(&hub.create_session(json!({})).await, &integration, USER).await;
    let (status, page) = browser.get(&callback.replace("/salesforce-local/", "/salesforce/")).await;
    assert_eq!((status, page.contains("callback_mismatch")), (StatusCode::BAD_REQUEST, true), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_at_the_provider_shows_the_profiles_diagnosis() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let (browser, callback) = hub.authorize(&session, &integration, DENY_USER).await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("provider_refused") && page.contains("What to do"), "{page}");
    let (_, list) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(list["data"], json!([]), "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnecting_keeps_the_connection_id() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let session = hub.create_session(json!({"connection_id": id})).await;
    let browser = Browser::new();
    let page = browser.open(session["connect_url"].as_str().expect("url")).await;
    assert!(page.contains("Reconnect your account"), "{page}");
    let location = browser.submit(&hub.base, &integration, &[]).await.expect("provider");
    let callback = hub.provider.browse(&location, USER).await.expect("callback");
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is reconnected"), "{page}");
    assert_eq!(connection_id_in(&page), id);
    let (_, list) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    // A reconnect session for an unknown connection is refused.
    let (status, problem) = hub
        .call(
            Method::POST,
            "/v1/connect/sessions",
            Some(json!({"end_user": {"id": "u"}, "connection_id": "conn_nope"})),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_carry_protective_headers() {
    let hub = Harness::start().await;
    hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let browser = Browser::new();
    browser.open(session["connect_url"].as_str().expect("url")).await;
    let response = browser.client.get(format!("{}/connect", hub.base)).send().await.expect("page");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    let css = hub.api.get(format!("{}/assets/keyway.css", hub.base)).send().await.expect("css");
    assert_eq!(css.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/css; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connect_form_is_refused_from_other_sites_and_accepted_from_the_page() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let browser = Browser::new();
    browser.open(session["connect_url"].as_str().expect("url")).await;
    let post = |headers: &[(&str, &str)]| {
        let mut request = browser.client.post(format!("{}/connect/{integration}", hub.base)).form(&[("x", "y")]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // What a browser sends from a `no-referrer` page of the hub itself.
    let same = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    assert_eq!(post(&same).await.expect("send").status(), StatusCode::SEE_OTHER);
    assert_eq!(post(&[("origin", hub.base.as_str())]).await.expect("send").status(), StatusCode::SEE_OTHER);
    assert_eq!(post(&[]).await.expect("send").status(), StatusCode::SEE_OTHER);
    for refused in [
        vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example.com")],
    ] {
        let response = post(&refused).await.expect("send");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{refused:?}");
        assert!(response.text().await.expect("body").contains("cross_site"));
    }
}

/// The done page says only what happened: a profile that declares no connection test gets no
/// claim that a test call succeeded, and the provider's API is not called.
#[tokio::test(flavor = "multi_thread")]
async fn the_done_page_claims_no_test_for_a_profile_without_one() {
    let hub = Harness::start().await;
    std::fs::write(
        hub.dir.path().join("profiles/salesforce-untested.yaml"),
        "id: salesforce-untested\nextends: salesforce-local\nname: Salesforce (no test)\napi:\n  verify: null\n",
    )
    .expect("write the profile");
    hub.hub.reload().expect("profiles reload");
    let integration = hub.create_integration(json!({"profile": "salesforce-untested"})).await;
    let session = hub.create_session(json!({})).await;
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Salesforce (no test) is connected"), "{page}");
    assert!(!page.contains("test call"), "{page}");
    assert!(page.contains("You can return to the application."), "{page}");
    assert_eq!(hub.provider.counts().api, 0, "no connection test ran");
    let (status, connection) =
        hub.call(Method::GET, &format!("/v1/connections/{}", connection_id_in(&page)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(connection["state"], "active");
    assert!(connection["verified_at"].is_null(), "{connection}");
    // The API's test says the same: nothing was called.
    let (status, test) =
        hub.call(Method::POST, &format!("/v1/connections/{}/test", connection_id_in(&page)), None).await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!((test["ok"].as_bool(), test["tested"].as_bool()), (Some(true), Some(false)), "{test}");
    assert_eq!(hub.provider.counts().api, 0, "no connection test ran");
}
