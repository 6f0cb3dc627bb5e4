//! Shareable guide URLs: a selection encoded in a stable, canonical query string.
//!
//! One guide, one URL: aliases are resolved, defaults left out, actions written in profile
//! order without repeats, keys in a fixed order. The base URL's own query (a docs site's
//! `?lang=en`) is kept ahead of the guide's keys and left alone when the URL is read back.

use crate::render::GuideRequest;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::model::Profile;

/// The query keys, in the order they are written. Connection parameters follow as
/// `param.NAME`.
const KEYS: [&str; 11] = [
    "profile",
    "actions",
    "env",
    "variant",
    "scopes",
    "grants",
    "pkce",
    "refresh_secret",
    "rotation",
    "callback",
    "app",
];

/// The prefix of a connection parameter's key.
const PARAM: &str = "param.";

/// Longest guide URL accepted when reading one back, and the longest base URL.
pub const MAX_URL_LEN: usize = 8 * 1024;

fn bad_url(message: String, pointer: &str) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::new(Code::InvalidGuideUrl, message)
            .at_pointer(pointer)
            .with_help("guide URLs are absolute http(s) URLs, such as https://docs.example.com/guides/salesforce"),
    )
}

/// Parses `text` as an absolute http(s) URL, or says why it is not one (KW0510). Anything
/// else (`javascript:`, `data:`, relative paths) would become a link that runs or goes
/// nowhere.
pub(crate) fn http_url(text: &str, pointer: &str) -> Result<url::Url, Box<Diagnostic>> {
    if text.len() > MAX_URL_LEN {
        return Err(bad_url(
            format!("the URL is {} bytes long; at most {MAX_URL_LEN} are accepted", text.len()),
            pointer,
        ));
    }
    let shown = || crate::text::shown(text, 80);
    let url =
        url::Url::parse(text).map_err(|e| bad_url(format!("`{}` is not an absolute URL ({e})", shown()), pointer))?;
    match url.scheme() {
        "https" | "http" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "https" | "http" => Err(bad_url(format!("`{}` has no host", shown()), pointer)),
        scheme => {
            Err(bad_url(format!("`{}` uses the `{scheme}` scheme; only http and https are links", shown()), pointer))
        }
    }
}

/// The URL of the guide for `request` under `base` (`https://docs.example.com/guides/salesforce`).
/// Canonical: keys in a fixed order, aliases resolved, defaults (the default environment and
/// variant, the profile's PKCE and refresh-secret behaviour) left out, actions in profile
/// order without repeats, values percent-encoded. Two requests that select the same thing get
/// the same URL. `request.base_url` is ignored; `base` is used.
pub fn guide_url(base: &str, profile: &Profile, request: &GuideRequest) -> Result<String, Box<Diagnostic>> {
    let mut url = http_url(base, "/base_url")?;
    let unknown: Vec<&str> =
        request.actions.iter().filter(|a| !profile.actions.contains_key(*a)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(Box::new(
            Diagnostic::new(Code::UnknownAction, format!("unknown actions: {}", unknown.join(", ")))
                .at_pointer("/actions"),
        ));
    }
    let own: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| !is_guide_key(k)).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut pairs: Vec<(&str, String)> = vec![("profile", profile.id.clone())];
    let actions: Vec<&str> =
        profile.actions.keys().filter(|id| request.actions.contains(id)).map(String::as_str).collect();
    if !actions.is_empty() {
        pairs.push(("actions", actions.join(",")));
    }
    let default_env = profile.environments.iter().find(|(_, e)| e.default).or_else(|| profile.environments.first());
    if let Some(env) = &request.environment {
        if default_env.is_none_or(|(id, _)| id != env) {
            pairs.push(("env", env.clone()));
        }
    }
    if let Some(asked) = &request.variant {
        let variants = profile.guide.as_ref().map(|g| &g.variants);
        let found = variants.and_then(|v| v.iter().find(|(id, x)| *id == asked || x.aliases.contains(asked)));
        let default = variants.and_then(|v| v.iter().find(|(_, x)| x.default).or_else(|| v.first()));
        match (found, default) {
            (Some((id, _)), Some((default, _))) if id == default => {}
            (Some((id, _)), _) => pairs.push(("variant", id.clone())),
            // Unknown: written as asked, so the guide it opens reports it.
            (None, _) => pairs.push(("variant", asked.clone())),
        }
    }
    if let Some(scopes) = &request.custom_scopes {
        let mut seen: Vec<&str> = Vec::new();
        for s in scopes {
            if !seen.contains(&s.as_str()) {
                seen.push(s);
            }
        }
        pairs.push(("scopes", seen.join(",")));
    }
    if let Some(asked) = &request.grants {
        let default = crate::render::grants_of(profile, None);
        // Profile order, without repeats; grants the profile lacks after, for their diagnostic.
        let mut list: Vec<_> = profile.auth.grants.iter().copied().filter(|g| asked.contains(g)).collect();
        list.extend(asked.iter().copied().filter(|g| !profile.auth.grants.contains(g)));
        list.dedup();
        if list != default {
            let names: Vec<String> = list.into_iter().map(crate::render::grant_name).collect();
            pairs.push(("grants", names.join(",")));
        }
    }
    let pkce_default = profile.auth.sends_pkce();
    if let Some(pkce) = request.sends_pkce.filter(|p| *p != pkce_default) {
        pairs.push(("pkce", on_off(pkce)));
    }
    let secret_default = profile.auth.refresh_sends_secret();
    if let Some(secret) = request.refresh_sends_secret.filter(|s| *s != secret_default) {
        pairs.push(("refresh_secret", on_off(secret)));
    }
    if let Some(rotation) = request.rotates_refresh_tokens.filter(|r| *r) {
        pairs.push(("rotation", on_off(rotation)));
    }
    if let Some(callback) = &request.callback_url {
        pairs.push(("callback", callback.clone()));
    }
    if let Some(app) = &request.app_name {
        pairs.push(("app", app.clone()));
    }
    let params: Vec<(String, String)> = profile
        .parameters
        .keys()
        .filter_map(|k| request.parameters.get(k).map(|v| (format!("{PARAM}{k}"), v.clone())))
        .chain(
            request
                .parameters
                .iter()
                .filter(|(k, _)| !profile.parameters.contains_key(*k))
                .map(|(k, v)| (format!("{PARAM}{k}"), v.clone())),
        )
        .collect();
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(own);
        query.extend_pairs(pairs);
        query.extend_pairs(params);
    }
    Ok(url.into())
}

