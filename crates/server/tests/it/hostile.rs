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

/// Counts the connections made to it; must see none.
struct Recorder {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn on(address: &str) -> Option<Recorder> {
        let listener = tokio::net::TcpListener::bind(address).await.ok()?;
        let port = listener.local_addr().ok()?.port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Some(Recorder { port, accepted, _task: task })
    }

    fn seen(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A hub that reaches only public addresses never connects to loopback, in any spelling,
/// literal or resolved, from an imported token's instance URL: the import is refused, or the
/// connection test refuses to send; the access token goes nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_public_only_hub_sends_nothing_to_internal_addresses_in_any_form() {
    let hub = Harness::start().await;
    let (public, _instance) = hub.public_only_instance().await;
    let integration = hub.create_integration(json!({})).await;
    let v4 = Recorder::on("127.0.0.1:0").await.expect("a loopback listener");
    let p = v4.port;
    // 127.0.0.2 and ::1 exist on most machines; their recorders listen on the same port when
    // they can.
    let other = Recorder::on(&format!("127.0.0.2:{p}")).await;
    let v6 = Recorder::on(&format!("[::1]:{p}")).await;
    let forms = [
        format!("http://127.0.0.1:{p}"),
        format!("https://127.0.0.1:{p}"),
        format!("http://2130706433:{p}"),
        format!("http://0x7f000001:{p}"),
        format!("http://0177.0.0.1:{p}"),
        format!("http://127.1:{p}"),
        format!("http://127.000.000.001:{p}"),
        format!("http://[::ffff:127.0.0.1]:{p}"),
        format!("http://127.0.0.2:{p}"),
        format!("http://[::1]:{p}"),
        format!("http://localhost:{p}"),
    ];
    for form in &forms {
        let body = json!({
            "integration_id": integration,
            "end_user": {"id": "u"},
            "tokens": {"access_token": "secret-access-token", "fields": {"instance_url": form}},
        });
        let (status, answer) = hub.call_at(&public, Method::POST, "/v1/connections", Some(body)).await;
        if status == StatusCode::CREATED {
            // Only a name (resolved when used) gets this far: the test refuses to connect.
            let id = answer["id"].as_str().expect("id");
            let (status, test) = hub.call_at(&public, Method::POST, &format!("/v1/connections/{id}/test"), None).await;
            assert_eq!(status, StatusCode::OK, "{form}: {test}");
            assert_eq!((&test["ok"], &test["tested"]), (&json!(false), &json!(true)), "{form}: {test}");
            let why = test["diagnosis"]["description"].as_str().unwrap_or_default();
            assert!(why.contains("not a destination"), "{form}: {test}");
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {answer}");
            assert_eq!(answer["diagnostics"][0]["pointer"], "/tokens/fields", "{form}: {answer}");
        }
    }
    let seen = v4.seen() + other.as_ref().map_or(0, Recorder::seen) + v6.as_ref().map_or(0, Recorder::seen);
    assert_eq!(seen, 0, "a loopback recorder was connected to");
    // The operator's choice opens loopback: the default test hub does connect.
    let body = json!({
        "integration_id": integration,
        "end_user": {"id": "u"},
        "tokens": {"access_token": "a", "fields": {"instance_url": format!("http://127.0.0.1:{p}")}},
    });
    let (status, answer) = hub.call(Method::POST, "/v1/connections", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["id"].as_str().expect("id");
    let _ = hub.call(Method::POST, &format!("/v1/connections/{id}/test"), None).await;
    assert!(v4.seen() > 0, "the recorder works");
}

/// With PKCE off (a platform's choice the guide supports), the integration says what that
/// gives up; with it on, nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_integration_without_pkce_says_what_it_gives_up() {
    let hub = Harness::start().await;
    let on = hub.create_integration(json!({})).await;
    let (_, view) = hub.call(Method::GET, &format!("/v1/integrations/{on}"), None).await;
    assert_eq!((view["pkce"].as_bool(), view["warnings"].clone()), (Some(true), json!([])), "{view}");
    let off = hub.create_integration(json!({"pkce": false})).await;
    let (_, view) = hub.call(Method::GET, &format!("/v1/integrations/{off}"), None).await;
    assert_eq!(view["pkce"], false, "{view}");
    let warning = view["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("PKCE is off") && warning.contains("RFC 9700"), "{view}");
}

/// With PKCE off and `openid` asked for, the hub sends a `nonce` and checks it in the ID
/// token: a code minted for one session, delivered with another session's state and cookie,
/// links nothing (RFC 9700 §2.1.1's code injection).
#[tokio::test(flavor = "multi_thread")]
async fn without_pkce_a_code_injected_into_another_session_is_refused_by_the_nonce() {
    let hub = Harness::start().await;
    let integration =
        hub.create_integration(json!({"pkce": false, "custom_scopes": ["api", "refresh_token", "openid"]})).await;

    // The attacker's own authorization: a code for the attacker's account.
    let attacker = hub.create_session(json!({"end_user": {"id": "attacker"}})).await;
    let (_attacker_browser, attacker_callback) = hub.authorize(&attacker, &integration, "attacker@example.com").await;
    assert!(attacker_callback.contains("code="), "{attacker_callback}");
    let attacker_code = query_value(&attacker_callback, "code");

    // The victim's session, answered with the attacker's code under the victim's state.
    let victim = hub.create_session(json!({})).await;
    let (victim_browser, victim_callback) = hub.authorize(&victim, &integration, "victim@example.com").await;
    let injected = with_query_value(&victim_callback, "code", &attacker_code);
    let (status, page) = victim_browser.get(&injected).await;
    assert!(status.is_client_error(), "{status}: {page}");
    assert!(page.contains("nonce"), "the page says why: {page}");
    let (_, listed) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "nothing linked: {listed}");

    // The rightful code, with its own nonce, links.
    let honest = hub.create_session(json!({})).await;
    let (browser, callback) = hub.authorize(&honest, &integration, "victim@example.com").await;
    assert!(callback.contains("code="), "{callback}");
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let authorize =
        hub.provider.requests().into_iter().rev().find(|r| r.path.ends_with("/authorize")).expect("authorize");
    assert!(authorize.query_value("nonce").is_some_and(|n| n.len() >= 32), "a nonce is sent");
}

/// `url` with its query parameter `name` set to `value`.
fn with_query_value(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        out.append_pair(&k, if k == name { value } else { &v });
    }
    format!("{base}?{}", out.finish())
}

