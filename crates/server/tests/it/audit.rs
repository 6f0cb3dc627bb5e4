//! The audit trail: every credential handed out, refresh, link, reconnect, revocation,
//! deletion, import, integration change, API key created or revoked, and request refused for
//! lack of a scope, with its actor, target, outcome and request id; read through
//! `GET /v1/audit` (scope `admin`), never changed through the API, pruned past a retention.

use crate::access::key_with;
use crate::support::{Harness, USER, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn audit(hub: &Harness, query: &str) -> Vec<Value> {
    let (status, page) = hub.call(Method::GET, &format!("/v1/audit?limit=1000&{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().expect("data").clone()
}

async fn send(hub: &Harness, key: &str, method: Method, path: &str, request_id: &str) -> (StatusCode, Value) {
    let response = hub
        .api
        .request(method, format!("{}{path}", hub.base))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .send()
        .await
        .expect("send");
    read(response).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_token_answer_leaves_exactly_one_record_naming_the_key() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let (worker, created) = key_with(&hub, "worker", &["credentials:read", "connections:write"], None).await;
    let worker_id = created["id"].as_str().expect("id").to_owned();

    for i in 0..5 {
        let (status, token) =
            send(&hub, &worker, Method::GET, &format!("/v1/connections/{id}/token"), &format!("read-{i}")).await;
        assert_eq!(status, StatusCode::OK, "{token}");
    }
    let reads = audit(&hub, &format!("action=credential.read&connection={id}")).await;
    assert_eq!(reads.len(), 5, "one record per answer: {reads:?}");
    for (i, r) in reads.iter().enumerate() {
        assert_eq!(r["actor"], json!({"kind": "api_key", "id": worker_id, "name": "worker"}), "{r}");
        assert_eq!((r["outcome"].as_str(), r["request_id"].as_str()), (Some("ok"), Some(format!("read-{i}").as_str())));
        assert_eq!(r["connection_id"], id.as_str());
        assert!(r["instance"].as_str().is_some_and(|i| i.starts_with("inst_")), "{r}");
        assert!(r["at"].is_i64() && r["problem_code"].is_null(), "{r}");
    }

    // Revoked, then read: the refusal is recorded with its code.
    let (status, _) = send(&hub, &worker, Method::POST, &format!("/v1/connections/{id}/revoke"), "revoke-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&hub, &worker, Method::GET, &format!("/v1/connections/{id}/token"), "read-after").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let records = audit(&hub, &format!("connection={id}")).await;
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions.first(), Some(&"connection.linked"), "{actions:?}");
    assert_eq!(records[0]["actor"]["kind"], "connect_session", "{}", records[0]);
    assert_eq!(actions.iter().filter(|a| **a == "credential.read").count(), 6, "{actions:?}");
    let revoked = records.iter().find(|r| r["action"] == "connection.revoked").expect("revoked");
    assert_eq!(
        (revoked["actor"]["id"].as_str(), revoked["request_id"].as_str()),
        (Some(worker_id.as_str()), Some("revoke-1"))
    );
    assert_eq!(revoked["integration_id"], integration.as_str(), "the change's record names the row's integration");
    let last = records.last().expect("last");
    assert_eq!(
        (last["outcome"].as_str(), last["problem_code"].as_str()),
        (Some("refused"), Some("connection_revoked"))
    );

    // Refused for its scope: recorded, naming the operation and the scope.
    let (status, _) = send(&hub, &worker, Method::GET, "/v1/integrations", "no-scope").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let refused = audit(&hub, &format!("action=request.refused&actor={worker_id}")).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["problem_code"], "insufficient_scope");
    assert_eq!(refused[0]["request_id"], "no-scope");
    assert_eq!(refused[0]["detail"], "GET /v1/integrations needs integrations:read");

    // Integration changes and keys, each by its actor.
    let (status, _) =
        hub.call(Method::PATCH, &format!("/v1/integrations/{integration}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = hub.call(Method::DELETE, &format!("/v1/api-keys/{worker_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let all = audit(&hub, "").await;
    let one = |action: &str| -> Vec<&Value> { all.iter().filter(|r| r["action"] == action).collect() };
    assert_eq!(one("integration.created").len(), 1);
    assert_eq!(one("integration.updated")[0]["integration_id"], integration.as_str());
    let created = one("api_key.created");
    let created = created.iter().find(|r| r["target_id"] == worker_id.as_str()).expect("the worker's creation");
    assert_eq!(created["detail"], "scopes: connections:write credentials:read");
    assert_eq!(created["actor"]["name"], "tests");
    assert_eq!(one("api_key.revoked")[0]["target_id"], worker_id.as_str());
    assert_eq!(one("api_key.revoked")[0]["actor"]["name"], "tests");

    // Paged, oldest first, each record once.
    let (_, first) = hub.call(Method::GET, "/v1/audit?limit=3", None).await;
    let next = first["next"].as_str().expect("next").to_owned();
    let (_, second) = hub.call(Method::GET, &format!("/v1/audit?limit=3&after={next}"), None).await;
    let ids: Vec<&Value> =
        first["data"].as_array().into_iter().chain(second["data"].as_array()).flatten().map(|r| &r["id"]).collect();
    let expected: Vec<&Value> = all.iter().take(6).map(|r| &r["id"]).collect();
    assert_eq!(ids, expected);
    // Filters by time.
    let at = all[0]["at"].as_i64().expect("at");
    assert_eq!(audit(&hub, &format!("until={at}")).await.len(), 0);
    assert_eq!(audit(&hub, &format!("since={at}")).await.len(), all.len());

    // Refused queries; and no method changes a record.
    for (query, status) in
        [("action=nope", 422), ("limit=0", 422), ("after=junk", 422), ("colour=red", 400), ("since=soon", 400)]
    {
        let (got, problem) = hub.call(Method::GET, &format!("/v1/audit?{query}"), None).await;
        assert_eq!(got.as_u16(), status, "{query}: {problem}");
    }
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        assert_eq!(
            hub.call(method.clone(), "/v1/audit", Some(json!({}))).await.0,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(audit(&hub, "").await.len(), all.len(), "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_are_recorded_by_whoever_caused_them_the_background_refresher_with_its_instance() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let expired = Duration::from_secs(3 * 60 * 60);

    // A read of a due token: the refresh and the read, one request id, the key as actor.
    hub.clock.advance(expired);
    hub.provider.advance_clock(expired);
    let response = hub
        .request(Method::GET, &format!("/v1/connections/{id}/token"))
        .header("x-request-id", "due-read")
        .send()
        .await;
    assert_eq!(response.expect("send").status(), StatusCode::OK);
    let refreshed = audit(&hub, &format!("action=connection.refreshed&connection={id}")).await;
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    assert_eq!(
        (refreshed[0]["detail"].as_str(), refreshed[0]["request_id"].as_str()),
        (Some("on read"), Some("due-read"))
    );
    assert_eq!(refreshed[0]["actor"]["kind"], "api_key");

    // Forced.
    let (status, _) = hub.call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
    assert_eq!(status, StatusCode::OK);
    let refreshed = audit(&hub, &format!("action=connection.refreshed&connection={id}")).await;
    assert_eq!(refreshed.last().expect("forced")["detail"], "forced");
    assert_eq!(
        audit(&hub, &format!("action=credential.read&connection={id}")).await.len(),
        2,
        "a forced refresh hands out a token"
    );

    // The background refresher: its instance is the actor, no key, no credential handed out.
    hub.clock.advance(expired);
    hub.provider.advance_clock(expired);
    let (refreshed_now, failed) = hub.hub.refresh_due().await.expect("refresh pass");
    assert_eq!((refreshed_now, failed), (1, 0));
    let refreshed = audit(&hub, &format!("action=connection.refreshed&connection={id}")).await;
    let background = refreshed.last().expect("background");
    assert_eq!(background["detail"], "background", "{background}");
    assert_eq!(background["actor"]["kind"], "refresher");
    let instance = background["instance"].as_str().expect("instance");
    assert!(instance.starts_with("inst_"));
    assert_eq!(background["actor"]["id"], instance, "the refresher names its instance");
    assert!(background["request_id"].as_str().is_some_and(|r| r.starts_with("req_")));
    assert_eq!(audit(&hub, &format!("action=credential.read&connection={id}")).await.len(), 2);
    assert_eq!(audit(&hub, &format!("actor={instance}")).await.len(), 1, "filtered by actor");

    // A reconnect is recorded as one, by the session.
    let session = hub.create_session(json!({"connection_id": id})).await;
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    assert_eq!(browser.get(&callback).await.0, reqwest::StatusCode::OK);
    let reconnected = audit(&hub, "action=connection.reconnected").await;
    assert_eq!(reconnected.len(), 1);
    assert_eq!(reconnected[0]["actor"]["id"], session["id"], "{}", reconnected[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_past_the_retention_are_pruned_in_batches_and_the_rest_stay() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    // 2,500 old records (more than a pruning batch), written as the hub writes them.
    let caller = keyway_server::hub::Caller::operator();
    let old: Vec<_> =
        (0..2500).map(|_| caller.record(keyway_server::domain::AuditAction::CredentialRead, 1000)).collect();
    hub.hub.store().insert_audit(&old).await.expect("insert");
    assert_eq!(audit(&hub, "until=1001").await.len(), 1000, "a page is bounded");
    let pruned = hub.hub.prune_audit(Duration::from_secs(24 * 60 * 60)).await.expect("prune");
    // And the harness key's creation, recorded at time 0.
    assert_eq!(pruned, 2501);
    let left = audit(&hub, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (left[0]["action"].as_str(), left[0]["integration_id"].as_str()),
        (Some("integration.created"), Some(integration.as_str()))
    );
}
