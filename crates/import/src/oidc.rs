//! A draft profile from an OpenID Connect discovery document or RFC 8414 authorization-server
//! metadata.
//!
//! | metadata | profile |
//! |---|---|
//! | `issuer` | `auth.issuer` (RFC 9207: a callback's `iss` must equal it) |
//! | `authorization_response_iss_parameter_supported` | `auth.callback_iss_required` |
//! | `*_endpoint` | `auth.endpoints.*` |
//! | `grant_types_supported` (default `authorization_code`) | `auth.grants` |
//! | `code_challenge_methods_supported` | `auth.pkce`: `required` with `S256`, `off` without it, `optional` when unsaid |
//! | `token_endpoint_auth_methods_supported` (default `client_secret_basic`) | `auth.client_auth` |
//! | `scopes_supported` | `scopes` (no labels: left for the author); `openid` and `offline_access` by default |
//! | `{placeholder}` in a URL (Microsoft's `{tenantid}`) | a required parameter |
//!
//! The draft is validated before it is returned; what metadata cannot say (labels, rotation,
//! actions, the API, the guide) is listed for the author as [`Draft::todo`].

use keyway_diagnostics::Diagnostic;
use serde_json::{Map, Value, json};

const COMMAND: &str = "keyway import oidc";

/// The most scopes a draft lists: a catalogue longer than this is not a scope list.
const MAX_SCOPES: usize = 1000;

/// A drafted profile.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The profile id (also the file stem).
    pub id: String,
    /// The profile as YAML text, with a header comment listing what to fill in.
    pub yaml: String,
    /// What the author must still fill in or check.
    pub todo: Vec<String>,
    /// What validating the draft found (warnings; errors would be a bug in the importer).
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a document cannot be drafted from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not JSON, or not an object.
    #[error("the metadata is not a JSON object{0}")]
    NotAnObject(String),
    /// A required member is missing or not a string.
    #[error("the metadata has no `{0}` (a string)")]
    Missing(&'static str),
    /// A member that must be a URL is not an absolute https URL (http only on loopback).
    #[error("`{0}` is not an https URL (http is accepted for loopback hosts only)")]
    NotHttps(&'static str),
    /// The document names another issuer than the one it was fetched for (OpenID Connect
    /// Discovery section 4.3, RFC 8414 section 3.3): using it would invite a mix-up.
    #[error("the metadata's `issuer` is `{found}`, not the `{expected}` it was fetched for")]
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The document offers nothing keyway can run.
    #[error(
        "the metadata offers no grant keyway runs (authorization code, refresh, client credentials, JWT bearer, device)"
    )]
    NoGrant,
}

/// Options of a draft.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The profile id (default: from the issuer's host).
    pub id: Option<String>,
    /// The issuer the document was fetched for: the document must name exactly it.
    pub expected_issuer: Option<String>,
    /// Where the document came from, for the header comment.
    pub source: String,
}

