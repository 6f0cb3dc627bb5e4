//! One truth across instances: a change committed through one hub is honoured by every other
//! hub on the same database on its next read, whatever the other holds in memory; and
//! short-lived tokens are refreshed once per lifetime, however many read them.
//! (`crates/cli/tests` repeats the cross-instance cases with `keyway serve` processes.)

use crate::support::{Harness, USER};
use keyway_server::domain::ConnectionState;
use keyway_testkit::ProviderConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn what_one_instance_deletes_revokes_or_relinks_the_other_honours_on_its_next_read() {
    let hub = Harness::start().await;
    let (b, _b) = hub.another_instance().await;
    let integration = hub.create_integration(json!({})).await;

    // Deleted on B: A, which holds the connection in memory, answers 404 at once.
    let id = hub.link(&integration).await;
    let (status, _) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK);
    let (status, deleted) = hub.call_at(&b, Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!((status, deleted["deleted"].as_bool()), (StatusCode::OK, Some(true)), "{deleted}");
    let (status, problem) = hub.token(&id).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{problem}");

    // Revoked on B: A answers 409 connection_revoked.
    let id = hub.link(&integration).await;
    assert_eq!(hub.token(&id).await.0, StatusCode::OK);
    let (status, _) = hub.call_at(&b, Method::POST, &format!("/v1/connections/{id}/revoke"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = hub.token(&id).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("connection_revoked")), "{problem}");

    // Relinked through B (a reconnect session): A hands out the new grant's token.
    let id = hub.link(&integration).await;
    let (_, old) = hub.token(&id).await;
    let session = hub
        .call_at(
            &b,
            Method::POST,
            "/v1/connect/sessions",
            Some(json!({
                "end_user": {"id": "user-1", "email": USER},
                "connection_id": id,
            })),
        )
        .await
        .1;
    let browser = crate::support::Browser::new();
    browser.open(session["connect_url"].as_str().expect("connect_url")).await;
    let location = browser.submit(&b, &integration, &[]).await.expect("redirect to the provider");
    let callback = hub.provider.browse(&location, USER).await.expect("back");
    assert_eq!(browser.get(&callback).await.0, StatusCode::OK);
    let (_, on_b) = hub.call_at(&b, Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    let (status, on_a) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "{on_a}");
    assert_ne!(on_a["access_token"], old["access_token"], "the old grant's token is not handed out");
    assert_eq!(on_a["access_token"], on_b["access_token"], "both hand out the new grant's");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_secret_changed_on_one_instance_is_the_one_the_others_next_refresh_sends() {
    let hub = Harness::start().await;
    let (b, _b) = hub.another_instance().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    assert_eq!(hub.token(&id).await.0, StatusCode::OK, "A holds the connection and its connector");
    let (status, _) = hub
        .call_at(
            &b,
            Method::PATCH,
            &format!("/v1/integrations/{integration}"),
            Some(json!({"client_secret": "rotated-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The app's old secret stops working at the provider; A's next refresh must send the new.
    hub.provider.update_config(|c| c.client_secret = "rotated-secret".into());
    let expired = Duration::from_secs(3 * 60 * 60);
    hub.clock.advance(expired);
    hub.provider.advance_clock(expired);
    let before = hub.provider.counts().grant("refresh_token");
    let (status, token) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "A refreshed with the secret B stored: {token}");
    assert_eq!(hub.provider.counts().grant("refresh_token"), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_revoked_on_one_instance_is_refused_on_its_next_request_everywhere() {
    let hub = Harness::start().await;
    let (b, _b_instance) = hub.another_instance().await;
    assert_eq!(hub.call(Method::GET, "/v1/integrations", None).await.0, StatusCode::OK);
    assert_eq!(hub.call_at(&b, Method::GET, "/v1/integrations", None).await.0, StatusCode::OK);
    let id = hub.key.strip_prefix("kwk_").and_then(|k| k.split('_').next()).expect("key id");
    // Revoked through B (the key revokes itself: it holds every scope): A, which checked the
    // key a moment ago, refuses it next.
    let (status, revoked) = hub.call_at(&b, Method::DELETE, &format!("/v1/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(hub.call(Method::GET, "/v1/integrations", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(hub.call_at(&b, Method::GET, "/v1/integrations", None).await.0, StatusCode::UNAUTHORIZED);
}

/// 1,000 readers over three instances for five minutes of 60-second tokens whose refresh
/// tokens rotate: one refresh per lifetime (5 ± 1), every reader served a valid token, the
/// refresh-token family alive throughout. Time is the harness's manual clock.
#[tokio::test(flavor = "multi_thread")]
async fn a_herd_on_sixty_second_tokens_refreshes_once_per_lifetime() {
    const LIFETIME: u64 = 60;
    let hub = Harness::start_with(ProviderConfig {
        rotate_refresh_tokens: true,
        access_token_lifetime: Duration::from_secs(LIFETIME),
        ..Default::default()
    })
    .await;
    let (b, _b) = hub.another_instance().await;
    let (c, _c) = hub.another_instance().await;
    let bases = [hub.base.clone(), b, c];
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let before = hub.provider.counts().grant("refresh_token");
    let step = Duration::from_secs(10);
    for round in 0..30 {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let request = hub
                .api
                .request(Method::GET, format!("{}/v1/connections/{id}/token", bases[i % bases.len()]))
                .bearer_auth(&hub.key);
            calls.spawn(async move { crate::support::read(request.send().await.expect("send")).await });
        }
        let now = hub_now(&hub);
        for (status, body) in calls.join_all().await {
            assert_eq!(status, StatusCode::OK, "round {round}: {body}");
            let expires_at = body["expires_at"].as_u64().expect("expiry");
            assert!(expires_at > now, "round {round}: an expired token was handed out");
        }
        assert_eq!(hub.provider.active_refresh_tokens(USER), 1, "round {round}: the family is alive");
        hub.clock.advance(step);
        hub.provider.advance_clock(step);
    }
    let refreshes = hub.provider.counts().grant("refresh_token") - before;
    assert!((4..=6).contains(&refreshes), "five minutes of 60-second tokens: {refreshes} refreshes, not 5 ± 1");
}

fn hub_now(hub: &Harness) -> u64 {
    use keyway_runtime::Clock as _;
    hub.clock.now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_keeps_at_most_its_cache_size_and_reopens_what_it_evicted() {
    let hub = Harness::start_with(ProviderConfig { rotate_refresh_tokens: true, ..Default::default() }).await;
    let cache = keyway_server::hub::CacheOptions { connections: 2, connectors: 1 };
    let (small, instance) = hub.another_instance_with(cache).await;
    let integration = hub.create_integration(json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(hub.link(&integration).await);
    }
    let mut first = Vec::new();
    for id in &ids {
        let (status, token) = hub.call_at(&small, Method::GET, &format!("/v1/connections/{id}/token"), None).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        first.push(token["access_token"].clone());
        assert!(instance.hub.cached_connections() <= 2, "the bound holds");
    }
    // Evicted connections are reopened from the database, with the same tokens.
    for (id, token) in ids.iter().zip(&first) {
        let (status, again) = hub.call_at(&small, Method::GET, &format!("/v1/connections/{id}/token"), None).await;
        assert_eq!((status, &again["access_token"]), (StatusCode::OK, token));
    }
    // Single flight does not depend on an entry staying cached: every connection falls due,
    // 50 callers per connection read through the small instance at once, one refresh each.
    let expired = Duration::from_secs(3 * 60 * 60);
    hub.clock.advance(expired);
    hub.provider.advance_clock(expired);
    let before = hub.provider.counts().grant("refresh_token");
    let mut calls = tokio::task::JoinSet::new();
    for id in &ids {
        for _ in 0..50 {
            let request =
                hub.api.request(Method::GET, format!("{small}/v1/connections/{id}/token")).bearer_auth(&hub.key);
            calls.spawn(async move { crate::support::read(request.send().await.expect("send")).await });
        }
    }
    for (status, body) in calls.join_all().await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(hub.provider.counts().grant("refresh_token") - before, ids.len() as u64, "one refresh per connection");
    assert!(instance.hub.cached_connections() <= 2 + 5, "busy entries may outlast the bound briefly, no more");
}

/// An instance that finds more changes in the log than it applies one by one forgets all it
/// holds, and still follows every change: a delete among a thousand others is a 404.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_changes_makes_an_instance_forget_all_and_still_follow_each() {
    let hub = Harness::start().await;
    let (b, _b) = hub.another_instance().await;
    let integration = hub.create_integration(json!({})).await;
    let busy = hub.link(&integration).await;
    let deleted = hub.link(&integration).await;
    for id in [&busy, &deleted] {
        assert_eq!(hub.call_at(&b, Method::GET, &format!("/v1/connections/{id}/token"), None).await.0, StatusCode::OK);
    }
    let store = hub.hub.store();
    let operator = keyway_server::hub::Caller::operator();
    for i in 0..1000 {
        let state = if i % 2 == 0 { ConnectionState::Degraded } else { ConnectionState::Active };
        let record = operator.record(keyway_server::domain::AuditAction::TestFailed, 1);
        assert!(store.set_state(&busy, state, None, 1, &record).await.expect("state"));
    }
    assert_eq!(hub.call(Method::DELETE, &format!("/v1/connections/{deleted}"), None).await.0, StatusCode::OK);
    let (status, problem) = hub.call_at(&b, Method::GET, &format!("/v1/connections/{deleted}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{problem}");
    assert_eq!(hub.call_at(&b, Method::GET, &format!("/v1/connections/{busy}/token"), None).await.0, StatusCode::OK);
}
