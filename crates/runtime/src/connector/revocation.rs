//! Token revocation (RFC 7009), through the one path of requests to the authorization server.

use super::client_auth::ClientAuthentication;
use super::token_endpoint::EndpointRequest;
use super::{Connector, TokenKind};
use crate::errors::FlowError;
use crate::http::Body;
use secrecy::{ExposeSecret, SecretString};

impl Connector {
    /// Revokes a token (RFC 7009). Revoking a refresh token usually revokes its access tokens.
    pub async fn revoke(&self, token: &SecretString, kind: TokenKind) -> Result<(), FlowError> {
        let url = self
            .endpoints
            .revoke
            .as_deref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` has no revocation endpoint", self.profile.id)))?;
        // A form whatever `token_request_format` says: RFC 7009 defines only forms.
        self.post_to_endpoint(EndpointRequest {
            endpoint: "revoke",
            url,
            params: vec![("token", token.expose_secret()), ("token_type_hint", kind.hint())],
            body: Body::Form,
            client_authentication: ClientAuthentication::WithSecret,
        })
        .await
        .map(drop)
    }
}
