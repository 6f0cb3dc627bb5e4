//! A token exchange (`auth.kind: token_exchange`, Nango's `TWO_STEP`): the connection's
//! entered fields posted to the profile's exchange URL in its declared shape, the token read
//! from its declared place in the answer. The token manager calls it again when the token is
//! due, as it refreshes OAuth tokens (single flight, the lease across instances, persisted
//! before use).

use super::Connector;
use super::credential::basic_value;
use crate::errors::{FlowError, ProviderError};
use crate::fields::CredentialFields;
use crate::http::{Body, post};
use crate::tokens::TokenSet;
use keyway_manifest::model::{ErrorPhase, ExchangeMethod, TokenRequestFormat};
use keyway_validate::templates::render;
use oauth2::http::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;

const ENDPOINT: &str = "exchange";

impl Connector {
    /// Exchanges `fields` for a token: one POST to the exchange URL (rendered and checked in
    /// [`Connector::new`]), a 2xx JSON answer read at `token_pointer`, its lifetime at
    /// `expires_in_pointer` or the profile's assumed lifetime. A refusal is diagnosed by the
    /// profile's error map (phase `token`), as a token endpoint's.
    pub async fn exchange(&self, fields: &CredentialFields) -> Result<TokenSet, FlowError> {
        let exchange = self.profile.auth.exchange.as_ref().ok_or_else(|| {
            FlowError::Unsupported(format!(
                "`{}` exchanges no credentials for tokens (`auth.exchange`)",
                self.profile.id
            ))
        })?;
        let context = self.credential_context(fields, None);
        let rendered = |pointer: String, template: &str| -> Result<String, FlowError> {
            render(template, &context)
                .map(|v| v.into_owned())
                .map_err(|e| FlowError::Configuration(format!("`{pointer}` does not render: {e}")))
        };
        let mut params = Vec::with_capacity(exchange.body.len());
        for (name, template) in &exchange.body {
            params.push((name.as_str(), rendered(format!("auth.exchange.body.{name}"), template)?));
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = match exchange.format {
            TokenRequestFormat::Form => Body::Form,
            TokenRequestFormat::Json => Body::Json,
        };
        let mut request = match exchange.method {
            ExchangeMethod::Post => post(&self.endpoints.token, &pairs, None, body)
                .map_err(|source| FlowError::Transport { endpoint: ENDPOINT, source })?,
            ExchangeMethod::Get => {
                let mut url = url::Url::parse(&self.endpoints.token)
                    .map_err(|e| FlowError::Configuration(format!("the exchange URL: {e}")))?;
                url.query_pairs_mut().extend_pairs(&pairs);
                oauth2::http::Request::builder()
                    .method(oauth2::http::Method::GET)
                    .uri(String::from(url))
                    .header(oauth2::http::header::ACCEPT, "application/json")
                    .body(Vec::new())
                    .map_err(|e| FlowError::Configuration(format!("the exchange request: {e}")))?
            }
        };
        for (name, template) in &exchange.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FlowError::Configuration(format!("`auth.exchange.headers.{name}` is not a header name"))
            })?;
            let value =
                HeaderValue::from_str(&rendered(format!("auth.exchange.headers.{name}"), template)?).map_err(|_| {
                    FlowError::Configuration(format!("the `{name}` header renders to a value a header cannot carry"))
                })?;
            request.headers_mut().insert(header, value);
        }
        if let Some(basic) = &exchange.basic {
            let username = rendered("auth.exchange.basic.username".to_owned(), &basic.username)?;
            let password = rendered("auth.exchange.basic.password".to_owned(), &basic.password)?;
            let value = HeaderValue::from_str(basic_value(&username, &password).expose_secret())
                .map_err(|_| FlowError::Configuration("the exchange's Basic credentials cannot be sent".to_owned()))?;
            request.headers_mut().insert(oauth2::http::header::AUTHORIZATION, value);
        }
        let response =
            self.http.send(request).await.map_err(|source| FlowError::Transport { endpoint: ENDPOINT, source })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return match ProviderError::from_body(ErrorPhase::Token, Some(status), response.body()) {
                Some(provider) => Err(FlowError::Provider(Box::new(self.diagnose(provider)))),
                // A 4xx says no, whatever its body; a 5xx is an error of the provider's (transient).
                None if (400..500).contains(&status) => Err(FlowError::Provider(Box::new(
                    self.diagnose(ProviderError::from_status(ErrorPhase::Token, status)),
                ))),
                None => Err(FlowError::InvalidResponse { endpoint: ENDPOINT, detail: format!("HTTP {status}") }),
            };
        }
        let map = super::token_endpoint::json_object(ENDPOINT, response.body())?;
        let mut tokens = TokenSet::exchanged(&self.profile, exchange, &map, self.now_ms())
            .map_err(|e| FlowError::InvalidResponse { endpoint: ENDPOINT, detail: e.0 })?;
        tokens.origin = Some(self.origin());
        if self.profile.api.is_some() {
            self.api_base_url(&tokens)?;
        }
        Ok(tokens)
    }
}
