//! Webhooks through the outbox: one event per transition (created, refresh_failing once per
//! degradation, recovered, needs_reauth, reauthorized, revoked, deleted), signed with every
//! configured secret, delivered at least once with an idempotency key, retried with backoff
//! while the receiver is down and then delivered in order per connection, never carrying a
//! credential.

use crate::support::{Harness, USER};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use keyway_server::hub::WebhookOptions;
use keyway_testkit::{Endpoint, Fault, ProviderConfig};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRETS: [&str; 2] = ["whsec_old-secret-0123456789", "whsec_new-secret-9876543210"];
const EXPIRED: Duration = Duration::from_secs(3 * 60 * 60);

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver { status: Arc::new(AtomicU16::new(200)), ..Default::default() };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let status = state.status.load(Ordering::SeqCst);
                    if status == 200 {
                        state
                            .received
                            .lock()
                            .expect("lock")
                            .push((headers, String::from_utf8_lossy(&body).into_owned()));
                    }
                    AxumStatus::from_u16(status).unwrap_or(AxumStatus::INTERNAL_SERVER_ERROR)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, url)
    }

    /// The events received so far: (type, connection id), each checked for its signature.
    fn events(&self) -> Vec<(String, String)> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|(headers, body)| {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let (id, timestamp, signatures) =
                    (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
                let payload: Value = serde_json::from_str(body).expect("JSON body");
                assert_eq!(payload["id"], id.as_str(), "the id header is the event's id");
                // Every configured secret signs; a receiver that knows either accepts.
                for secret in SECRETS {
                    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
                    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
                    let expected =
                        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
                    assert!(signatures.split(' ').any(|s| s == expected), "signed with {secret}: {signatures}");
                }
                (
                    payload["type"].as_str().expect("type").to_owned(),
                    payload["data"]["connection_id"].as_str().expect("connection").to_owned(),
                )
            })
            .collect()
    }

    fn bodies(&self) -> Vec<String> {
        self.received.lock().expect("lock").iter().map(|(_, b)| b.clone()).collect()
    }
}

async fn expire(hub: &Harness) {
    hub.clock.advance(EXPIRED);
    hub.provider.advance_clock(EXPIRED);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_transition_is_one_signed_event_delivered_in_order_and_without_credentials() {
    let (receiver, url) = Receiver::start().await;
    let webhook = WebhookOptions::new(&url, &SECRETS.join("\n")).expect("options");
    let hub = Harness::start_with_webhook(ProviderConfig::default(), Some(webhook)).await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    assert_eq!(hub.hub.deliver_webhooks().await.expect("deliver"), (1, 0));
    assert_eq!(receiver.events(), vec![("connection.created".to_owned(), id.clone())]);

    // Failing refreshes: one refresh_failing however many reads fail, then recovered.
    expire(&hub).await;
    hub.provider.inject_faults(Endpoint::Token, (0..8).map(|_| Fault::Status(503)));
    assert_eq!(hub.token(&id).await.0, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hub.token(&id).await.0, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hub.token(&id).await.0, reqwest::StatusCode::OK);
    // The grant dies: needs_reauth; a reconnect: reauthorized; a revocation: revoked.
    hub.provider.revoke_user_tokens(USER);
    expire(&hub).await;
    assert_eq!(hub.token(&id).await.0, reqwest::StatusCode::CONFLICT);
    let session = hub.create_session(json!({"connection_id": id})).await;
    let (browser, callback) = hub.authorize(&session, &integration, USER).await;
    assert_eq!(browser.get(&callback).await.0, reqwest::StatusCode::OK);
    hub.call(Method::POST, &format!("/v1/connections/{id}/revoke"), None).await;
    hub.deliver_all().await;
    let kinds: Vec<String> = receiver.events().into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        [
            "connection.created",
            "connection.refresh_failing",
            "connection.recovered",
            "connection.needs_reauth",
            "connection.reauthorized",
            "connection.revoked",
        ]
    );

    // The receiver is down: events wait, retried with backoff, then arrive in order.
    receiver.status.store(503, Ordering::SeqCst);
    let second = hub.link(&integration).await;
    hub.call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    hub.call(Method::DELETE, &format!("/v1/connections/{second}"), None).await;
    let (delivered, failed) = hub.hub.deliver_webhooks().await.expect("deliver");
    assert_eq!((delivered, failed), (0, 2), "the first event of each connection was tried; the rest wait behind it");
    hub.clock.advance(Duration::from_secs(1));
    assert_eq!(hub.hub.deliver_webhooks().await.expect("deliver"), (0, 0), "not due yet (backoff)");
    hub.clock.advance(Duration::from_secs(2));
    assert_eq!(hub.hub.deliver_webhooks().await.expect("deliver"), (0, 2), "retried, still down");
    receiver.status.store(200, Ordering::SeqCst);
    hub.clock.advance(Duration::from_secs(10));
    assert_eq!(hub.hub.deliver_webhooks().await.expect("deliver"), (3, 0));
    let events = receiver.events();
    let tail: Vec<(String, String)> = events[6..].to_vec();
    assert!(tail.contains(&("connection.deleted".to_owned(), id.clone())));
    let second_events: Vec<&str> = tail.iter().filter(|(_, c)| *c == second).map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(second_events, ["connection.created", "connection.deleted"], "in order per connection");

    // No credential in any event.
    let bodies = receiver.bodies().join("\n");
    for r in hub.provider.requests() {
        for name in ["refresh_token", "code", "code_verifier", "client_secret"] {
            if let Some(value) = r.form_value(name) {
                assert!(!bodies.contains(value), "{name} in a webhook");
            }
        }
    }
    assert!(!bodies.contains("testkit-secret") && !bodies.contains("00D5g000004TESTAAA!"), "no token or secret");
}

