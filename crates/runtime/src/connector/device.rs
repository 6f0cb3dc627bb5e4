//! The device flow (RFC 8628, and Salesforce's variant with its own parameter names): a
//! start at the device authorization endpoint (or where the profile says), then polls of the
//! token endpoint through the one token-endpoint path.

use super::Connector;
use super::client_auth::ClientAuthentication;
use super::token_endpoint::{EndpointRequest, GrantRequest, json_object};
use crate::errors::FlowError;
use crate::http::Body;
use crate::tokens::{GrantUsed, TokenSet};
use keyway_manifest::model::Grant;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

/// A started device authorization: show `user_code` and `verification_uri` to the user.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// A URL with the code filled in, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Seconds between polls.
    pub interval: u64,
    /// Seconds until the device code expires, when the provider says.
    pub expires_in: Option<u64>,
    device_code: SecretString,
}

/// How to poll in the device flow.
#[derive(Debug, Clone)]
pub struct DevicePolling {
    /// Added to the interval on every `slow_down` (RFC 8628: 5 seconds).
    pub slow_down_increment: Duration,
    /// Give up after this long if the provider gave no expiry.
    pub max_wait: Duration,
}

impl Default for DevicePolling {
    fn default() -> Self {
        DevicePolling { slow_down_increment: Duration::from_secs(5), max_wait: Duration::from_secs(900) }
    }
}

impl Connector {
    /// Starts the device flow: at the device authorization endpoint, or where the profile
    /// says (Salesforce: the token endpoint with `response_type=device_code`).
    pub async fn device_start(&self) -> Result<DeviceAuthorization, FlowError> {
        self.require_grant(Grant::DeviceCode, "device grant")?;
        let url = self
            .endpoints
            .device_start
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no device endpoint", self.profile.id)))?;
        let scope = self.plan.scope_string();
        let mut params: Vec<(&str, &str)> = vec![("client_id", self.config.client_id.as_str())];
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        if let Some(device) = &self.profile.auth.device {
            params.extend(device.start_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        // A form whatever `token_request_format` says: RFC 8628 defines only forms here.
        let answer = self
            .post_to_endpoint(EndpointRequest {
                endpoint: "device",
                url,
                params,
                body: Body::Form,
                client_authentication: ClientAuthentication::Omitted,
            })
            .await?;
        let body = json_object("device", &answer)?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let number = |k: &str| body.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let missing =
            |k: &str| FlowError::InvalidResponse { endpoint: "device", detail: format!("no `{k}` in the answer") };
        Ok(DeviceAuthorization {
            device_code: SecretString::from(text("device_code").ok_or_else(|| missing("device_code"))?),
            user_code: text("user_code").ok_or_else(|| missing("user_code"))?,
            verification_uri: text("verification_uri")
                .or_else(|| text("verification_url"))
                .ok_or_else(|| missing("verification_uri"))?,
            verification_uri_complete: text("verification_uri_complete"),
            interval: number("interval").unwrap_or(5),
            expires_in: number("expires_in"),
        })
    }

    /// Polls until the user approves or denies, honouring `interval`, `authorization_pending`
    /// and `slow_down`.
    pub async fn device_poll(
        &self,
        authorization: &DeviceAuthorization,
        polling: &DevicePolling,
    ) -> Result<TokenSet, FlowError> {
        let (grant_type, code_param) = match &self.profile.auth.device {
            Some(d) => (d.poll_grant_type.as_str(), d.poll_code_param.as_str()),
            None => ("urn:ietf:params:oauth:grant-type:device_code", "device_code"),
        };
        let deadline = tokio::time::Instant::now()
            + authorization.expires_in.map_or(polling.max_wait, Duration::from_secs).min(polling.max_wait);
        let mut interval = Duration::from_secs(authorization.interval);
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(FlowError::TimedOut("the device authorization expired before the user approved it"));
            }
            let result = self
                .request_tokens(GrantRequest {
                    grant: GrantUsed::DeviceCode,
                    url: &self.endpoints.token,
                    params: vec![("grant_type", grant_type), (code_param, authorization.device_code.expose_secret())],
                    client_authentication: ClientAuthentication::WithSecret,
                    previous_refresh: None,
                    nonce: None,
                })
                .await;
            match result {
                Ok(tokens) => return Ok(tokens),
                Err(FlowError::Provider(d)) if d.provider.error == "authorization_pending" => {}
                Err(FlowError::Provider(d)) if d.provider.error == "slow_down" => {
                    interval += polling.slow_down_increment;
                }
                Err(other) => return Err(other),
            }
        }
    }
}
