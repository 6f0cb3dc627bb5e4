//! The one path of every request to the authorization server: each grant at the token
//! endpoint (code, refresh, client credentials, JWT bearer, device polling), and the device
//! authorization, introspection and revocation endpoints.
//!
//! A caller says what it sends, as an [`EndpointRequest`]: the endpoint, its URL, its
//! parameters, the body's encoding and how the client authenticates.
//! [`Connector::post_to_endpoint`] adds the client's authentication (`client_auth.rs`: the
//! secret in the form, HTTP Basic or a `private_key_jwt` assertion; the staged secret when the
//! main one is refused), encodes the body, posts it through the runtime's one [`HttpClient`],
//! and returns a 200 answer's body; any other answer is read as the provider's error (any body
//! shape, any Content-Type) and diagnosed by the profile. [`Connector::request_tokens`] is that
//! path for a grant, a [`GrantRequest`]: the body encoded per `token_request_format`, the
//! answer read as a [`TokenSet`]. A grant to come (token exchange, RFC 8693) is one more
//! `GrantRequest`.
//!
//! [`HttpClient`]: crate::HttpClient

use super::Connector;
use super::TokenKind;
use super::client_auth::ClientAuthentication;
use super::id_token::{self, ExpectedNonce};
use super::introspection::Introspection;
use crate::errors::{FlowError, ProviderError};
use crate::http::{Body, post};
use crate::tokens::{ExpirySource, GrantUsed, TokenSet};
use keyway_manifest::model::{ErrorPhase, TokenRequestFormat};
use secrecy::SecretString;
use serde_json::{Map, Value};

/// One request to an authorization-server endpoint.
pub(super) struct EndpointRequest<'a> {
    /// Names the endpoint in errors: `token`, `device`, `introspect` or `revoke`.
    pub(super) endpoint: &'static str,
    pub(super) url: &'a str,
    /// What the request sends, before client authentication is added.
    pub(super) params: Vec<(&'a str, &'a str)>,
    pub(super) body: Body,
    pub(super) client_authentication: ClientAuthentication,
}

/// A grant at the token endpoint: what it sends, where, and what the token set records.
pub(super) struct GrantRequest<'a> {
    pub(super) grant: GrantUsed,
    /// The token endpoint, or the refresh endpoint for refreshes.
    pub(super) url: &'a str,
    /// The grant's parameters (`grant_type` and what it needs), before client authentication.
    pub(super) params: Vec<(&'a str, &'a str)>,
    pub(super) client_authentication: ClientAuthentication,
    /// Kept when a refresh returns no new refresh token.
    pub(super) previous_refresh: Option<&'a SecretString>,
    /// The code exchange's: what its ID token must repeat.
    pub(super) nonce: Option<ExpectedNonce<'a>>,
}

impl Connector {
    /// Runs a grant: posts it to the token endpoint and reads the answer as a token set.
    pub(super) async fn request_tokens(&self, request: GrantRequest<'_>) -> Result<TokenSet, FlowError> {
        let GrantRequest { grant, url, params, client_authentication, previous_refresh, nonce } = request;
        let body = match self.profile.auth.token_request_format {
            TokenRequestFormat::Form => Body::Form,
            TokenRequestFormat::Json => Body::Json,
        };
        let answer = self
            .post_to_endpoint(EndpointRequest { endpoint: "token", url, params, body, client_authentication })
            .await?;
        let map = json_object("token", &answer)?;
        if let Some(expected) = nonce {
            id_token::check(&map, expected, &self.config.client_id)?;
        }
        self.token_set_from_map(&map, grant, previous_refresh).await
    }

