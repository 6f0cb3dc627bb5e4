//! The grants a connection runs at the token endpoint: each builds its parameters and hands
//! them to the one token-endpoint path ([`Connector::request_tokens`]). The device flow's
//! polling is in `device.rs`.

use super::Connector;
use super::client_auth::ClientAuthentication;
use super::id_token::ExpectedNonce;
use super::token_endpoint::GrantRequest;
use crate::errors::FlowError;
use crate::tokens::{GrantUsed, TokenSet};
use keyway_manifest::model::{ClientAuth, Grant};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

impl Connector {
    /// Exchanges an authorization code (with its PKCE verifier) for tokens. With the
    /// authorization request's `nonce`, the answer's ID token must carry it (`id_token.rs`).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: Option<&SecretString>,
        nonce: Option<&str>,
    ) -> Result<TokenSet, FlowError> {
        let redirect = self.redirect_url()?;
        let mut params =
            vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect.as_str())];
        if let Some(v) = verifier {
            params.push(("code_verifier", v.expose_secret()));
        }
        params.extend(self.token_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.request_tokens(GrantRequest {
            grant: GrantUsed::AuthorizationCode,
            url: &self.endpoints.token,
            params,
            client_authentication: ClientAuthentication::WithSecret,
            previous_refresh: None,
            nonce: nonce.map(|nonce| ExpectedNonce { nonce, id_token_required: verifier.is_none() }),
        })
        .await
    }

    /// Refreshes, sending the client secret or not as the profile and configuration say.
    /// The result keeps the old refresh token unless the provider rotated it.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, FlowError> {
        self.check_origin(tokens)?;
        self.require_grant(Grant::RefreshToken, "refresh token grant")?;
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| FlowError::Configuration("the token set has no refresh token".to_owned()))?;
        let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        params.extend(self.refresh_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.request_tokens(GrantRequest {
            grant: GrantUsed::RefreshToken,
            url: &self.endpoints.refresh,
            params,
            client_authentication: if self.refresh_sends_secret {
                ClientAuthentication::WithSecret
            } else {
                ClientAuthentication::WithoutSecret
            },
            previous_refresh: Some(refresh_token),
            nonce: None,
        })
        .await
    }

    /// The client credentials grant.
    pub async fn client_credentials(&self) -> Result<TokenSet, FlowError> {
        self.require_grant(Grant::ClientCredentials, "client credentials grant")?;
        if self.config.client_secret.is_none() && self.profile.auth.client_auth.standard() != ClientAuth::PrivateKeyJwt
        {
            return Err(FlowError::Configuration("the client credentials grant needs the client secret".to_owned()));
        }
        let scope = self.plan.scope_string();
        let mut params = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        self.request_tokens(GrantRequest {
            grant: GrantUsed::ClientCredentials,
            url: &self.endpoints.token,
            params,
            client_authentication: ClientAuthentication::WithSecret,
            previous_refresh: None,
            nonce: None,
        })
        .await
    }

    /// The JWT bearer grant (RFC 7523): an RS256 assertion signed with the configured private
    /// key, `iss` the client id, `sub` the user, `aud` the profile's audience. The assertion
    /// is the credential: no client authentication is added.
    pub async fn jwt_bearer(&self, subject: &str) -> Result<TokenSet, FlowError> {
        self.require_grant(Grant::JwtBearer, "JWT bearer grant")?;
        if self.config.private_key.is_none() {
            return Err(FlowError::Configuration("the JWT bearer grant needs a private key".to_owned()));
        }
        let audience = self.endpoints.jwt_audience.clone().unwrap_or_else(|| self.endpoints.token.clone());
        let lifetime = self.profile.auth.jwt_bearer.as_ref().map_or(180, |j| u64::from(j.assertion_lifetime_seconds));
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
        }
        let claims =
            Claims { iss: &self.config.client_id, sub: subject, aud: &audience, exp: self.now_ms() / 1000 + lifetime };
        let assertion = self.sign(&claims)?;
        self.request_tokens(GrantRequest {
            grant: GrantUsed::JwtBearer,
            url: &self.endpoints.token,
            params: vec![("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)],
            client_authentication: ClientAuthentication::Omitted,
            previous_refresh: None,
            nonce: None,
        })
        .await
    }
}
