//! What a credential puts on a request to the provider's API, and until when it is good.
//!
//! Every kind of credential becomes a [`RequestCredential`]: an OAuth token set is an
//! `Authorization: Bearer` header good until the access token expires; the other kinds are
//! the profile's `auth.apply` rendered with the connection's entered fields (and, for a token
//! exchange, its exchanged token): headers, query parameters, HTTP Basic. Requests to the API
//! (the connection test, [`Connector::verify_with`]) carry a `RequestCredential`, never a
//! token set or fields, so they do not change with the kind.
//!
//! [`Connector::verify_with`]: super::Connector::verify_with

use super::Connector;
use super::endpoints::template_params;
use crate::errors::{ConfigError, FlowError};
use crate::fields::CredentialFields;
use crate::tokens::TokenSet;
use indexmap::IndexMap;
use keyway_manifest::model::AuthKind;
use keyway_validate::templates::{env_value, render};
use oauth2::HttpRequest;
use oauth2::http::header::{ACCEPT, AUTHORIZATION};
use oauth2::http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

/// What to put on a request to the provider's API, and until when it is good.
///
/// `Debug` shows header and parameter names, never their values.
#[derive(Debug, Clone)]
pub struct RequestCredential {
    headers: Vec<(HeaderName, SecretString)>,
    query: Vec<(String, SecretString)>,
    expires_at: Option<u64>,
}

impl RequestCredential {
    /// A token set's access token as a Bearer header (RFC 6750), good until it expires.
    pub fn bearer(tokens: &TokenSet) -> RequestCredential {
        let value = SecretString::from(format!("Bearer {}", tokens.access_token.expose_secret()));
        RequestCredential { headers: vec![(AUTHORIZATION, value)], query: Vec::new(), expires_at: tokens.expires_at }
    }

    /// Nothing to put on requests (`auth.kind: none`).
    pub fn none() -> RequestCredential {
        RequestCredential { headers: Vec::new(), query: Vec::new(), expires_at: None }
    }

    /// The headers to set; their values are secrets.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &SecretString)> {
        self.headers.iter().map(|(name, value)| (name, value))
    }

    /// The query parameters to add; their values are secrets.
    pub fn query(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.query.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// When it stops being good, in seconds since the Unix epoch; `None` when nothing says.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// A `GET` of `url` asking for JSON, carrying the credential.
    pub(crate) fn get(&self, url: &str) -> Result<HttpRequest, oauth2::http::Error> {
        let uri = if self.query.is_empty() {
            url.to_owned()
        } else {
            let mut pairs = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in self.query() {
                pairs.append_pair(name, value.expose_secret());
            }
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{}", pairs.finish())
        };
        let mut builder = oauth2::http::Request::builder()
            .method(oauth2::http::Method::GET)
            .uri(uri)
            .header(ACCEPT, "application/json");
        for (name, value) in self.headers() {
            builder = builder.header(name, value.expose_secret());
        }
        builder.body(Vec::new())
    }
}