    /// Posts `request` with the client's authentication added: the 200 answer's body, or the
    /// provider's error.
    pub(super) async fn post_to_endpoint(&self, request: EndpointRequest<'_>) -> Result<Vec<u8>, FlowError> {
        let send_secret = match request.client_authentication {
            ClientAuthentication::Omitted => return self.send(&request, &request.params, None).await,
            ClientAuthentication::WithSecret => true,
            ClientAuthentication::WithoutSecret => false,
        };
        let request = &request;
        self.with_secrets(send_secret, |secret: Option<SecretString>| async move {
            let credentials = self.client_credentials_with(secret.as_ref())?;
            let params: Vec<(&str, &str)> = request.params.iter().copied().chain(credentials.form()).collect();
            self.send(request, &params, credentials.basic()).await
        })
        .await
    }

    /// One POST of `params` (and the Basic pair, if any) as `request` says: a 200 answer's body;
    /// any other answer read as a provider error.
    async fn send(
        &self,
        request: &EndpointRequest<'_>,
        params: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, FlowError> {
        let endpoint = request.endpoint;
        let http_request = post(request.url, params, basic, request.body)
            .map_err(|source| FlowError::Transport { endpoint, source })?;
        let response =
            self.http.send(http_request).await.map_err(|source| FlowError::Transport { endpoint, source })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response.into_body());
        }
        match ProviderError::from_body(ErrorPhase::Token, Some(status), response.body()) {
            Some(provider) => Err(FlowError::Provider(Box::new(self.diagnose(provider)))),
            None => {
                Err(FlowError::InvalidResponse { endpoint, detail: format!("HTTP {status} without an OAuth error") })
            }
        }
    }

    /// A token set from a token response obtained elsewhere (tokens a platform already holds),
    /// read exactly as this connector reads its own: kept fields, scopes, and the expiry from
    /// `expires_in`, introspection or the profile's assumed lifetime.
    pub async fn import_tokens(&self, response: &Map<String, Value>) -> Result<TokenSet, FlowError> {
        self.token_set_from_map(response, GrantUsed::AuthorizationCode, None).await
    }

    async fn token_set_from_map(
        &self,
        map: &Map<String, Value>,
        grant: GrantUsed,
        previous_refresh: Option<&SecretString>,
    ) -> Result<TokenSet, FlowError> {
        let requested: Vec<String> = self.plan.values().into_iter().map(str::to_owned).collect();
        let mut tokens =
            TokenSet::from_response(&self.profile, map, grant, self.now_ms(), &requested, previous_refresh)
                .map_err(|e| FlowError::InvalidResponse { endpoint: "token", detail: e.0 })?;
        tokens.origin = Some(self.origin());
        // Fields that become the API's URL (Salesforce's `instance_url`) are judged as they
        // arrive, so a set that would send its token to an internal host is never stored.
        if self.profile.api.is_some() {
            self.api_base_url(&tokens)?;
        }
        if tokens.expiry_source != ExpirySource::ExpiresIn
            && self.profile.auth.tokens.introspect_for_expiry
            && self.endpoints.introspect.is_some()
        {
            match self.introspect(&tokens.access_token, TokenKind::Access).await {
                Ok(Introspection { active: true, exp: Some(exp), .. }) => {
                    tokens.expires_at = Some(exp);
                    tokens.expiry_source = ExpirySource::Introspection;
                }
                Ok(_) => {
                    tracing::warn!(profile = %self.profile.id, "introspection gave no expiry; assuming the profile's lifetime")
                }
                Err(e) => {
                    tracing::warn!(profile = %self.profile.id, error = %e, "introspection failed; assuming the profile's lifetime")
                }
            }
        }
        Ok(tokens)
    }
}

/// An answer that must be a JSON object (token and device authorization answers). Neither
/// the body nor serde's message (which can quote values) is repeated.
pub(super) fn json_object(endpoint: &'static str, body: &[u8]) -> Result<Map<String, Value>, FlowError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FlowError::InvalidResponse { endpoint, detail: "not a JSON object".to_owned() }),
        Err(e) => Err(FlowError::InvalidResponse {
            endpoint,
            detail: format!("not JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
        }),
    }
}
