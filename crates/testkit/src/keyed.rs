//! APIs behind credentials other than OAuth 2.0, so every kind keyway links is tested end to
//! end over loopback. Each refuses wrong credentials with a 401 and a JSON error:
//!
//! - `GET /keyed/api-key/me`: the `X-Api-Key` header must be [`ProviderConfig::api_key`];
//! - `GET /keyed/basic/me`: HTTP Basic with [`ProviderConfig::basic_user`] and
//!   [`ProviderConfig::basic_password`];
//! - `POST /keyed/exchange/token`: a token exchange (form or JSON body with `username` and
//!   `password`, the Basic pair's values) answering `{"data": {"token": ...}, "expires_in": N}`
//!   ([`ProviderConfig::exchange_lifetime`]); counted in [`Counts::exchange`];
//! - `GET /keyed/exchanged/me`: a Bearer token the exchange issued, refused once expired;
//! - `GET /keyed/jwt/me`: a Bearer JWT signed HS256 with [`ProviderConfig::jwt_secret`],
//!   `kid` `testkit-kid`, `iss` `testkit-issuer`, and not expired (provider clock);
//! - `GET /keyed/public/me`: no credential at all.
//!
//! [`ProviderConfig::api_key`]: crate::ProviderConfig::api_key
//! [`ProviderConfig::basic_user`]: crate::ProviderConfig::basic_user
//! [`ProviderConfig::basic_password`]: crate::ProviderConfig::basic_password
//! [`ProviderConfig::exchange_lifetime`]: crate::ProviderConfig::exchange_lifetime
//! [`Counts::exchange`]: crate::Counts::exchange
//! [`ProviderConfig::jwt_secret`]: crate::ProviderConfig::jwt_secret

use crate::RecordedRequest;
use crate::server::{State, json_response};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::time::Duration;

/// Where the keyed APIs live.
pub const KEYED_PREFIX: &str = "/keyed/";

impl State {
    pub(crate) fn keyed(&mut self, request: &RecordedRequest, body: &[u8]) -> Response {
        let refused = |error: &str, description: &str| {
            json_response(StatusCode::UNAUTHORIZED, &json!({"error": error, "error_description": description}))
        };
        let me = |kind: &str| json_response(StatusCode::OK, &json!({"user": crate::DEFAULT_USER, "credential": kind}));
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/keyed/api-key/me") => {
                if request.header("x-api-key") == Some(self.config.api_key.as_str()) {
                    me("api_key")
                } else {
                    refused("invalid_api_key", "The API key is invalid or was revoked.")
                }
            }
            ("GET", "/keyed/basic/me") => match &request.basic_auth {
                Some((user, password))
                    if *user == self.config.basic_user && *password == self.config.basic_password =>
                {
                    me("basic")
                }
                _ => refused("invalid_credentials", "The user name or password is wrong."),
            },
            ("POST", "/keyed/exchange/token") => {
                self.counts.exchange += 1;
                let (user, password) = exchange_credentials(request, body);
                if user.as_deref() != Some(self.config.basic_user.as_str())
                    || password.as_deref() != Some(self.config.basic_password.as_str())
                {
                    return refused("invalid_credentials", "The user name or password is wrong.");
                }
                self.next_exchange += 1;
                let token = format!("kx_{}_{}", self.next_exchange, crate::util::random_alnum(24));
                let now = self.now();
                self.exchanged.insert(token.clone(), now + self.config.exchange_lifetime);
                json_response(
                    StatusCode::OK,
                    &json!({"data": {"token": token}, "expires_in": self.config.exchange_lifetime.as_secs()}),
                )
            }
            ("GET", "/keyed/exchanged/me") => {
                let now = self.now();
                match request.bearer.as_deref().and_then(|t| self.exchanged.get(t)) {
                    Some(until) if *until > now => me("token_exchange"),
                    Some(_) => refused("token_expired", "The token has expired."),
                    None => refused("invalid_token", "The token is unknown."),
                }
            }
            ("GET", "/keyed/jwt/me") => match request.bearer.as_deref().map(|t| self.check_signed(t)) {
                Some(Ok(())) => me("signed_jwt"),
                Some(Err(why)) => refused("invalid_token", why),
                None => refused("invalid_token", "No bearer token."),
            },
            ("GET", "/keyed/public/me") => me("none"),
            _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
        }
    }
}

impl State {
    /// Why a self-signed JWT is refused: its signature, key id, issuer or expiry.
    fn check_signed(&self, token: &str) -> Result<(), &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "The token is not a JWT.")?;
        if header.kid.as_deref() != Some("testkit-kid") {
            return Err("The token's key id is unknown.");
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        // Expiry is judged on the provider's clock, below.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&["testkit-issuer"]);
        validation.set_audience(&["testkit"]);
        let key = jsonwebtoken::DecodingKey::from_secret(self.config.jwt_secret.as_bytes());
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|_| "The token's signature or issuer is wrong.")?;
        let exp = data.claims.get("exp").and_then(Value::as_u64).ok_or("The token has no expiry.")?;
        if exp <= self.now().as_secs() {
            return Err("The token has expired.");
        }
        Ok(())
    }
}

/// The `username` and `password` of an exchange request's form or JSON body.
fn exchange_credentials(request: &RecordedRequest, body: &[u8]) -> (Option<String>, Option<String>) {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        let field = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
        return (field("username"), field("password"));
    }
    (request.form_value("username").map(str::to_owned), request.form_value("password").map(str::to_owned))
}

/// How long an exchanged token lives unless configured: a minute, so tests see renewals.
pub(crate) const DEFAULT_EXCHANGE_LIFETIME: Duration = Duration::from_secs(60);
