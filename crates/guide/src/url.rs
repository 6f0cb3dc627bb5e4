//! Shareable guide URLs: a selection encoded in a stable, canonical query string.

use crate::render::GuideRequest;
use keyway_manifest::model::Profile;

/// The query keys, in the order they are written.
const KEYS: [&str; 5] = ["profile", "actions", "env", "variant", "scopes"];

/// The URL of the guide for `request` under `base` (`https://docs.example.com/guides/salesforce`).
/// Canonical: keys in a fixed order, actions in profile order without repeats, values
/// percent-encoded; defaults (no environment, no variant) are left out. Two requests that
/// select the same thing get the same URL.
pub fn guide_url(base: &str, profile: &Profile, request: &GuideRequest) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("`{base}` is not an absolute URL: {e}"))?;
    let actions: Vec<&str> =
        profile.actions.keys().filter(|id| request.actions.contains(id)).map(String::as_str).collect();
    let unknown: Vec<&str> =
        request.actions.iter().filter(|a| !profile.actions.contains_key(*a)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(format!("unknown actions: {}", unknown.join(", ")));
    }
    let mut pairs: Vec<(&str, String)> = vec![("profile", profile.id.clone())];
    if !actions.is_empty() {
        pairs.push(("actions", actions.join(",")));
    }
    if let Some(env) = &request.environment {
        pairs.push(("env", env.clone()));
    }
    if let Some(variant) = &request.variant {
        pairs.push(("variant", variant.clone()));
    }
    if let Some(scopes) = &request.custom_scopes {
        pairs.push(("scopes", scopes.join(",")));
    }
    url.set_query(None);
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url.into())
}

/// Reads a guide URL back into the profile id and the request. Unknown or repeated keys are
/// errors, so a mistyped link fails loudly instead of showing another guide.
pub fn parse_guide_url(text: &str) -> Result<(String, GuideRequest), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let mut profile = None;
    let mut request = GuideRequest::default();
    let mut seen = Vec::new();
    for (key, value) in url.query_pairs() {
        if !KEYS.contains(&key.as_ref()) {
            return Err(format!("unknown guide URL parameter `{key}`; expected one of: {}", KEYS.join(", ")));
        }
        if seen.contains(&key) {
            return Err(format!("guide URL parameter `{key}` is given twice"));
        }
        seen.push(key.clone());
        let list = || value.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        match key.as_ref() {
            "profile" => profile = Some(value.to_string()),
            "actions" => request.actions = list(),
            "env" => request.environment = Some(value.to_string()),
            "variant" => request.variant = Some(value.to_string()),
            _ => request.custom_scopes = Some(list()),
        }
    }
    let profile = profile.ok_or_else(|| "the guide URL names no `profile`".to_owned())?;
    Ok((profile, request))
}
