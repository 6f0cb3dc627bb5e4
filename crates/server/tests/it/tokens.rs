//! Connections and their tokens: one refresh however many ask, nothing lost across a restart,
//! terminal and transient failures as states, imports, revocation.

use crate::support::{Harness, USER};
use keyway_testkit::{Endpoint, Fault, ProviderConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const EXPIRED: Duration = Duration::from_secs(3 * 60 * 60);

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_callers_on_an_expired_token_cause_one_refresh_and_rotation_is_kept() {
    let hub = Harness::start_with(ProviderConfig { rotate_refresh_tokens: true, ..Default::default() }).await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let (_, first) = hub.token(&id).await;
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let request = hub.request(Method::GET, &format!("/v1/connections/{id}/token"));
        calls.spawn(async move { crate::support::read(request.send().await.expect("send")).await });
    }
    let answers = calls.join_all().await;
    assert_eq!(hub.provider.counts().grant("refresh_token"), 1, "one refresh for 100 callers");
    let tokens: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["access_token"].as_str().expect("token").to_owned()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every caller got the same new token");
    assert_ne!(tokens.iter().next().map(String::as_str), first["access_token"].as_str());
    assert_eq!(hub.provider.active_refresh_tokens(USER), 1, "the rotated family is alive");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_loses_nothing() {
    let mut hub = Harness::start_with(ProviderConfig { rotate_refresh_tokens: true, ..Default::default() }).await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let (_, refreshed) = hub.token(&id).await;
    hub.restart().await;
    let (status, after) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["access_token"], refreshed["access_token"], "the rotated tokens were stored before use");
    assert_eq!(hub.provider.counts().grant("refresh_token"), 1);
    // And the stored refresh token is the newest: refreshing again works.
    let (status, again) = hub.call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(hub.provider.counts().grant("refresh_token"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_grant_marks_the_connection_needs_reauth_and_asks_the_provider_once() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    hub.provider.revoke_user_tokens(USER);
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let (status, problem) = hub.token(&id).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("needs_reauth")), "{problem}");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "needs_reauth");
    assert_eq!(connection["diagnosis"]["kind"], "reauthorize", "{connection}");
    assert_eq!(connection["diagnosis"]["error"], "invalid_grant");
    let refreshes = hub.provider.counts().grant("refresh_token");
    let (status, _) = hub.token(&id).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(hub.provider.counts().grant("refresh_token"), refreshes, "invalid_grant is never retried");
    let (_, listed) = hub.call(Method::GET, "/v1/connections?state=needs_reauth", None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_degrade_the_connection_and_the_next_success_restores_it() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    hub.provider.inject_faults(Endpoint::Token, (0..4).map(|_| Fault::Status(503)));
    let (status, problem) = hub.token(&id).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("provider_unavailable")),
        "{problem}"
    );
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(
        (connection["state"].as_str(), connection["diagnosis"]["kind"].as_str()),
        (Some("degraded"), Some("retry_later"))
    );
    let (status, token) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "active");
    assert_eq!(connection["diagnosis"], json!(null));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_revokes_at_the_provider_first_and_revoke_keeps_the_record() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let (status, result) = hub.call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        result,
        json!({"connection_id": id, "revoked_at_provider": true, "revocation_error": null, "deleted": true})
    );
    assert_eq!(hub.provider.counts().revoke, 1);
    assert_eq!(hub.provider.active_refresh_tokens(USER), 0);
    let (status, _) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let id = hub.link(&integration).await;
    let (status, result) = hub.call(Method::POST, &format!("/v1/connections/{id}/revoke"), None).await;
    assert_eq!((status, result["deleted"].as_bool()), (StatusCode::OK, Some(false)), "{result}");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "revoked");
    let (status, problem) = hub.token(&id).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("connection_revoked")));

    // The provider refusing the revocation is said, and the record still goes.
    let id = hub.link(&integration).await;
    hub.provider.inject_faults(Endpoint::Revoke, [Fault::Status(500)]);
    let (status, result) = hub.call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!((status, result["revoked_at_provider"].as_bool()), (StatusCode::OK, Some(false)), "{result}");
    assert!(result["revocation_error"].as_str().is_some_and(|e| e.contains("500")), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_a_platform_holds_can_be_imported() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let issued = hub.provider.issue_tokens(USER, "api refresh_token");
    let mut fields = issued.as_object().cloned().expect("object");
    let access = fields.remove("access_token").expect("access");
    let refresh = fields.remove("refresh_token").expect("refresh");
    fields.remove("scope");
    fields.remove("token_type");
    let body = json!({
        "integration_id": integration,
        "end_user": {"id": "imported-user"},
        "tokens": {"access_token": access, "refresh_token": refresh, "scope": "api refresh_token", "fields": fields},
    });
    let (status, connection) = hub.call(Method::POST, "/v1/connections", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    assert_eq!(connection["state"], "active");
    assert_eq!(connection["scopes"], json!(["api", "refresh_token"]));
    assert!(connection["expires_at"].is_i64(), "expiry learnt by introspection: {connection}");
    let id = connection["id"].as_str().expect("id");
    let (status, token) = hub.token(id).await;
    assert_eq!((status, &token["access_token"]), (StatusCode::OK, &access));
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let (status, token) = hub.token(id).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_ne!(token["access_token"], access);
    // A hostile instance URL cannot become the API base.
    let body = json!({
        "integration_id": integration,
        "end_user": {"id": "u"},
        "tokens": {"access_token": "x", "fields": {"instance_url": "http://169.254.169.254"}},
    });
    let (status, problem) = hub.call(Method::POST, "/v1/connections", Some(body)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_secret_keeps_connections_working_while_the_app_secret_rotates() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let (status, updated) = hub
        .call(
            Method::PATCH,
            &format!("/v1/integrations/{integration}"),
            Some(json!({"staged_client_secret": "new-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["has_client_secret"].as_bool(), updated["has_staged_client_secret"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(!updated.to_string().contains("new-secret"));
    // The admin rotates the app's secret at the provider: the old one stops working.
    hub.provider.update_config(|c| c.client_secret = "new-secret".into());
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let (status, token) = hub.token(&id).await;
    assert_eq!(status, StatusCode::OK, "the staged secret was tried: {token}");
    // PATCH changes are checked like a new integration's, and refused whole.
    let (status, problem) = hub
        .call(
            Method::PATCH,
            &format!("/v1/integrations/{integration}"),
            Some(json!({"actions": ["list_acounts"], "name": "x"})),
        )
        .await;
    assert_eq!(
        (status, problem["diagnostics"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("KW0501"))
    );
    assert_eq!(problem["diagnostics"][0]["pointer"], "/actions/0");
    let (_, current) = hub.call(Method::GET, &format!("/v1/integrations/{integration}"), None).await;
    assert_eq!((current["name"].clone(), current["version"].clone()), (json!(null), json!(2)));
    let (status, problem) = hub
        .call(Method::PATCH, &format!("/v1/integrations/{integration}"), Some(json!({"profile": "salesforce"})))
        .await;
    assert_eq!(
        (status, problem["diagnostics"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/profile"))
    );
    let (status, problem) = hub.call(Method::DELETE, &format!("/v1/integrations/{integration}"), None).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("integration_in_use")));
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_on_one_database_refresh_a_rotating_token_once_per_expiry() {
    let hub = Harness::start_with(ProviderConfig { rotate_refresh_tokens: true, ..Default::default() }).await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let (second, _b) = hub.another_instance().await;
    let (third, _c) = hub.another_instance().await;
    let bases = [hub.base.clone(), second, third];
    for round in 1..=5u64 {
        hub.clock.advance(EXPIRED);
        hub.provider.advance_clock(EXPIRED);
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..150 {
            let request = hub.api.get(format!("{}/v1/connections/{id}/token", bases[i % 3])).bearer_auth(&hub.key);
            calls.spawn(async move { crate::support::read(request.send().await.expect("send")).await });
        }
        let tokens: std::collections::HashSet<String> = calls
            .join_all()
            .await
            .into_iter()
            .map(|(status, body)| {
                assert_eq!(status, StatusCode::OK, "round {round}: {body}");
                body["access_token"].as_str().expect("token").to_owned()
            })
            .collect();
        assert_eq!(tokens.len(), 1, "round {round}: every caller on every instance got the same token");
        assert_eq!(hub.provider.counts().grant("refresh_token"), round, "one refresh per round");
        assert_eq!(hub.provider.active_refresh_tokens(USER), 1, "round {round}: the family is alive");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_refresher_refreshes_what_falls_due_and_what_went_unused_for_a_day() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let due = hub.link(&integration).await;
    let dead = hub.link(&integration).await;
    assert_eq!(hub.hub.refresh_due().await.expect("pass"), (0, 0), "nothing is due yet");
    // Both fall due; one has lost its grant.
    hub.provider.advance_clock(EXPIRED);
    hub.clock.advance(EXPIRED);
    assert_eq!(hub.token(&due).await.0, StatusCode::OK);
    hub.call(Method::POST, &format!("/v1/connections/{dead}/revoke"), None).await;
    let refreshes = hub.provider.counts().grant("refresh_token");
    let (refreshed, failed) = hub.hub.refresh_due().await.expect("pass");
    assert_eq!((refreshed, failed), (0, 0), "the due one was refreshed by the read; the revoked one is not touched");
    assert_eq!(hub.provider.counts().grant("refresh_token"), refreshes);
    // A day later every connection is refreshed, due or not.
    hub.clock.advance(Duration::from_secs(25 * 3600));
    hub.provider.advance_clock(Duration::from_secs(25 * 3600));
    let (refreshed, failed) = hub.hub.refresh_due().await.expect("pass");
    assert_eq!((refreshed, failed), (1, 0));
    assert_eq!(hub.provider.counts().grant("refresh_token"), refreshes + 1);
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{due}"), None).await;
    assert_eq!(connection["state"], "active");
    // A provider that fails: the pass says so, and the connection is degraded, not lost.
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    hub.provider.inject_faults(Endpoint::Token, (0..4).map(|_| Fault::Status(500)));
    assert_eq!(hub.hub.refresh_due().await.expect("pass"), (0, 1));
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{due}"), None).await;
    assert_eq!(connection["state"], "degraded");
    assert_eq!(hub.hub.refresh_due().await.expect("pass"), (1, 0), "recovered on the next pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_refreshing_in_the_background_split_the_due_connections() {
    let hub = Harness::start_with(ProviderConfig { approvals_per_user: 0, ..Default::default() }).await;
    let integration = hub.create_integration(json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(hub.link(&integration).await);
    }
    let (_, other) = hub.another_instance().await;
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
    let (a, b) = tokio::join!(hub.hub.refresh_due(), other.hub.refresh_due());
    let ((a_done, a_failed), (b_done, b_failed)) = (a.expect("a"), b.expect("b"));
    assert_eq!((a_failed, b_failed), (0, 0));
    assert_eq!(a_done + b_done, 12, "every due connection refreshed once: {a_done} + {b_done}");
    assert_eq!(hub.provider.counts().grant("refresh_token"), 12);
    // Nothing is left claimed: the next pass finds nothing due, and reads need no wait.
    assert_eq!(hub.hub.refresh_due().await.expect("pass"), (0, 0));
    for id in &ids {
        assert_eq!(hub.token(id).await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_failing_for_days_give_the_connection_up_as_needs_reauth() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let failing_read = async |advance: Duration| {
        hub.clock.advance(advance);
        hub.provider.advance_clock(advance);
        hub.provider.inject_faults(Endpoint::Token, (0..4).map(|_| Fault::Status(503)));
        hub.token(&id).await
    };
    let (status, _) = failing_read(EXPIRED).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = failing_read(Duration::from_secs(2 * 86_400)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "two days of failures: still degraded");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "degraded");
    let (status, problem) = failing_read(Duration::from_secs(2 * 86_400 + 60)).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("needs_reauth")), "{problem}");
    let (_, connection) = hub.call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(connection["state"], "needs_reauth");
    assert!(connection["diagnosis"]["description"].as_str().is_some_and(|d| d.contains("4 day")), "{connection}");
}
