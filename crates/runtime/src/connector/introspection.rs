//! Token introspection (RFC 7662), through the one path of requests to the authorization
//! server.

use super::client_auth::ClientAuthentication;
use super::token_endpoint::EndpointRequest;
use super::{Connector, TokenKind};
use crate::errors::FlowError;
use crate::http::Body;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What introspection says about a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// Expiry, seconds since the epoch.
    pub exp: Option<u64>,
    /// Issue time, seconds since the epoch.
    pub iat: Option<u64>,
    /// Scopes.
    pub scopes: Option<Vec<String>>,
    /// The client the token belongs to.
    pub client_id: Option<String>,
    /// The user.
    pub username: Option<String>,
    /// The subject.
    pub sub: Option<String>,
    /// `access_token`, `refresh_token`, ...
    pub token_type: Option<String>,
}

/// An introspection answer as RFC 7662 section 2.2 words it: the fields [`Introspection`]
/// reports.
#[derive(Deserialize)]
struct IntrospectionAnswer {
    active: bool,
    /// Space-separated.
    scope: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    token_type: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
}

impl Connector {
    /// Introspects a token (RFC 7662).
    pub async fn introspect(&self, token: &SecretString, kind: TokenKind) -> Result<Introspection, FlowError> {
        const ENDPOINT: &str = "introspect";
        let url =
            self.endpoints.introspect.as_deref().ok_or_else(|| {
                FlowError::Unsupported(format!("`{}` has no introspection endpoint", self.profile.id))
            })?;
        // A form whatever `token_request_format` says: RFC 7662 defines only forms.
        let body = self
            .post_to_endpoint(EndpointRequest {
                endpoint: ENDPOINT,
                url,
                params: vec![("token", token.expose_secret()), ("token_type_hint", kind.hint())],
                body: Body::Form,
                client_authentication: ClientAuthentication::WithSecret,
            })
            .await?;
        let answer: IntrospectionAnswer =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(|e| {
                FlowError::InvalidResponse {
                    endpoint: ENDPOINT,
                    // Neither the body nor serde's message (which can quote values) is repeated.
                    detail: format!("not the expected JSON ({:?} error at `{}`)", e.inner().classify(), e.path()),
                }
            })?;
        let seconds = |t: Option<i64>| t.and_then(|t| u64::try_from(t).ok());
        Ok(Introspection {
            active: answer.active,
            exp: seconds(answer.exp),
            iat: seconds(answer.iat),
            scopes: answer.scope.map(|s| s.split(' ').map(str::to_owned).collect()),
            client_id: answer.client_id,
            username: answer.username,
            sub: answer.sub,
            // Token types are case-insensitive (RFC 6749 section 7.1): reported in lowercase.
            token_type: answer.token_type.map(|t| t.to_lowercase()),
        })
    }
}
