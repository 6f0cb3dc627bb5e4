//! The provider's API as a connection sees it: its base URL, rendered with the token set's
//! kept fields, and the profile's connection test.

use super::Connector;
use super::credential::RequestCredential;
use super::endpoints::template_params;
use crate::errors::{FlowError, ProviderError};
use crate::tokens::TokenSet;
use keyway_manifest::model::ErrorPhase;
use keyway_validate::templates::{env_value, render};
use keyway_validate::urls::endpoint_problem;
use serde_json::json;

impl Connector {
    /// The API base URL of a connection: `api.base_url` rendered with its token set's kept
    /// fields (Salesforce: `instance_url`), held to the same rules as an endpoint.
    pub fn api_base_url(&self, tokens: &TokenSet) -> Result<String, FlowError> {
        self.api_base_url_with(Some(tokens))
    }

    /// The API base URL of a connection that may hold no token set (an API key's): its
    /// `token` is empty then.
    pub fn api_base_url_with(&self, tokens: Option<&TokenSet>) -> Result<String, FlowError> {
        let kept = tokens.map(|t| t.fields.clone()).unwrap_or_default();
        let api =
            self.profile.api.as_ref().ok_or_else(|| {
                FlowError::Unsupported(format!("`{}` declares no API (`api.base_url`)", self.profile.id))
            })?;
        let context = minijinja::Value::from(minijinja::value::Serde(json!({
            "env": env_value(&self.profile, &self.environment),
            "params": template_params(&self.profile, &self.config.selection),
            "token": kept,
        })));
        let rendered = render(&api.base_url, &context)
            .map_err(|e| FlowError::ApiBaseUrl(format!("`api.base_url` does not render: {e}")))?;
        // The URL may come from the provider's token response: name the problem, not the value.
        if let Some(why) = endpoint_problem(&rendered) {
            return Err(FlowError::ApiBaseUrl(format!("`api.base_url` renders to an unusable URL, {why}")));
        }
        let parsed = url::Url::parse(&rendered)
            .map_err(|e| FlowError::ApiBaseUrl(format!("`api.base_url` renders to an unusable URL ({e})")))?;
        if let Some(kind) = self.http.literal_refusal(&parsed) {
            return Err(FlowError::ApiBaseUrl(format!(
                "`api.base_url` renders to a URL whose host is {kind}; this client reaches only public \
                 addresses (an operator can allow private networks: `keyway serve --allow-private-network`)"
            )));
        }
        Ok(rendered.trim_end_matches('/').to_owned())
    }

    /// Runs the profile's connection test (`api.verify`): a `GET` under the API base URL with
    /// the access token. Any 2xx passes; an error answer is diagnosed by the profile's error
    /// map (phase `api`); 5xx and timeouts are transient.
    pub async fn verify(&self, tokens: &TokenSet) -> Result<(), FlowError> {
        self.verify_with(&RequestCredential::bearer(tokens), Some(tokens)).await
    }

    /// [`Connector::verify`] with any kind of credential (`tokens`: the set the base URL's
    /// kept fields come from, if the connection holds one).
    pub async fn verify_with(
        &self,
        credential: &RequestCredential,
        tokens: Option<&TokenSet>,
    ) -> Result<(), FlowError> {
        const ENDPOINT: &str = "api";
        let verify = self.profile.api.as_ref().and_then(|api| api.verify.as_ref()).ok_or_else(|| {
            FlowError::Unsupported(format!("`{}` declares no connection test (`api.verify`)", self.profile.id))
        })?;
        let url = format!("{}{}", self.api_base_url_with(tokens)?, verify.path);
        let request =
            credential.get(&url).map_err(|e| FlowError::Configuration(format!("the connection test's URL: {e}")))?;
        let response =
            self.http.send(request).await.map_err(|source| FlowError::Transport { endpoint: ENDPOINT, source })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        match ProviderError::from_body(ErrorPhase::Api, Some(status), response.body()) {
            Some(provider) => Err(FlowError::Provider(Box::new(self.diagnose(provider)))),
            // A 4xx says no, whatever its body; a 5xx is an error of the provider's (transient).
            None if (400..500).contains(&status) => {
                Err(FlowError::Provider(Box::new(self.diagnose(ProviderError::from_status(ErrorPhase::Api, status)))))
            }
            None => Err(FlowError::InvalidResponse { endpoint: ENDPOINT, detail: format!("HTTP {status}") }),
        }
    }
}