fn query_value(url: &str, name: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// A provider whose token answer steers the API to an internal address (`instance_url`) is
/// refused as the answer arrives, at the code exchange and at a refresh: nothing is stored
/// as usable, and the refusal is the connection's diagnosis.
#[tokio::test(flavor = "multi_thread")]
async fn token_fields_that_would_become_an_internal_api_url_are_refused_on_arrival() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    for steered in ["https://169.254.169.254", "https://10.0.0.7", "http://192.168.1.1", "https://[fd00::1]"] {
        hub.provider.update_config(|c| c.instance_url = None);
        let id = hub.link(&integration).await;
        assert_eq!(hub.token(&id).await.0, StatusCode::OK);

        hub.provider.update_config(|c| c.instance_url = Some(steered.to_owned()));
        let (status, problem) = hub.call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
        assert!(!status.is_success(), "{steered}: {status} {problem}");
        let (_, view) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
        assert_eq!(view["state"], "needs_reauth", "{steered}: {view}");
        let reason = view["diagnosis"].to_string();
        assert!(reason.contains("API base URL"), "{steered}: the diagnosis says why: {view}");
        assert!(!reason.contains(steered), "{steered}: the value is not repeated: {view}");
        let (status, answer) = hub.token(&id).await;
        assert_eq!(status, StatusCode::CONFLICT, "{steered}: no token is handed out: {answer}");

        let session = hub.create_session(json!({})).await;
        let (browser, callback) = hub.authorize(&session, &integration, "other@example.com").await;
        let (status, page) = browser.get(&callback).await;
        assert!(!status.is_success(), "{steered}: the code exchange is refused: {page}");
        assert!(page.contains("API base URL"), "{steered}: {page}");
    }
    let (_, listed) = hub.call(Method::GET, "/v1/connections", None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(4), "only the good links: {listed}");
}