/// An `Authorization: Basic` value (RFC 7617): the user and password as typed, joined by `:`.
pub(super) fn basic_value(username: &str, password: &str) -> SecretString {
    use base64::Engine as _;
    let pair = format!("{username}:{password}");
    SecretString::from(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
}

impl Connector {
    /// The end user's entered values checked against the profile's `auth.fields`
    /// ([`keyway_validate::credentials::check_fields`]): the fields a connection holds. Its
    /// errors never quote a secret value.
    pub fn check_fields(&self, values: IndexMap<String, String>) -> Result<CredentialFields, ConfigError> {
        let problems = keyway_validate::credentials::check_fields(&self.profile, &values);
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(CredentialFields::new(values.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
    }

    /// What a connection's credential puts on API requests: the Bearer token of an OAuth
    /// token set, or the profile's `auth.apply` rendered with `fields` (and a token
    /// exchange's `tokens`). Nothing for `auth.kind: none`.
    pub fn credential(
        &self,
        fields: &CredentialFields,
        tokens: Option<&TokenSet>,
    ) -> Result<RequestCredential, FlowError> {
        let kind = self.profile.auth.kind;
        let missing_tokens = || FlowError::Configuration(format!("a `{}` connection holds no token", kind.as_str()));
        match kind {
            AuthKind::None => return Ok(RequestCredential::none()),
            AuthKind::Oauth2 => return tokens.map(RequestCredential::bearer).ok_or_else(missing_tokens),
            AuthKind::TokenExchange | AuthKind::SignedJwt if tokens.is_none() => return Err(missing_tokens()),
            AuthKind::ApiKey | AuthKind::Basic | AuthKind::TokenExchange | AuthKind::SignedJwt => {}
        }
        let apply = self.profile.auth.apply.as_ref().ok_or_else(|| {
            FlowError::Configuration(format!(
                "`{}` says nowhere where its credential goes (`auth.apply`)",
                self.profile.id
            ))
        })?;
        let context = self.credential_context(fields, tokens);
        let rendered = |pointer: &str, template: &str| -> Result<SecretString, FlowError> {
            // The engine's message names what is missing, never a value.
            render(template, &context)
                .map(|v| SecretString::from(v.into_owned()))
                .map_err(|e| FlowError::Configuration(format!("`{pointer}` does not render: {e}")))
        };
        let mut headers = Vec::with_capacity(apply.headers.len() + 1);
        for (name, template) in &apply.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FlowError::Configuration(format!("`auth.apply.headers.{name}` is not a header name")))?;
            let value = rendered(&format!("auth.apply.headers.{name}"), template)?;
            check_header_value(name, &value)?;
            headers.push((header, value));
        }
        if let Some(basic) = &apply.basic {
            let username = rendered("auth.apply.basic.username", &basic.username)?;
            let password = rendered("auth.apply.basic.password", &basic.password)?;
            if username.expose_secret().contains(':') {
                return Err(FlowError::Configuration(
                    "the Basic user contains `:`, which HTTP Basic cannot carry (RFC 7617)".to_owned(),
                ));
            }
            let value = basic_value(username.expose_secret(), password.expose_secret());
            check_header_value("Authorization", &value)?;
            headers.push((AUTHORIZATION, value));
        }
        let mut query = Vec::with_capacity(apply.query.len());
        for (name, template) in &apply.query {
            query.push((name.clone(), rendered(&format!("auth.apply.query.{name}"), template)?));
        }
        Ok(RequestCredential { headers, query, expires_at: tokens.and_then(|t| t.expires_at) })
    }

    /// What `auth.apply` and `auth.exchange` templates see: `env`, `params`, every declared
    /// field (absent ones `none`) and, with a token set, `token`.
    pub(super) fn credential_context(&self, fields: &CredentialFields, tokens: Option<&TokenSet>) -> minijinja::Value {
        let declared: Map<String, Value> = self
            .profile
            .auth
            .fields
            .keys()
            .map(|k| (k.clone(), fields.get(k).map_or(Value::Null, |v| Value::String(v.expose_secret().to_owned()))))
            .collect();
        let mut context = json!({
            "env": env_value(&self.profile, self.environment()),
            "params": template_params(&self.profile, &self.config.selection),
            "fields": declared,
        });
        if let (Some(tokens), Value::Object(map)) = (tokens, &mut context) {
            let mut token = tokens.fields.clone();
            token.insert("access_token".to_owned(), Value::String(tokens.access_token.expose_secret().to_owned()));
            map.insert("token".to_owned(), Value::Object(token));
        }
        minijinja::Value::from(minijinja::value::Serde(context))
    }
}

/// A rendered header value must be one a header can carry; the value is never quoted.
fn check_header_value(name: &str, value: &SecretString) -> Result<(), FlowError> {
    match HeaderValue::from_str(value.expose_secret()) {
        Ok(_) if !value.expose_secret().is_empty() => Ok(()),
        Ok(_) => Err(FlowError::Configuration(format!("the `{name}` header renders empty"))),
        Err(_) => Err(FlowError::Configuration(format!(
            "the `{name}` header renders to a value a header cannot carry (a control or non-visible character)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::RequestCredential;
    use secrecy::SecretString;

    #[test]
    fn query_parameters_are_appended_encoded() {
        let credential = RequestCredential {
            headers: Vec::new(),
            query: vec![("api_key".to_owned(), SecretString::from("a b&c"))],
            expires_at: None,
        };
        for (url, expected) in [
            ("https://api.example.com/v1/me", "https://api.example.com/v1/me?api_key=a+b%26c"),
            ("https://api.example.com/v1/me?x=1", "https://api.example.com/v1/me?x=1&api_key=a+b%26c"),
        ] {
            let request = credential.get(url).expect("request");
            assert_eq!(request.uri().to_string(), expected);
        }
    }
}
