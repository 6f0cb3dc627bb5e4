//! JWTs signed with the connection's private key: the JWT bearer grant's assertion and the
//! `private_key_jwt` client assertion.

use super::Connector;
use crate::errors::FlowError;
use secrecy::ExposeSecret;
use serde::Serialize;

/// A random, unguessable JWT id.
pub(super) fn random_id() -> String {
    keyway_stdx::random_alphanumeric(32)
}

impl Connector {
    /// Signs claims with the configured private key (RS256 for RSA keys, ES256 for P-256),
    /// through `jsonwebtoken`.
    pub(super) fn sign(&self, claims: &impl Serialize) -> Result<String, FlowError> {
        let key = self
            .config
            .private_key
            .as_ref()
            .ok_or_else(|| FlowError::Configuration("signing needs the connection's private key".to_owned()))?;
        let pem = key.expose_secret().as_bytes();
        // The key's own error text is not passed on: it can quote key material.
        let (algorithm, encoding) = match jsonwebtoken::EncodingKey::from_rsa_pem(pem) {
            Ok(key) => (jsonwebtoken::Algorithm::RS256, key),
            Err(_) => match jsonwebtoken::EncodingKey::from_ec_pem(pem) {
                Ok(key) => (jsonwebtoken::Algorithm::ES256, key),
                Err(_) => {
                    return Err(FlowError::Configuration(
                        "the private key is neither an RSA nor an EC P-256 key in PEM form".to_owned(),
                    ));
                }
            },
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = self.config.private_key_id.clone();
        jsonwebtoken::encode(&header, claims, &encoding)
            .map_err(|_| FlowError::Configuration("the JWT could not be signed with the private key".to_owned()))
    }
}
