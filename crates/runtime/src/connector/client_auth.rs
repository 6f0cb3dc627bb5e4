//! Client authentication for requests to the authorization server, as the profile's
//! `client_auth` says: the id and secret in the body (`client_secret_post`), the HTTP Basic
//! pair (`client_secret_basic`), or a freshly signed assertion (`private_key_jwt`, RFC 7523
//! section 2.2); and which secret: the main one, then the staged one when the provider
//! refuses the main one as `invalid_client`.

use super::Connector;
use super::jwt::random_id;
use crate::errors::FlowError;
use keyway_manifest::model::ClientAuth;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// RFC 7523 section 2.2.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a request to the authorization server authenticates the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuthentication {
    /// As `client_auth` says, with the client secret (the main one, then the staged one).
    WithSecret,
    /// As `client_auth` says but without a secret: the client id in the body, and a
    /// `private_key_jwt` assertion when that is the method (refreshes of apps that do not
    /// require the secret).
    WithoutSecret,
    /// Nothing added: the request carries its own credential (the JWT bearer grant's
    /// assertion) or names the client itself (device authorization).
    Omitted,
}

/// Client authentication for one request: form fields and the HTTP Basic pair. Not `Debug`:
/// it holds the secret.
#[derive(Default)]
pub(super) struct ClientCredentials {
    form: Vec<(&'static str, String)>,
    basic: Option<(String, String)>,
}

impl ClientCredentials {
    /// The fields to add to the request's body.
    pub(super) fn form(&self) -> impl Iterator<Item = (&str, &str)> {
        self.form.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The HTTP Basic pair (id, secret), if the secret goes in a header.
    pub(super) fn basic(&self) -> Option<(&str, &str)> {
        self.basic.as_ref().map(|(id, secret)| (id.as_str(), secret.as_str()))
    }
}

impl Connector {
    /// Client authentication with `secret` (or none), as the profile says: form fields (the
    /// id, and the secret or a signed assertion), or the HTTP Basic pair.
    pub(super) fn client_credentials_with(
        &self,
        secret: Option<&SecretString>,
    ) -> Result<ClientCredentials, FlowError> {
        let id = self.config.client_id.clone();
        let mut credentials = ClientCredentials::default();
        match (self.profile.auth.client_auth.standard(), secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                credentials.basic = Some((id, secret.expose_secret().to_owned()));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                credentials.form.push(("client_id", id));
                credentials.form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            _ => {
                credentials.form.push(("client_id", id));
                credentials.form.extend(self.assertion_params()?);
            }
        }
        Ok(credentials)
    }

    /// `client_assertion_type` and a freshly signed `client_assertion` when the profile's
    /// client authentication is `private_key_jwt` (RFC 7523 section 2.2); nothing otherwise.
    fn assertion_params(&self) -> Result<Vec<(&'static str, String)>, FlowError> {
        if self.profile.auth.client_auth.standard() != ClientAuth::PrivateKeyJwt {
            return Ok(Vec::new());
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            jti: String,
            iat: u64,
            exp: u64,
        }
        let now = self.now_ms() / 1000;
        let claims = Claims {
            iss: &self.config.client_id,
            sub: &self.config.client_id,
            // OpenID Connect Core section 9: the token endpoint's URL is the audience.
            aud: &self.endpoints.token,
            jti: random_id(),
            iat: now,
            exp: now + 60,
        };
        let assertion = self.sign(&claims)?;
        Ok(vec![("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()), ("client_assertion", assertion)])
    }

    /// The secrets to try, in order: main, then staged. One `None` when no secret is sent.
    fn secrets(&self, send: bool) -> Vec<Option<&SecretString>> {
        match (&self.config.client_secret, send) {
            (Some(main), true) => match &self.config.staged_client_secret {
                Some(staged) if self.prefer_staged.load(Ordering::Relaxed) => vec![Some(staged), Some(main)],
                Some(staged) => vec![Some(main), Some(staged)],
                None => vec![Some(main)],
            },
            _ => vec![None],
        }
    }

    /// Runs a call with each secret until one is not refused as `invalid_client`.
    ///
    /// The secret is passed by value (a cheap clone) so the returned futures stay `Send`.
    pub(super) async fn with_secrets<T, F, Fut>(&self, send_secret: bool, call: F) -> Result<T, FlowError>
    where
        F: Fn(Option<SecretString>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FlowError>>,
    {
        let candidates = self.secrets(send_secret);
        let last = candidates.len() - 1;
        for (i, secret) in candidates.into_iter().enumerate() {
            match call(secret.cloned()).await {
                Err(FlowError::Provider(d)) if i < last && d.provider.error == "invalid_client" => {
                    tracing::warn!(profile = %self.profile.id, "main client secret refused; trying the staged one");
                }
                Ok(v) if i > 0 => {
                    let staged_now = !self.prefer_staged.fetch_xor(true, Ordering::Relaxed);
                    tracing::warn!(profile = %self.profile.id, staged_preferred = staged_now, "the other client secret was accepted; using it first from now on");
                    return Ok(v);
                }
                other => return other,
            }
        }
        Err(FlowError::Configuration("no client secret to try".to_owned()))
    }
}