fn on_off(value: bool) -> String {
    if value { "on" } else { "off" }.to_owned()
}

fn is_guide_key(key: &str) -> bool {
    KEYS.contains(&key) || key.starts_with(PARAM)
}

/// Reads a guide URL back into the profile id and the request. Keys that are not the guide's
/// are the docs page's own and are left alone, unless one is a near miss of a guide key
/// (`acions`); a repeated key, or a bad value, is an error: a mistyped link fails loudly
/// instead of showing another guide. Errors are KW0510, pointing into the URL's query.
pub fn parse_guide_url(text: &str) -> Result<(String, GuideRequest), Box<Diagnostic>> {
    let url = http_url(text, "/url")?;
    parse_query(url.query_pairs())
}

/// [`parse_guide_url`] for a query alone (what a server's handler gets).
pub fn parse_guide_query(query: &str) -> Result<(String, GuideRequest), Box<Diagnostic>> {
    if query.len() > MAX_URL_LEN {
        return Err(bad_url(
            format!("the query is {} bytes long; at most {MAX_URL_LEN} are accepted", query.len()),
            "/url",
        ));
    }
    parse_query(url::form_urlencoded::parse(query.as_bytes()))
}

fn parse_query<'q>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'q, str>, std::borrow::Cow<'q, str>)>,
) -> Result<(String, GuideRequest), Box<Diagnostic>> {
    let mut profile = None;
    let mut request = GuideRequest::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in pairs {
        let pointer = format!("/url/{}", keyway_manifest::escape_pointer_token(&key));
        if !is_guide_key(&key) {
            if let Some(best) = keyway_stdx::closest(&key, KEYS.iter().copied()) {
                return Err(bad_url(
                    format!("unknown guide URL parameter `{}`; did you mean `{best}`?", crate::text::shown(&key, 40)),
                    &pointer,
                ));
            }
            continue;
        }
        if seen.iter().any(|k| *k == key) {
            return Err(bad_url(format!("guide URL parameter `{key}` is given twice"), &pointer));
        }
        seen.push(key.to_string());
        let list = || value.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        let flag = || match value.as_ref() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(bad_url(
                format!("`{key}` is `{}`; expected `on` or `off`", crate::text::shown(other, 40)),
                &pointer,
            )),
        };
        match key.as_ref() {
            "profile" => profile = Some(value.to_string()),
            "actions" => request.actions = list(),
            "env" => request.environment = Some(value.to_string()),
            "variant" => request.variant = Some(value.to_string()),
            "scopes" => request.custom_scopes = Some(list()),
            "grants" => {
                let mut grants = Vec::new();
                for name in list() {
                    let grant = serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|_| {
                        bad_url(
                            format!(
                                "`{}` is not a grant; expected names such as `jwt_bearer`",
                                crate::text::shown(&name, 40)
                            ),
                            &pointer,
                        )
                    })?;
                    grants.push(grant);
                }
                request.grants = Some(grants);
            }
            "pkce" => request.sends_pkce = Some(flag()?),
            "refresh_secret" => request.refresh_sends_secret = Some(flag()?),
            "rotation" => request.rotates_refresh_tokens = Some(flag()?),
            "callback" => request.callback_url = Some(value.to_string()),
            "app" => request.app_name = Some(value.to_string()),
            param => {
                let name = param.strip_prefix(PARAM).unwrap_or(param);
                request.parameters.insert(name.to_owned(), value.to_string());
            }
        }
    }
    let profile = profile.ok_or_else(|| bad_url("the guide URL names no `profile`".to_owned(), "/url"))?;
    Ok((profile, request))
}
