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

impl Connector {
    /// A self-signed JWT for a `signed_jwt` connection: `auth.jwt`'s claims and key id
    /// rendered with the connection's fields, `iat` now and `exp` after `lifetime_seconds`,
    /// signed with the key from its fields. The token set holds it until `exp`; the token
    /// manager signs another when it is due.
    pub fn sign_jwt(&self, fields: &crate::CredentialFields) -> Result<crate::TokenSet, FlowError> {
        use keyway_manifest::model::{ClaimTemplate, JwtAlgorithm as A, KeyEncoding};
        let jwt = self
            .profile
            .auth
            .jwt
            .as_ref()
            .ok_or_else(|| FlowError::Unsupported(format!("`{}` signs no JWT (`auth.jwt`)", self.profile.id)))?;
        let context = self.credential_context(fields, None);
        let rendered = |pointer: String, template: &str| -> Result<String, FlowError> {
            keyway_validate::templates::render(template, &context)
                .map(|v| v.into_owned())
                .map_err(|e| FlowError::Configuration(format!("`{pointer}` does not render: {e}")))
        };
        let key = secrecy::SecretString::from(rendered("auth.jwt.key".to_owned(), &jwt.key)?);
        let key_text = key.expose_secret().trim();
        // The key's own error text is not passed on: it can quote key material.
        let unusable = |what: &str| FlowError::Configuration(format!("the signing key is not {what}"));
        let algorithm = match jwt.algorithm {
            A::HS256 => jsonwebtoken::Algorithm::HS256,
            A::HS384 => jsonwebtoken::Algorithm::HS384,
            A::HS512 => jsonwebtoken::Algorithm::HS512,
            A::RS256 => jsonwebtoken::Algorithm::RS256,
            A::RS384 => jsonwebtoken::Algorithm::RS384,
            A::RS512 => jsonwebtoken::Algorithm::RS512,
            A::PS256 => jsonwebtoken::Algorithm::PS256,
            A::PS384 => jsonwebtoken::Algorithm::PS384,
            A::PS512 => jsonwebtoken::Algorithm::PS512,
            A::ES256 => jsonwebtoken::Algorithm::ES256,
            A::ES384 => jsonwebtoken::Algorithm::ES384,
        };
        let encoding = match jwt.algorithm {
            A::HS256 | A::HS384 | A::HS512 => {
                use base64::Engine as _;
                let secret = match jwt.key_encoding {
                    KeyEncoding::Utf8 => key_text.as_bytes().to_vec(),
                    KeyEncoding::Hex => hex_decode(key_text).ok_or_else(|| unusable("hexadecimal"))?,
                    KeyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                        .decode(key_text)
                        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(key_text))
                        .map_err(|_| unusable("base64"))?,
                };
                if secret.is_empty() {
                    return Err(unusable("a non-empty secret"));
                }
                jsonwebtoken::EncodingKey::from_secret(&secret)
            }
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(key_text.as_bytes())
                    .map_err(|_| unusable("an RSA key in PEM form"))?
            }
            A::ES256 | A::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(key_text.as_bytes())
                .map_err(|_| unusable("an EC key in PEM form"))?,
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = jwt.key_id.as_ref().map(|k| rendered("auth.jwt.key_id".to_owned(), k)).transpose()?;
        let now = self.now_ms() / 1000;
        let expires_at = now.saturating_add(u64::from(jwt.lifetime_seconds));
        let mut claims = serde_json::Map::new();
        for (name, claim) in &jwt.claims {
            let value = match claim {
                ClaimTemplate::Text(t) => serde_json::Value::String(rendered(format!("auth.jwt.claims.{name}"), t)?),
                ClaimTemplate::List(items) => serde_json::Value::Array(
                    items
                        .iter()
                        .map(|t| rendered(format!("auth.jwt.claims.{name}"), t).map(serde_json::Value::String))
                        .collect::<Result<_, _>>()?,
                ),
            };
            claims.insert(name.clone(), value);
        }
        claims.insert("iat".to_owned(), serde_json::Value::from(now));
        claims.insert("exp".to_owned(), serde_json::Value::from(expires_at));
        let token = jsonwebtoken::encode(&header, &claims, &encoding)
            .map_err(|_| FlowError::Configuration("the JWT could not be signed with the key".to_owned()))?;
        Ok(crate::TokenSet::signed(token, self.now_ms(), expires_at, self.origin()))
    }
}

/// Hexadecimal digits to bytes; `None` for anything else (an odd length, another character).
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