/// Drafts a profile from a metadata document's JSON text.
pub fn draft(metadata: &str, options: &Options) -> Result<Draft, MetadataError> {
    let document: Value = serde_json::from_str(metadata)
        .map_err(|e| MetadataError::NotAnObject(format!(" (line {}, column {})", e.line(), e.column())))?;
    let Value::Object(meta) = document else { return Err(MetadataError::NotAnObject(String::new())) };
    let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let list = |key: &str| -> Option<Vec<&str>> {
        meta.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect())
    };
    let issuer = text("issuer").ok_or(MetadataError::Missing("issuer"))?;
    if let Some(expected) = &options.expected_issuer
        && !issuer_matches(issuer.trim_end_matches('/'), expected.trim_end_matches('/'))
    {
        return Err(MetadataError::IssuerMismatch { expected: expected.clone(), found: issuer.to_owned() });
    }
    let mut todo = Vec::new();
    let mut parameters = Map::new();
    // A URL with `{name}` in it (Microsoft's multi-tenant `{tenantid}`) takes a parameter.
    let mut template = |key: &'static str, url: &str| -> Result<String, MetadataError> {
        if !is_usable_url(&url.replace(['{', '}'], "")) {
            return Err(MetadataError::NotHttps(key));
        }
        let (rendered, names) = placeholders_to_params(url);
        for name in names {
            if !parameters.contains_key(&name) {
                todo.push(format!(
                    "parameters.{name}: `{{{name}}}` in the metadata's URLs is a per-tenant value; check its label and pattern"
                ));
                parameters.insert(
                    name.clone(),
                    json!({
                        "label": name,
                        "description": format!("The `{{{name}}}` value in the provider's URLs."),
                        "pattern": "^(?-u:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?)$",
                    }),
                );
            }
        }
        Ok(rendered)
    };

    let issuer_template = template("issuer", issuer)?;
    let mut endpoints = Map::new();
    for (member, name) in [
        ("authorization_endpoint", "authorize"),
        ("token_endpoint", "token"),
        ("revocation_endpoint", "revoke"),
        ("introspection_endpoint", "introspect"),
        ("userinfo_endpoint", "userinfo"),
        ("device_authorization_endpoint", "device_authorization"),
    ] {
        if let Some(url) = text(member) {
            let key: &'static str = member;
            endpoints.insert(name.to_owned(), json!(template(key, url)?));
        }
    }
    if !endpoints.contains_key("token") {
        return Err(MetadataError::Missing("token_endpoint"));
    }

    // RFC 8414 section 2: absent grant types mean authorization code (and implicit).
    let grant_types = list("grant_types_supported").unwrap_or_else(|| vec!["authorization_code"]);
    let response_types = list("response_types_supported").unwrap_or_else(|| vec!["code"]);
    let mut grants = Vec::new();
    for (wire, grant) in [
        ("authorization_code", "authorization_code"),
        ("refresh_token", "refresh_token"),
        ("client_credentials", "client_credentials"),
        ("urn:ietf:params:oauth:grant-type:jwt-bearer", "jwt_bearer"),
        ("urn:ietf:params:oauth:grant-type:device_code", "device_code"),
    ] {
        let usable = match grant {
            "authorization_code" => {
                endpoints.contains_key("authorize") && response_types.iter().any(|r| r.split(' ').any(|p| p == "code"))
            }
            "device_code" => endpoints.contains_key("device_authorization"),
            _ => true,
        };
        if grant_types.contains(&wire) && usable {
            grants.push(grant);
        }
    }
    if grants.is_empty() {
        return Err(MetadataError::NoGrant);
    }
    let code_flow = grants.contains(&"authorization_code");
    if !grants.contains(&"refresh_token") && code_flow && !meta.contains_key("grant_types_supported") {
        todo.push("auth.grants: the metadata does not list grant types; add `refresh_token` if the provider issues refresh tokens".to_owned());
    }

    let pkce = match list("code_challenge_methods_supported") {
        Some(methods) if methods.contains(&"S256") => "required",
        Some(_) => "off",
        None => {
            if code_flow {
                todo.push("auth.pkce: the metadata does not say whether PKCE is supported (`optional` sends it; make it `required` or `off` once known)".to_owned());
            }
            "optional"
        }
    };

    // RFC 8414 section 2: absent methods mean `client_secret_basic`.
    let methods = list("token_endpoint_auth_methods_supported").unwrap_or_else(|| vec!["client_secret_basic"]);
    let client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
        .into_iter()
        .find(|m| methods.contains(m))
        .unwrap_or_else(|| {
            todo.push(format!(
                "auth.client_auth: the provider lists only methods keyway does not run ({}); `client_secret_basic` is a guess",
                methods.join(", ")
            ));
            "client_secret_basic"
        });
    // A client is registered with one method; a provider offering several cannot say which.
    let runnable: Vec<&str> = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
        .into_iter()
        .filter(|m| methods.contains(m))
        .collect();
    if runnable.len() > 1 {
        todo.push(format!(
            "auth.client_auth: the provider accepts {}; `{client_auth}` was chosen: set the method your client is registered with (a mismatch fails as `invalid_client` only after the user consents)",
            runnable.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    if client_auth == "private_key_jwt" {
        let algs = list("token_endpoint_auth_signing_alg_values_supported").unwrap_or_default();
        if !algs.is_empty() && !algs.iter().any(|a| *a == "RS256" || *a == "ES256") {
            todo.push(format!(
                "auth.client_auth: private_key_jwt signs with RS256 or ES256; the provider accepts {}",
                algs.join(", ")
            ));
        }
    }

    let scope_values: Vec<&str> = list("scopes_supported").unwrap_or_default().into_iter().take(MAX_SCOPES).collect();
    let refresh_scope = scope_values.contains(&"offline_access");
    let mut scopes = Map::new();
    for value in &scope_values {
        let mut entry = Map::new();
        if *value == "offline_access" && grants.contains(&"refresh_token") {
            entry.insert("grants_refresh".into(), json!(true));
        }
        scopes.insert((*value).to_owned(), Value::Object(entry));
    }
    if !scopes.is_empty() {
        todo.push(format!("scopes: {} scope(s) without a label or description", scopes.len()));
    }
    let mut default_scopes = Vec::new();
    if code_flow && scope_values.contains(&"openid") {
        default_scopes.push("openid");
    }
    if refresh_scope && grants.contains(&"refresh_token") {
        default_scopes.push("offline_access");
    }

    let mut auth = Map::new();
    auth.insert("grants".into(), json!(grants));
    auth.insert("endpoints".into(), Value::Object(endpoints));
    auth.insert("issuer".into(), json!(issuer_template));
    if meta.get("authorization_response_iss_parameter_supported") == Some(&Value::Bool(true)) {
        auth.insert("callback_iss_required".into(), json!(true));
    }
    auth.insert("client_auth".into(), json!(client_auth));
    auth.insert("pkce".into(), json!(pkce));
    if !default_scopes.is_empty() {
        auth.insert("default_scopes".into(), json!(default_scopes));
    }
    if grants.contains(&"refresh_token") {
        auth.insert(
            "refresh".into(),
            json!({"send_client_secret": true, "rotation": "optional", "needs_scope": refresh_scope}),
        );
        todo.push(
            "auth.refresh.rotation: the metadata does not say whether refresh tokens rotate (`optional` accepts both)"
                .to_owned(),
        );
        if !refresh_scope {
            todo.push("auth.refresh.needs_scope: no `offline_access` scope; say how the provider grants refresh tokens (an authorization parameter such as `access_type: offline`?)".to_owned());
        }
    }
    if grants.contains(&"jwt_bearer") {
        auth.insert("jwt_bearer".into(), json!({"audience": issuer_template}));
        todo.push("auth.jwt_bearer.audience: the issuer is a guess; check the provider's documentation".to_owned());
    }

    let host = url::Url::parse(&issuer.replace(['{', '}'], "")).ok().and_then(|u| u.host_str().map(str::to_owned));
    let id = match &options.id {
        Some(id) => id.clone(),
        None => id_from_host(host.as_deref().unwrap_or_default()),
    };
    let name = host.clone().unwrap_or_else(|| id.clone());
    todo.push(format!("name: `{name}` is the issuer's host; give the provider's name"));
    todo.push("actions: none yet; add the API calls the platform offers, with the scopes each needs".to_owned());
    todo.push("api.base_url: the metadata says nothing about the API".to_owned());
    todo.push("guide: the admin's setup steps (registering the app and its redirect URI)".to_owned());

    let mut profile = Map::new();
    profile.insert("id".into(), json!(id));
    profile.insert("name".into(), json!(name));
    profile.insert("description".into(), json!(format!("Drafted from the authorization server metadata of {issuer}.")));
    if let Some(docs) = text("service_documentation").filter(|d| d.starts_with("https://")) {
        profile.insert("docs".into(), json!([{"title": "Provider documentation", "url": docs}]));
    }
    profile.insert("environments".into(), json!({"production": {"label": "Production", "default": true}}));
    if !parameters.is_empty() {
        profile.insert("parameters".into(), Value::Object(parameters));
    }
    profile.insert("auth".into(), Value::Object(auth));
    if !scopes.is_empty() {
        profile.insert("scopes".into(), Value::Object(scopes));
    }

    let body = serde_yaml::to_string(&Value::Object(profile)).unwrap_or_default();
    let mut header = format!(
        "# yaml-language-server: $schema=../schemas/profile.schema.json\n# Drafted by `{COMMAND}` from {}.\n# Still to fill in or check:\n",
        one_line(&options.source)
    );
    for item in &todo {
        header.push_str(&format!("# - {}\n", one_line(item)));
    }
    let yaml = format!("{header}{body}");

    let mut loader = keyway_manifest::Loader::new();
    loader.add_str(format!("{id}.yaml"), yaml.clone());
    let mut loaded = loader.load();
    keyway_validate::check_loaded(&mut loaded);
    Ok(Draft { id, yaml, todo, diagnostics: loaded.diagnostics })
}

/// Whether the metadata's `issuer` names the URL it was fetched for. A `{name}` placeholder
/// (Microsoft's multi-tenant `{tenantid}`, fetched as `common`) stands for one path segment.
fn issuer_matches(issuer: &str, fetched_for: &str) -> bool {
    let (issuer, fetched_for): (Vec<&str>, Vec<&str>) = (issuer.split('/').collect(), fetched_for.split('/').collect());
    issuer.len() == fetched_for.len()
        && issuer.iter().zip(&fetched_for).all(|(i, f)| {
            i == f || (i.len() > 2 && i.starts_with('{') && i.ends_with('}') && !f.is_empty() && !i[1..].contains('{'))
        })
}

/// `https://`, or `http://` to a loopback host; no credentials. Metadata is fetched only
/// from such a URL: a document read over plain http from elsewhere could name anyone's
/// endpoints.
pub fn is_usable_url(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else { return false };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

/// `https://x/{tenantid}/v2.0` → (`https://x/{{ params.tenantid }}/v2.0`, [`tenantid`]).
/// Text that is not a `{name}` placeholder is kept as it is.
fn placeholders_to_params(url: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut names = Vec::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let close = after.find('}');
        let name = close.map(|c| &after[1..c]);
        match name {
            Some(name)
                if !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && name.starts_with(|c: char| c.is_ascii_alphabetic()) =>
            {
                let param = name.to_ascii_lowercase();
                out.push_str(&format!("{{{{ params.{param} }}}}"));
                if !names.contains(&param) {
                    names.push(param);
                }
                rest = &after[name.len() + 2..];
            }
            _ => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    (out, names)
}

/// `accounts.google.com` → `google`; `dev-123.okta.com` → `okta`; a loopback or bare host →
/// `oidc-provider`.
fn id_from_host(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
    let candidate = if is_ip || labels.len() < 2 { "oidc-provider" } else { labels[labels.len() - 2] };
    let id: String = candidate
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if id.starts_with(|c: char| c.is_ascii_lowercase()) { id } else { format!("oidc-{id}") }
}

/// Metadata text in a comment stays on its line.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Where a metadata document lives for an issuer: OpenID Connect Discovery first, then RFC
/// 8414's well-known URI (the path after the well-known segment).
pub fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Ok(url) = url::Url::parse(trimmed) {
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        urls.push(format!("{origin}/.well-known/oauth-authorization-server{path}"));
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_parameters() {
        assert_eq!(
            placeholders_to_params("https://login.example.com/{tenantid}/v2.0"),
            ("https://login.example.com/{{ params.tenantid }}/v2.0".to_owned(), vec!["tenantid".to_owned()])
        );
        assert_eq!(placeholders_to_params("https://x/{/y}"), ("https://x/{/y}".to_owned(), vec![]));
        assert_eq!(placeholders_to_params("https://x/{"), ("https://x/{".to_owned(), vec![]));
    }

    #[test]
    fn ids_from_hosts() {
        assert_eq!(id_from_host("accounts.google.com"), "google");
        assert_eq!(id_from_host("dev-123.okta.com"), "okta");
        assert_eq!(id_from_host("127.0.0.1"), "oidc-provider");
        assert_eq!(id_from_host("localhost"), "oidc-provider");
        assert_eq!(id_from_host("login.3m.com"), "oidc-3m");
    }

    #[test]
    fn an_issuer_placeholder_stands_for_one_segment() {
        let ms = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(issuer_matches(ms, "https://login.microsoftonline.com/common/v2.0"));
        assert!(!issuer_matches(ms, "https://login.microsoftonline.com/a/b/v2.0"));
        assert!(!issuer_matches(ms, "https://evil.example/common/v2.0"));
        assert!(issuer_matches("https://a.example", "https://a.example"));
        assert!(!issuer_matches("https://a.example", "https://b.example"));
    }

    #[test]
    fn metadata_locations() {
        assert_eq!(
            metadata_urls("https://id.example.com/tenant/"),
            vec![
                "https://id.example.com/tenant/.well-known/openid-configuration".to_owned(),
                "https://id.example.com/.well-known/oauth-authorization-server/tenant".to_owned(),
            ]
        );
    }
}