#[test]
fn webhook_options_refuse_unsafe_urls_and_weak_or_missing_secrets() {
    for (url, secrets) in [
        ("http://example.com/hooks", SECRETS[0]),
        ("https://user:pw@example.com/hooks", SECRETS[0]),
        ("javascript:alert(1)", SECRETS[0]),
        ("https://example.com/hooks", ""),
        ("https://example.com/hooks", "# only a comment"),
        ("https://example.com/hooks", "short"),
    ] {
        assert!(WebhookOptions::new(url, secrets).is_err(), "{url} {secrets:?}");
    }
    let options = WebhookOptions::new("https://example.com/hooks", &SECRETS.join("\n")).expect("ok");
    assert!(!format!("{options:?}").contains("whsec"), "Debug shows no secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_and_the_audit_record_of_its_change_carry_the_same_request_id() {
    let (receiver, url) = Receiver::start().await;
    let webhook = WebhookOptions::new(&url, &SECRETS.join("\n")).expect("options");
    let hub = Harness::start_with_webhook(ProviderConfig::default(), Some(webhook)).await;
    let integration = hub.create_integration(json!({})).await;
    let id = hub.link(&integration).await;
    let response = hub
        .request(Method::POST, &format!("/v1/connections/{id}/revoke"))
        .header("x-request-id", "platform-revoke-7")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    hub.deliver_all().await;
    let bodies: Vec<Value> = receiver.bodies().iter().map(|b| serde_json::from_str(b).expect("json")).collect();
    let revoked = bodies.iter().find(|b| b["type"] == "connection.revoked").expect("the revoked event");
    assert_eq!(revoked["request_id"], "platform-revoke-7", "{revoked}");
    let created = bodies.iter().find(|b| b["type"] == "connection.created").expect("the created event");
    let (_, audit) = hub.call(Method::GET, &format!("/v1/audit?connection={id}"), None).await;
    let records = audit["data"].as_array().expect("data");
    let record = |action: &str| records.iter().find(|r| r["action"] == action).expect(action).clone();
    assert_eq!(record("connection.revoked")["request_id"], "platform-revoke-7");
    // The link's event and record carry the callback request's id.
    assert_eq!(record("connection.linked")["request_id"], created["request_id"], "{audit}");
    assert!(created["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{created}");
}
