//! Hostile input to the hub (issue 26's classes): numbers no lifetime can be, keys given
//! twice, framing, and a development key where no file can hold it.

use crate::support::{Browser, Harness};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn lifetimes_no_token_can_have_are_refused_with_a_pointer_and_nothing_is_stored() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    for expires_in in [
        json!(18_446_744_073_709_551_615u64),
        json!(-1),
        json!(3600.5),
        json!(1e300),
        json!("99999999999999999999"),
        json!("soon"),
    ] {
        let body = json!({
            "integration_id": integration,
            "end_user": {"id": "u"},
            "tokens": {"access_token": "a", "expires_in": expires_in},
        });
        let (status, problem) = hub.call(Method::POST, "/v1/connections", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{expires_in}: {problem}");
        assert_eq!(problem["code"], "invalid_request", "{problem}");
        assert!(problem["diagnostics"][0]["pointer"].as_str().is_some_and(|p| p.starts_with("/tokens")), "{problem}");
    }
    let (_, list) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(list["data"], json!([]), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_given_twice_in_any_body_is_refused_at_its_place() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let raw = |body: String| {
        hub.request(Method::POST, "/v1/connect/sessions").header("content-type", "application/json").body(body)
    };
    let twice =
        r#"{"end_user": {"id": "u"}, "return_url": "javascript:alert(1)", "return_url": "https://app.example.com/"}"#;
    let (status, problem) = crate::support::read(raw(twice.to_owned()).send().await.expect("send")).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
    assert_eq!(problem["diagnostics"][0]["pointer"], "/return_url", "{problem}");
    assert!(!problem.to_string().contains("javascript"), "values are not quoted: {problem}");
    let nested = r#"{"end_user": {"id": "u", "id": "v"}}"#;
    let (status, problem) = crate::support::read(raw(nested.to_owned()).send().await.expect("send")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["diagnostics"][0]["pointer"], "/end_user/id", "{problem}");
    // The same for a merge patch.
    let (status, problem) = crate::support::read(
        hub.request(Method::PATCH, &format!("/v1/integrations/{integration}"))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"name": "a", "name": "b"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (status, problem["diagnostics"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/name"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_page_can_be_framed() {
    let hub = Harness::start().await;
    hub.create_integration(json!({})).await;
    let session = hub.create_session(json!({})).await;
    let browser = Browser::new();
    browser.open(session["connect_url"].as_str().expect("url")).await;
    let pages = [
        format!("{}/connect", hub.base),
        format!("{}/connect?session_token=kwcs_nope", hub.base),
        format!("{}/guide/salesforce-local", hub.base),
        format!("{}/guide/salesforce-local/fragment", hub.base),
        format!("{}/guide/salesforce-local/export", hub.base),
        format!("{}/guide/nope", hub.base),
        format!("{}/v1/connect/oauth2/salesforce-local/callback?state=x", hub.base),
    ];
    for url in pages {
        let response = browser.client.get(&url).send().await.expect("page");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(header("x-frame-options"), "DENY", "{url}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'") || url.ends_with("/export"),
            "{url}"
        );
    }
}

#[test]
fn development_mode_refuses_a_database_without_a_file_to_keep_its_key_beside() {
    let e = keyway_server::resolve_keys(None, "postgres://keyway@127.0.0.1:5432/keyway", true).expect_err("refused");
    assert!(matches!(e, keyway_server::ServeError::DevNeedsSqlite), "{e}");
    assert!(e.to_string().contains("--keys-file"), "{e}");
}
