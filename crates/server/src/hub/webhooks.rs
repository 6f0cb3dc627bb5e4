//! Webhook delivery from the outbox: each event POSTed as JSON, signed (Standard Webhooks:
//! `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,BASE64` with HMAC-SHA256 over
//! `ID.TIMESTAMP.BODY`, one signature per configured secret so the secret can rotate),
//! delivered at least once (the id is the idempotency key), in order per connection, retried
//! with capped exponential backoff. Payloads never carry a credential.

use super::*;
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// Where events go.
#[derive(Clone)]
pub struct WebhookOptions {
    /// The receiver: https, or http on a loopback host.
    pub url: String,
    /// Signing secrets: each signs every event (the receiver accepts any it knows).
    pub secrets: Vec<SecretString>,
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions").field("url", &self.url).field("secrets", &self.secrets.len()).finish()
    }
}

/// Why the webhook settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The receiver's URL.
    #[error("the webhook URL is refused: {0}")]
    Url(String),
    /// The secrets file holds none.
    #[error("the webhook secrets file holds no secret")]
    NoSecret,
    /// A secret too short to sign with.
    #[error("a webhook secret is shorter than 16 characters")]
    ShortSecret,
}

impl WebhookOptions {
    /// Checks the URL and reads a secrets file's text (one secret per line, `#` comments).
    pub fn new(url: &str, secrets_text: &str) -> Result<WebhookOptions, WebhookError> {
        if let Some(why) = web_url_problem(url) {
            return Err(WebhookError::Url(why));
        }
        let secrets: Vec<SecretString> = secrets_text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(|l| SecretString::from(l.to_owned()))
            .collect();
        if secrets.is_empty() {
            return Err(WebhookError::NoSecret);
        }
        if secrets.iter().any(|s| s.expose_secret().len() < 16) {
            return Err(WebhookError::ShortSecret);
        }
        Ok(WebhookOptions { url: url.to_owned(), secrets })
    }
}

/// The `webhook-signature` header: `v1,BASE64` per secret, space-separated.
pub fn signature_header(secrets: &[SecretString], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The wait before delivery attempt `attempt` (1-based) is retried: 2, 4, 8, ... seconds, at
/// most five minutes (the runtime's one backoff, without jitter: the outbox orders retries).
fn backoff(attempt: i64) -> i64 {
    let schedule = keyway_runtime::Backoff { base: Duration::from_secs(2), max: Duration::from_secs(300) };
    schedule.ceiling(attempt.clamp(1, 20) as u32).as_secs() as i64
}

impl Hub {
    /// Delivers what the outbox holds and is due; returns (delivered, failed). Without a
    /// webhook URL, nothing.
    pub async fn deliver_webhooks(&self) -> Result<(usize, usize), HubError> {
        let Some(options) = &self.webhook else { return Ok((0, 0)) };
        let (mut delivered, mut failed) = (0, 0);
        // Each pass can unblock the next event of a connection whose earlier one went out.
        for _ in 0..10 {
            let now = self.now();
            let events = self.store.pending_events(now, 100).await?;
            if events.is_empty() {
                break;
            }
            let mut progress = false;
            for event in events {
                if !self.store.claim_event(&event.id, now, now + 60).await? {
                    continue;
                }
                match self.post_event(options, &event, now).await {
                    Ok(()) => {
                        self.store.event_delivered(&event.id, self.now()).await?;
                        delivered += 1;
                        progress = true;
                    }
                    Err(why) => {
                        let next = now + backoff(event.attempts + 1);
                        tracing::warn!(event = %event.id, kind = %event.kind, attempts = event.attempts + 1, %why, "webhook delivery failed; retrying later");
                        self.store.event_failed(&event.id, next, &why).await?;
                        failed += 1;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        Ok((delivered, failed))
    }

    async fn post_event(&self, options: &WebhookOptions, event: &EventRecord, now: i64) -> Result<(), String> {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri(options.url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature_header(&options.secrets, &event.id, now, &event.payload))
            .body(event.payload.clone().into_bytes())
            .map_err(|e| e.to_string())?;
        let response = self.http.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) { Ok(()) } else { Err(format!("the receiver answered HTTP {status}")) }
    }
}
