//! How endpoints are rendered at runtime: once per connection, in [`Connector::new`], each
//! of the profile's URL templates is rendered with the connection's environment and
//! parameters by the validator's engine ([`keyway_validate::templates::render`]) and held to
//! the endpoint rules ([`keyway_validate::urls::endpoint_problem`]: https, a public host, no
//! user information or fragment). The profile's extra authorization, token and refresh
//! parameters and the expected issuer are rendered with them. A template that does not
//! render, or renders to an unusable URL, is a configuration error: no request is made.
//!
//! [`Connector::new`]: super::Connector::new

use super::invalid_parameter;
use crate::errors::ConfigError;
use crate::issuer::{IssuerPolicy, origin_of};
use keyway_manifest::model::Profile;
use keyway_validate::Selection;
use keyway_validate::templates::{env_value, render};
use keyway_validate::urls::endpoint_problem;
use serde_json::{Map, Value, json};

/// The endpoints of one connection, rendered.
#[derive(Debug, Clone, Default)]
pub(super) struct Endpoints {
    pub(super) authorize: Option<String>,
    pub(super) token: String,
    /// Where refreshes go: the profile's refresh endpoint, else the token endpoint.
    pub(super) refresh: String,
    pub(super) revoke: Option<String>,
    pub(super) introspect: Option<String>,
    pub(super) userinfo: Option<String>,
    pub(super) device_start: Option<String>,
    pub(super) jwt_audience: Option<String>,
}

/// Everything of a profile's `auth` rendered for one connection.
pub(super) struct Rendered {
    pub(super) endpoints: Endpoints,
    pub(super) authorization_params: Vec<(String, String)>,
    pub(super) token_params: Vec<(String, String)>,
    pub(super) refresh_params: Vec<(String, String)>,
    pub(super) issuer: IssuerPolicy,
}

/// The `params` templates see: every parameter the profile declares, with the connection's
/// value or null.
pub(super) fn template_params(profile: &Profile, selection: &Selection) -> Map<String, Value> {
    profile
        .parameters
        .keys()
        .map(|k| (k.clone(), selection.parameters.get(k).map_or(Value::Null, |v| Value::String(v.clone()))))
        .collect()
}

/// Renders the endpoints, extra parameters and issuer of `profile` for a connection in
/// `environment` with `selection`'s parameters.
pub(super) fn render_connection(
    profile: &Profile,
    selection: &Selection,
    environment: &str,
) -> Result<Rendered, ConfigError> {
    let context = minijinja::Value::from(minijinja::value::Serde(
        json!({"env": env_value(profile, environment), "params": template_params(profile, selection)}),
    ));
    let render_url = |pointer: &str, template: &str| -> Result<String, ConfigError> {
        let rendered = render(template, &context)
            .map_err(|e| ConfigError(vec![invalid_parameter(format!("{pointer} does not render: {e}"), pointer)]))?;
        endpoint_problem(&rendered).map_or(Ok(rendered.into_owned()), |why| {
            Err(ConfigError(vec![invalid_parameter(format!("{pointer} renders to an unusable URL, {why}"), pointer)]))
        })
    };
    let render_opt = |pointer: &str, t: &Option<String>| t.as_deref().map(|t| render_url(pointer, t)).transpose();
    // A profile of another kind has no OAuth endpoints; a token exchange's token comes from
    // its exchange URL, which stands as the token endpoint (the token set's origin). No flow
    // posts to the others: the profile offers no grants.
    let oauth_endpoints = keyway_manifest::model::Endpoints {
        authorize: None,
        token: profile.auth.exchange.as_ref().map(|x| x.url.clone()).unwrap_or_default(),
        refresh: None,
        revoke: None,
        introspect: None,
        userinfo: None,
        device_authorization: None,
    };
    let (e, token_pointer) = match &profile.auth.endpoints {
        Some(e) => (e, "/auth/endpoints/token"),
        None => (&oauth_endpoints, "/auth/exchange/url"),
    };
    let render_token = |pointer: &str, t: &str| if t.is_empty() { Ok(String::new()) } else { render_url(pointer, t) };
    let device_start = match &profile.auth.device {
        Some(device) => Some(render_url("/auth/device/start", &device.start)?),
        None => render_opt("/auth/endpoints/device_authorization", &e.device_authorization)?,
    };
    let jwt_audience = match &profile.auth.jwt_bearer {
        Some(jwt) => Some(
            render(&jwt.audience, &context)
                .map_err(|e| {
                    ConfigError(vec![invalid_parameter(format!("the JWT audience does not render: {e}"), "/auth")])
                })?
                .into_owned(),
        ),
        None => None,
    };
    let endpoints = Endpoints {
        authorize: render_opt("/auth/endpoints/authorize", &e.authorize)?,
        token: render_token(token_pointer, &e.token)?,
        refresh: match &e.refresh {
            Some(refresh) => render_url("/auth/endpoints/refresh", refresh)?,
            None => render_token(token_pointer, &e.token)?,
        },
        revoke: render_opt("/auth/endpoints/revoke", &e.revoke)?,
        introspect: render_opt("/auth/endpoints/introspect", &e.introspect)?,
        userinfo: render_opt("/auth/endpoints/userinfo", &e.userinfo)?,
        device_start,
        jwt_audience,
    };
    let render_params = |map: &keyway_manifest::model::Map<String>| -> Result<Vec<(String, String)>, ConfigError> {
        map.iter()
            .map(|(k, v)| {
                render(v, &context).map(|r| (k.clone(), r.into_owned())).map_err(|e| {
                    ConfigError(vec![invalid_parameter(format!("the parameter `{k}` does not render: {e}"), "/auth")])
                })
            })
            .collect()
    };
    let authorization_params = render_params(&profile.auth.authorization_params)?;
    let token_params = render_params(&profile.auth.token_params)?;
    let refresh_params = render_params(&profile.auth.refresh_params)?;
    let issuer = IssuerPolicy {
        issuer: match &profile.auth.issuer {
            Some(template) => Some(
                render(template, &context)
                    .map_err(|e| {
                        ConfigError(vec![invalid_parameter(
                            format!("/auth/issuer does not render: {e}"),
                            "/auth/issuer",
                        )])
                    })?
                    .into_owned(),
            ),
            None => None,
        },
        authorize_origin: endpoints.authorize.as_deref().and_then(origin_of),
        required: profile.auth.callback_iss_required,
    };
    Ok(Rendered { endpoints, authorization_params, token_params, refresh_params, issuer })
}
