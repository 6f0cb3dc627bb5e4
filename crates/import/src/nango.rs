//! Nango's public provider catalogue (`providers.yaml` of `@nangohq/providers`) to keyway
//! profiles.
//!
//! What maps to what:
//!
//! | Nango | keyway |
//! |---|---|
//! | entry key | `id` (prefixed with `nango-` where it does not start with a letter) |
//! | `display_name`, `categories`, `docs`, `docs_connect`, `setup_guide_url` | `name`, `categories`, `docs` |
//! | `auth_mode: OAUTH2` | grants `authorization_code` and `refresh_token` |
//! | `auth_mode: OAUTH2_CC` | grant `client_credentials` |
//! | `auth_mode: MCP_OAUTH2` | as `OAUTH2`, with `pkce: required` (MCP's authorization makes S256 PKCE mandatory) |
//! | `client_registration: dynamic`, `registration_url` | a `docs` link, "Register a client (RFC 7591 dynamic client registration)": keyway registers no client, the admin registers one there and gives keyway its id (and secret, if issued) |
//! | `registration_params.token_endpoint_auth_method` | `client_auth` (`none`: a public client, whose refreshes send no secret) |
//! | `authorization_url`, `token_url`, `refresh_url` | `auth.endpoints.authorize`, `token`, `refresh` |
//! | `${connectionConfig.x}` | `{{ params.x }}`, a parameter with Nango's title, description, example and pattern (or enum), anchored or tightened when it could let URL delimiters through |
//! | `A \|\| B` | `{{ params.x or 'value' }}` when B is A with a value for its one placeholder (a parameter with a default), else `{% if params.x %}A{% else %}B{% endif %}` |
//! | `connection_config.x.default_value` | `{{ params.x or 'value' }}` |
//! | `alias` | `extends`, the child written as a patch over its converted parent; a mapping it mostly drops (a swapped scope catalogue) written whole under `replace` |
//! | `default_scopes`, `scope_separator` | `auth.default_scopes`, `auth.scope_separator`; scopes in the catalogue |
//! | `providers.scopes.yaml` | the scope catalogue (values only: no labels, as Nango has none) |
//! | `authorization_params`, `token_params`, `refresh_params` | the same, without the standard `response_type: code` and `grant_type` |
//! | `token_request_auth_method: basic`, `authorization_method: header` | `client_auth: client_secret_basic` |
//! | `token_request_auth_method: private_key_jwt` | `client_auth: private_key_jwt` (the connection supplies the PEM key) |
//! | `authorization_url_replacements` (`client_id=: appKey=`, a trailing `=` stripped on both sides) | `auth.authorization_param_names` (`client_id`, `redirect_uri`, `response_type`, `scope`; `response_type: ''` leaves it out); any other: skipped |
//! | `authorization_code_param_in_callback` | `auth.callback_code_param` when it names a code (`spapi_oauth_code`); Microsoft's admin consent (`tenant`) returns no code: skipped |
//! | `alternate_access_token_response_path` (`authed_user`) | `auth.tokens.response_pointer` (`/authed_user`; Nango reads it only when the answer has no top-level token, keyway always) |
//! | `body_format: json` | `auth.token_request_format: json` |
//! | `disable_pkce: true` | `pkce: off` (otherwise `optional`: Nango sends a challenge; `required` for `MCP_OAUTH2`) |
//! | `token_response_metadata` | `auth.tokens.keep_fields` |
//! | `token_expires_in_ms` | `auth.tokens.assumed_lifetime_seconds` |
//! | `expires_in_unit: milliseconds` | `auth.tokens.expires_in_unit: milliseconds` (another unit: skipped) |
//! | `proxy.base_url` | `api.base_url` (`${connectionConfig.x}` of a kept token field becomes `{{ token.x }}`) |
//! | `auth_mode: API_KEY` | `auth.kind: api_key`; refused when no `proxy.headers` or `proxy.query` carries the key |
//! | `auth_mode: BASIC` | `auth.kind: basic`, `auth.apply.basic` with the user and password |
//! | `auth_mode: TWO_STEP` | `auth.kind: token_exchange` |
//! | `auth_mode: NONE` | `auth.kind: none` |
//! | `credentials.<name>` (implicit `apiKey`, `username` and `password` when absent) | `auth.fields.<name>`: `title` (or the name, humanised) as `label`, `description` as `help`, `pattern` (anchored), `example` (a secret's only when visibly masked), `secret` (else by the name: keys, tokens, passwords), `optional` as `required: false`, `docs_connect` + `doc_section` as `docs`; only fields a template sends |
//! | a hidden credential with `default_value` | its value, as fixed text |
//! | `${apiKey}`, `${username}`, `${password}`, `${credentials.x}` | `{{ fields.x }}` (`{{ fields.x or '' }}` when optional) |
//! | `${connectionConfig.x}` of a secret (Nango's `secret`, or a key/token name) in a credential template | `{{ fields.x }}` rather than a parameter |
//! | `proxy.headers` | `auth.apply.headers` (`Basic ${base64(a:b)}` as `auth.apply.basic`; `content-type` and other headers keyway sets not carried) |
//! | `proxy.query` | `auth.apply.query`, with `secret_in_query: true` when it carries a secret |
//! | `proxy.verification` (`GET` of a fixed path) | `api.verify.path` |
//! | `token_url`, `body_format` (or the `content-type` of `token_headers`) | `auth.exchange.url`, `format` |
//! | `token_params` | `auth.exchange.body` |
//! | `token_headers` | `auth.exchange.headers` (`authorization: Basic ${base64(a:b)}` as `auth.exchange.basic`) |
//! | `token_response.token`, `token_expiration` (`expireIn`; `expireAt`) | `auth.exchange.token_pointer`, `expires_in_pointer` (`data.token` as `/data/token`); `expires_at_pointer` |
//! | `token_request_method: GET` | `auth.exchange.method: get`, the token URL's query among the parameters; `secret_in_query: true` when one carries a secret |
//! | `auth_mode: JWT` | `auth.kind: signed_jwt`: `auth.jwt` from `token.header.alg` (checked against `signature.protocol`), `token.signing_key` (a field; `${credentials.x.secret}`/`.id` as a part of an `ID:SECRET` field), `signature.hmac_secret_encoding` (default hex), `header.kid`, `token.payload` (optional claims left out), `expires_in_ms` |
//! | a parameter only credential templates send (`auth.apply`, `auth.exchange`, `auth.jwt`) | Nango's enum or pattern (anchored as field patterns), else [`CREDENTIAL_PATTERN`] |
//! | `refresh_url`, `refresh_token_params`, `refresh_token_headers`, `token_response.refresh_token` of a `TWO_STEP` entry | left out, with a note: keyway renews the token by exchanging the stored fields again |
//! | `${accessToken}` in `proxy.headers` or `proxy.query` | `{{ token.access_token }}` (the exchanged token, or the signed JWT); without any, `Authorization: Bearer {{ token.access_token }}` |
//!
//! Entries that need what keyway cannot say are skipped with a reason; nothing is dropped
//! silently when it changes how a request is authenticated: a body on every request
//! (`proxy.body`), signed requests (OAuth 1.0a, AWS SigV4) or assertions a token request
//! signs, token requests in several steps, tokens in the answer's headers, MCP servers whose
//! endpoints are discovered (`MCP_OAUTH2_GENERIC`), and credentials sent anywhere else (a URL)
//! are refused.

use crate::report::{Converted, Report, Skipped};
use crate::{GeneratedProfile, Import};
use keyway_diagnostics::{Code, Diagnostic};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

mod kinds;

/// The pattern a parameter gets when Nango gives none that keyway can prove URL-safe: a host
/// name, a host label or a path segment, without URL delimiters.
pub const SAFE_PATTERN: &str = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$";

/// The pattern a parameter only credential templates send gets when Nango gives none: any
/// text up to 512 characters without control characters (it never reaches a URL's structure).
pub const CREDENTIAL_PATTERN: &str = r"^[^\x00-\x1f\x7f]{1,512}$";

const COMMAND: &str = "keyway import nango";

/// Converts Nango's `providers.yaml` (and optionally `providers.scopes.yaml`) into keyway
/// profiles. Fails only when a file is not YAML or not a mapping; problems with single
/// entries go in the report.
pub fn convert(providers_yaml: &str, scopes_yaml: Option<&str>) -> Result<Import, Box<Diagnostic>> {
    let providers = mapping(providers_yaml, "providers.yaml")?;
    let scopes = match scopes_yaml {
        Some(text) => mapping(text, "providers.scopes.yaml")?,
        None => Map::new(),
    };
    let mut report = Report {
        source: format!(
            "Generated by `{COMMAND}` from Nango's public provider catalogue (`providers.yaml` of `@nangohq/providers`{}).",
            if scopes_yaml.is_some() { ", with `providers.scopes.yaml`" } else { "" }
        ),
        total: providers.len(),
        ..Report::default()
    };

    // Every entry resolved through its aliases, sorted by key.
    let keys: BTreeSet<&str> = providers.keys().map(String::as_str).collect();
    let mut full: BTreeMap<&str, (String, Value, Notes)> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, (bool, &'static str)> = BTreeMap::new();
    let mut ids: BTreeMap<String, &str> = BTreeMap::new();
    for &key in &keys {
        let resolved = match resolve_alias(&providers, key) {
            Ok(r) => r,
            Err((reason, detail)) => {
                report.skipped.push(Skipped { key: key.to_owned(), oauth2: false, reason, detail });
                continue;
            }
        };
        let mode = resolved.get("auth_mode").and_then(Value::as_str);
        let oauth2 = mode.is_some_and(is_oauth2);
        let convertible = oauth2 || matches!(mode, Some("API_KEY" | "BASIC" | "TWO_STEP" | "JWT" | "NONE"));
        if oauth2 {
            report.oauth2_total += 1;
        }
        let skip = |reason: String, detail: String| Skipped { key: key.to_owned(), oauth2, reason, detail };
        let Some(mode) = mode else {
            report.skipped.push(skip("no `auth_mode`".into(), String::new()));
            continue;
        };
        if !convertible {
            report.skipped.push(skip(unsupported_mode_reason(mode), String::new()));
            continue;
        }
        let Some(id) = keyway_id(key) else {
            report.skipped.push(skip("the key cannot be a keyway id".into(), format!("`{key}`")));
            continue;
        };
        if let Some(other) = ids.get(&id) {
            report.skipped.push(skip("two keys map to one keyway id".into(), format!("`{id}`, also from `{other}`")));
            continue;
        }
        let own_scopes = scope_list(&scopes, &providers, key);
        match Entry::new(key, &resolved, mode, own_scopes).build(&id) {
            Ok((value, notes)) => {
                ids.insert(id.clone(), key);
                kinds.insert(key, (oauth2, kind_of(mode)));
                full.insert(key, (id, value, notes));
            }
            Err(Fail { reason, detail }) => report.skipped.push(skip(reason, detail)),
        }
    }

    // Aliases whose parent converted become patches over it; the rest stand alone.
    let parent_of = |key: &str| providers.get(key).and_then(|e| e.get("alias")).and_then(Value::as_str);
    let mut failed: BTreeMap<&str, (String, String)> = BTreeMap::new();
    let mut standalone: BTreeSet<&str> = BTreeSet::new();
    let (texts, warnings) = loop {
        let mut texts: BTreeMap<&str, String> = BTreeMap::new();
        for (&key, (_, value, _)) in &full {
            if failed.contains_key(key) {
                continue;
            }
            let parent =
                parent_of(key).filter(|p| !standalone.contains(key) && full.contains_key(p) && !failed.contains_key(p));
            let document = match parent {
                Some(p) => patch(&full[p].1, value, &full[p].0),
                None => value.clone(),
            };
            texts.insert(key, to_yaml(key, &document));
        }
        let mut loader = keyway_manifest::Loader::new();
        for (&key, text) in &texts {
            loader.add_str(format!("{}.yaml", full[key].0), text.clone());
        }
        let mut loaded = loader.load();
        keyway_validate::check_loaded(&mut loaded);
        let mut new_failures = false;
        for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
            let Some(file) = d.file.as_deref() else { continue };
            let Some(key) = full.iter().find(|(_, (id, _, _))| format!("{id}.yaml") == file).map(|(k, _)| *k) else {
                continue;
            };
            if failed.contains_key(key) {
                continue;
            }
            new_failures = true;
            let reason = format!("fails keyway validation ({})", d.code);
            let detail = format!("{} (at `{}`)", d.message, d.pointer.as_deref().unwrap_or(""));
            failed.insert(key, (reason, detail));
            // Its children are written out whole instead.
            for (&child, _) in full.iter().filter(|(k, _)| parent_of(k) == Some(key)) {
                standalone.insert(child);
            }
        }
        if !new_failures {
            let warnings = loaded.diagnostics.iter().filter(|d| !d.is_error()).count();
            break (texts, warnings);
        }
    };
    report.warnings = warnings;

    let mut profiles = Vec::new();
    for (key, (id, _, mut notes)) in full {
        let (oauth2, kind) = kinds.get(key).copied().unwrap_or((true, "oauth2"));
        if let Some((reason, detail)) = failed.remove(key) {
            report.skipped.push(Skipped { key: key.to_owned(), oauth2, reason, detail });
            continue;
        }
        let extends = parent_of(key).filter(|p| texts.contains_key(p) && !standalone.contains(key));
        if let (Some(p), None) = (parent_of(key), extends) {
            notes.push(("alias written out whole".into(), format!("alias of `{p}`, which is not converted")));
        }
        let Some(yaml) = texts.get(key) else { continue };
        report.converted.push(Converted {
            key: key.to_owned(),
            id: id.clone(),
            oauth2,
            kind,
            extends: extends.and_then(keyway_id),
            notes,
        });
        profiles.push(GeneratedProfile { id, yaml: yaml.clone() });
    }
    profiles.sort_by(|a, b| a.id.cmp(&b.id));
    report.converted.sort_by(|a, b| a.key.cmp(&b.key));
    report.skipped.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Import { profiles, report })
}

fn mapping(text: &str, name: &str) -> Result<Map<String, Value>, Box<Diagnostic>> {
    match keyway_manifest::parse_yaml(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Box::new(
            Diagnostic::new(Code::NotAMapping, format!("{name}: the top level must be a mapping of providers"))
                .in_file(name)
                .at_pointer(""),
        )),
        Err(d) => Err(Box::new(d.in_file(name))),
    }
}

/// The `auth.kind` an auth mode converts to.
fn kind_of(mode: &str) -> &'static str {
    match mode {
        "API_KEY" => "api_key",
        "BASIC" => "basic",
        "TWO_STEP" => "token_exchange",
        "JWT" => "signed_jwt",
        "NONE" => "none",
        _ => "oauth2",
    }
}

/// Whether an auth mode is OAuth 2.0: the authorization code grant (Nango's `OAUTH2`, and
/// `MCP_OAUTH2`, an MCP server's authorization server with fixed endpoints) or the client
/// credentials grant (`OAUTH2_CC`).
fn is_oauth2(mode: &str) -> bool {
    matches!(mode, "OAUTH2" | "OAUTH2_CC" | "MCP_OAUTH2")
}

fn unsupported_mode_reason(mode: &str) -> String {
    match mode {
        "OAUTH1" => "OAuth 1.0a (`OAUTH1`) signs every request; keyway hands out credentials for callers to put on their own requests, and OAuth 1.0a has none to hand out".into(),
        "MCP_OAUTH2_GENERIC" => {
            format!("MCP OAuth for any server (`{mode}`): endpoints are discovered per server, not in the catalogue")
        }
        "AWS_SIGV4" | "SIGNATURE" | "TBA" => format!("signed requests (`{mode}`): keyway does not sign requests"),
        other => format!("auth mode `{other}`: keyway has no such credential kind"),
    }
}

/// The entry with its aliases applied (Nango's shallow merge: the child's keys win).
fn resolve_alias(all: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, (String, String)> {
    let mut layers: Vec<&Map<String, Value>> = Vec::new();
    let mut seen: Vec<&str> = vec![key];
    let mut current = all
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| ("the entry is not a mapping".to_owned(), String::new()))?;
    layers.push(current);
    while let Some(alias) = current.get("alias") {
        let Some(alias) = alias.as_str() else {
            return Err(("`alias` is not a string".into(), String::new()));
        };
        if seen.contains(&alias) || seen.len() > 16 {
            return Err(("`alias` forms a cycle".into(), seen.join(" -> ")));
        }
        seen.push(alias);
        current = all
            .get(alias)
            .and_then(Value::as_object)
            .ok_or_else(|| ("`alias` names an unknown provider".to_owned(), format!("`{alias}`")))?;
        layers.push(current);
    }
    let mut merged = Map::new();
    for layer in layers.iter().rev() {
        for (k, v) in layer.iter() {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged.remove("alias");
    Ok(merged)
}

/// The keyway id for a Nango key: the key itself when it is one, else a close spelling.
fn keyway_id(key: &str) -> Option<String> {
    let mut id = String::new();
    for c in key.chars() {
        match c {
            'a'..='z' | '0'..='9' => id.push(c),
            'A'..='Z' => id.push(c.to_ascii_lowercase()),
            _ if !id.is_empty() && !id.ends_with('-') && !id.ends_with('_') => {
                id.push(if c == '_' { '_' } else { '-' })
            }
            _ => {}
        }
    }
    while id.ends_with(['-', '_']) {
        id.pop();
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id = format!("nango-{id}");
    }
    let valid = id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split(['-', '_']).all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    valid.then_some(id)
}

/// The scope list of `providers.scopes.yaml` for an entry, or for the entry it aliases.
fn scope_list(scopes: &Map<String, Value>, providers: &Map<String, Value>, key: &str) -> Vec<String> {
    let mut key = key;
    for _ in 0..16 {
        if let Some(list) = scopes.get(key).and_then(Value::as_array) {
            return list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        match providers.get(key).and_then(|e| e.get("alias")).and_then(Value::as_str) {
            Some(parent) => key = parent,
            None => break,
        }
    }
    Vec::new()
}

/// What was adapted while converting an entry: `(kind, detail)`.
type Notes = Vec<(String, String)>;

/// Why an entry cannot be converted.
#[derive(Debug)]
struct Fail {
    reason: String,
    detail: String,
}

fn fail<T>(reason: impl Into<String>, detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail { reason: reason.into(), detail: detail.into() })
}

/// A connection parameter as the templates use it.
#[derive(Debug, Clone)]
struct Param {
    nango: String,
    required: bool,
    /// Whether a URL template (an endpoint, the API base, authorization or token parameters)
    /// uses it, so its pattern must keep URL delimiters out; values only credential templates
    /// send (headers, an exchange's body, a JWT's claims) need no such pattern.
    in_url: bool,
}

/// Where a template is used: what its placeholders may refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// Endpoints: connection parameters only, and the URL must be `https://` as written.
    Endpoint,
    /// Extra authorization, token and refresh parameters: connection parameters only.
    Value,
    /// `api.base_url`: parameters and kept token fields.
    ApiBase,
    /// `auth.apply`: parameters, credential fields and (for a token exchange) the token.
    Credential,
    /// `auth.exchange` body, headers and Basic credentials: parameters and credential fields.
    Exchange,
}

impl Place {
    /// Whether the template is a URL.
    fn is_url(self) -> bool {
        matches!(self, Place::Endpoint | Place::ApiBase)
    }
}

struct Entry<'a> {
    key: &'a str,
    entry: &'a Map<String, Value>,
    mode: &'a str,
    scopes: Vec<String>,
    params: Vec<(String, Param)>,
    /// Defaults `||` fallbacks gave parameters: `(parameter, value)`.
    defaults: Vec<(String, String)>,
    notes: Vec<(String, String)>,
    /// Credential fields templates use, in order of first use (API key, Basic and token
    /// exchange entries): `(field, Nango's description of it)`.
    fields: Vec<(String, Map<String, Value>)>,
    /// Whether `auth.apply` uses the exchanged token.
    uses_token: bool,
}

const STANDARD_TOKEN_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];

impl<'a> Entry<'a> {
    fn new(key: &'a str, entry: &'a Map<String, Value>, mode: &'a str, scopes: Vec<String>) -> Self {
        Entry {
            key,
            entry,
            mode,
            scopes,
            params: Vec::new(),
            defaults: Vec::new(),
            notes: Vec::new(),
            fields: Vec::new(),
            uses_token: false,
        }
    }

    fn str(&self, field: &str) -> Option<&'a str> {
        self.entry.get(field).and_then(Value::as_str)
    }

    fn note(&mut self, kind: &str, detail: String) {
        self.notes.push((kind.to_owned(), detail));
    }

    fn config(&self, name: &str) -> Option<&'a Map<String, Value>> {
        self.entry.get("connection_config").and_then(|c| c.get(name)).and_then(Value::as_object)
    }

    fn list(&self, field: &str) -> Vec<String> {
        match self.entry.get(field) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// Refuses what changes the flow and keyway cannot say.
    fn unsupported(&self) -> Result<(), Fail> {
        let refused: [(&str, &str); 4] = [
            ("require_client_certificate", "needs a TLS client certificate (`require_client_certificate`)"),
            ("authorization_url_fragment", "needs a fragment in the authorization URL (`authorization_url_fragment`)"),
            (
                "authorization_code_param_in_webhook",
                "delivers the code by webhook (`authorization_code_param_in_webhook`)",
            ),
            ("installation", "installs through an outbound flow (`installation`)"),
        ];
        for (field, reason) in refused {
            if self.entry.get(field).is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
                return fail(format!("OAuth quirk keyway cannot express: {reason}"), String::new());
            }
        }
        match self.str("body_format") {
            None | Some("form") | Some("json") => {}
            Some(other) => {
                return fail(
                    "OAuth quirk keyway cannot express: token request parameters in the query string (`body_format`)",
                    format!("`body_format: {other}`"),
                );
            }
        }
        match self.str("expires_in_unit") {
            None | Some("seconds") | Some("milliseconds") => {}
            Some(other) => {
                return fail(
                    "OAuth quirk keyway cannot express: `expires_in` in another unit (`expires_in_unit`)",
                    format!("`expires_in_unit: {other}`"),
                );
            }
        }
        match self.str("token_request_auth_method") {
            None | Some("basic" | "private_key_jwt") => {}
            Some(other) => {
                return fail(
                    "OAuth quirk keyway cannot express: client authentication method",
                    format!("`token_request_auth_method: {other}`"),
                );
            }
        }
        if let Some(headers) = self.entry.get("token_headers").and_then(Value::as_object) {
            for (name, value) in headers {
                let standard = STANDARD_TOKEN_HEADERS.iter().any(|(n, v)| {
                    name.eq_ignore_ascii_case(n) && value.as_str().is_some_and(|s| s.eq_ignore_ascii_case(v))
                });
                if !standard {
                    return fail(
                        "OAuth quirk keyway cannot express: custom token request headers (`token_headers`)",
                        format!("`{name}`"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The OAuth quirks keyway can say: standard authorization parameters under other names
    /// (`authorization_url_replacements`), the code under another name in the callback
    /// (`authorization_code_param_in_callback`), and the token set nested in the token
    /// response (`alternate_access_token_response_path`).
    fn quirks(&mut self, auth: &mut Map<String, Value>, tokens: &mut Map<String, Value>) -> Result<(), Fail> {
        const RENAMABLE: [&str; 4] = ["client_id", "redirect_uri", "response_type", "scope"];
        let quirk = "OAuth quirk keyway cannot express: ";
        if let Some(replacements) = self.entry.get("authorization_url_replacements").filter(|v| !v.is_null()) {
            let why = format!(
                "{quirk}renames an authorization parameter keyway cannot rename (`authorization_url_replacements`)"
            );
            let Some(replacements) = replacements.as_object() else {
                return fail(why, "not a mapping");
            };
            let mut names = Map::new();
            let mut shown = Vec::new();
            for (from, to) in replacements {
                let Some(to) = to.as_str() else {
                    return fail(why, format!("`{from}` to `{to}`"));
                };
                // Nango replaces text in the URL; `client_id=` to `clientId=` renames the
                // parameter `client_id`, as does `client_id` to `clientId`.
                let standard = from.strip_suffix('=').unwrap_or(from);
                let name = to.strip_suffix('=').unwrap_or(to);
                let detail = format!("`{from}` to `{to}`");
                if !RENAMABLE.contains(&standard) {
                    return fail(
                        why,
                        format!(
                            "{detail}: only client_id, redirect_uri, response_type and scope can be renamed (`state`, PKCE and `nonce` protect the flow)"
                        ),
                    );
                }
                if from.ends_with('=') != to.ends_with('=') && !to.is_empty() {
                    return fail(why, format!("{detail}: more than a parameter's name changes"));
                }
                if name.is_empty() && standard != "response_type" {
                    return fail(why, format!("{detail}: only `response_type` can be left out"));
                }
                if !name.is_empty() && !is_parameter_name(name) {
                    return fail(why, format!("{detail}: `{name}` is not a parameter name a URL carries as is"));
                }
                if names.contains_key(standard) {
                    return fail(why, format!("{detail}: `{standard}` renamed twice"));
                }
                shown.push(if name.is_empty() {
                    format!("`{standard}` left out")
                } else {
                    format!("`{standard}` as `{name}`")
                });
                names.insert(standard.to_owned(), json!(name));
            }
            if !names.is_empty() {
                self.note(
                    "standard authorization parameters renamed (`authorization_url_replacements`)",
                    shown.join(", "),
                );
                auth.insert("authorization_param_names".into(), Value::Object(names));
            }
        }
        if let Some(param) = self.entry.get("authorization_code_param_in_callback").filter(|v| !v.is_null()) {
            let why = format!(
                "{quirk}the callback parameter Nango reads is not an authorization code (`authorization_code_param_in_callback`)"
            );
            let Some(name) = param.as_str() else {
                return fail(why, format!("`{param}`"));
            };
            // Nango reads the named callback parameter in place of `code`; keyway exchanges
            // it as a code, so it must be one. Microsoft's admin consent (`tenant`) returns
            // the consenting tenant's id and no code at all.
            if !name.to_ascii_lowercase().contains("code") {
                let detail = if name == "tenant" {
                    "`tenant`: an admin-consent callback returns the consenting tenant's id, and no code to exchange"
                        .to_owned()
                } else {
                    format!("`{name}` does not name a code")
                };
                return fail(why, detail);
            }
            if !is_parameter_name(name) {
                return fail(why, format!("`{name}` is not a parameter name"));
            }
            self.note("the callback's code read from another parameter", format!("`{name}`"));
            auth.insert("callback_code_param".into(), json!(name));
        }
        if let Some(path) = self.entry.get("alternate_access_token_response_path").filter(|v| !v.is_null()) {
            let Some(pointer) = path.as_str().and_then(kinds::pointer) else {
                return fail(
                    format!("{quirk}a token set keyway cannot find (`alternate_access_token_response_path`)"),
                    format!("`{path}`"),
                );
            };
            self.note(
                "token set read from a nested object of the token response (`alternate_access_token_response_path`)",
                format!("`{pointer}`: Nango reads it there only when the answer has no top-level `access_token`; keyway always does (kept fields still come from the top level)"),
            );
            tokens.insert("response_pointer".into(), json!(pointer));
        }
        Ok(())
    }

    /// `id`, `name`, `categories`, `docs` and the one environment every converted entry has.
    fn prelude(&self, id: &str) -> Map<String, Value> {
        let mut profile = Map::new();
        profile.insert("id".into(), json!(id));
        let name = self.str("display_name").unwrap_or(self.key);
        profile.insert("name".into(), json!(name));
        let categories = self.list("categories");
        if !categories.is_empty() {
            profile.insert("categories".into(), json!(categories));
        }
        let mut docs = Vec::new();
        for (field, title) in [
            ("docs", "Nango's integration page"),
            ("docs_connect", "Connecting (Nango)"),
            ("setup_guide_url", "Setting up an app with the provider"),
        ] {
            if let Some(url) = self.str(field).filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace))
            {
                docs.push(json!({ "title": title, "url": url }));
            }
        }
        if !docs.is_empty() {
            profile.insert("docs".into(), Value::Array(docs));
        }
        profile.insert("environments".into(), json!({ "production": { "label": "Production", "default": true } }));
        profile
    }

    /// An `MCP_OAUTH2` entry's client registration. keyway registers no clients: with
    /// `client_registration: dynamic` (RFC 7591) the integration's admin registers one at
    /// `registration_url`, linked from `docs`, and gives keyway its id (and secret, if the
    /// server issues one). Returns the client authentication the registration parameters ask
    /// for (`token_endpoint_auth_method`), if any.
    fn registration(&mut self, profile: &mut Map<String, Value>) -> Result<Option<&'static str>, Fail> {
        let url = self.str("registration_url");
        let dynamic = match self.entry.get("client_registration") {
            None | Some(Value::Null) => url.is_some(),
            Some(Value::String(s)) if s == "dynamic" => true,
            Some(Value::String(s)) if s == "static" => false,
            Some(other) => {
                return fail("a client registration keyway cannot say (`client_registration`)", format!("`{other}`"));
            }
        };
        let params = match self.entry.get("registration_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return fail("`registration_params` is not a mapping", ""),
        };
        let method = match params.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => match m.as_str() {
                "none" => Some("none"),
                "client_secret_post" => Some("client_secret_post"),
                "client_secret_basic" => Some("client_secret_basic"),
                "private_key_jwt" => Some("private_key_jwt"),
                other => {
                    return fail(
                        "OAuth quirk keyway cannot express: client authentication method",
                        format!("`registration_params.token_endpoint_auth_method: {other}`"),
                    );
                }
            },
            Some(other) => {
                return fail(
                    "OAuth quirk keyway cannot express: client authentication method",
                    format!("`registration_params.token_endpoint_auth_method: {other}`"),
                );
            }
        };
        if let Some(grants) = params.get("grant_types").and_then(Value::as_array) {
            if !grants.iter().any(|g| g == "authorization_code") {
                return fail("a client registered without the authorization code grant (`registration_params`)", "");
            }
        }
        if !dynamic {
            return Ok(method);
        }
        let shown: Vec<String> = params
            .iter()
            .map(|(k, v)| match v {
                Value::Array(items) => {
                    let items: Vec<String> =
                        items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect();
                    format!("`{k}: {}`", items.join(", "))
                }
                Value::String(s) => format!("`{k}: {s}`"),
                other => format!("`{k}: {other}`"),
            })
            .collect();
        let with = if shown.is_empty() { String::new() } else { format!(", with {}", shown.join("; ")) };
        match url.filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace)) {
            Some(u) => {
                let link = json!({ "title": "Register a client (RFC 7591 dynamic client registration)", "url": u });
                match profile.get_mut("docs").and_then(Value::as_array_mut) {
                    Some(docs) => docs.push(link),
                    None => {
                        // `docs` goes before `environments`, where `prelude` writes it.
                        let mut reordered = Map::new();
                        for (k, v) in std::mem::take(profile) {
                            if k == "environments" {
                                reordered.insert("docs".into(), json!([link.clone()]));
                            }
                            reordered.insert(k, v);
                        }
                        reordered.entry("docs").or_insert_with(|| json!([link]));
                        *profile = reordered;
                    }
                }
                self.note(
                    "client registered by the admin before an integration is created (RFC 7591; keyway does not register clients)",
                    format!("at `{u}`{with}"),
                );
            }
            None => self.note(
                "client registered by the admin before an integration is created (RFC 7591; keyway does not register clients)",
                format!("no https registration URL to link{with}"),
            ),
        }
        Ok(method)
    }

    fn build(mut self, id: &str) -> Result<(Value, Vec<(String, String)>), Fail> {
        if !is_oauth2(self.mode) {
            return self.build_other(id);
        }
        self.unsupported()?;
        let auth_code = self.mode != "OAUTH2_CC";
        let mcp = self.mode == "MCP_OAUTH2";
        let mut profile = self.prelude(id);
        let registered_auth = if mcp { self.registration(&mut profile)? } else { None };

        // Endpoints.
        let mut endpoints = Map::new();
        if auth_code {
            let Some(url) = self.entry.get("authorization_url") else {
                return fail("no `authorization_url`", String::new());
            };
            let Some(url) = url.as_str() else {
                return fail("endpoint that is not a single URL", "`authorization_url`");
            };
            endpoints.insert("authorize".into(), json!(self.template(url, Place::Endpoint)?));
        }
        let Some(token) = self.entry.get("token_url") else {
            return fail("no `token_url`", String::new());
        };
        let Some(token) = token.as_str() else {
            return fail("endpoint that is not a single URL", "`token_url` differs by grant");
        };
        endpoints.insert("token".into(), json!(self.template(token, Place::Endpoint)?));
        if let Some(refresh) = self.entry.get("refresh_url").filter(|r| !r.is_null()) {
            let Some(refresh) = refresh.as_str() else {
                return fail("endpoint that is not a single URL", "`refresh_url`");
            };
            if refresh != token && auth_code {
                endpoints.insert("refresh".into(), json!(self.template(refresh, Place::Endpoint)?));
            }
        }

        // Extra parameters.
        let standard_grant = if auth_code { "authorization_code" } else { "client_credentials" };
        let authorization_params = self.params_map("authorization_params", &[("response_type", "code")])?;
        let token_params = self.params_map("token_params", &[("grant_type", standard_grant)])?;
        let refresh_params = self.params_map("refresh_params", &[("grant_type", "refresh_token")])?;
        if let Some(grant) = token_params.get("grant_type") {
            return fail(
                "non-standard `grant_type` in the token request",
                format!("`{}`", grant.as_str().unwrap_or("")),
            );
        }
        if let Some(params) = self.entry.get("refresh_token_params").and_then(Value::as_object) {
            if params.iter().any(|(k, v)| !(k == "grant_type" && v == "refresh_token")) {
                return fail("OAuth quirk keyway cannot express: `refresh_token_params`", String::new());
            }
        }

        // Scopes.
        let separator = self.str("scope_separator").unwrap_or(" ");
        let defaults: Vec<String> = match self.entry.get("default_scopes") {
            Some(Value::String(s)) => s.split(separator).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            _ => self.list("default_scopes"),
        };
        let mut defaults_unique: Vec<String> = Vec::new();
        for s in defaults {
            if !defaults_unique.contains(&s) {
                defaults_unique.push(s);
            }
        }
        let defaults = defaults_unique;
        let mut catalogue = Map::new();
        let refresh_scope = |s: &str| auth_code && (s == "offline_access" || s == "refresh_token");
        let mut refresh_by_default = false;
        for scope in self.scopes.iter().chain(defaults.iter()) {
            if catalogue.contains_key(scope) || scope.is_empty() {
                continue;
            }
            // Nango names scopes by their value alone, so they get no label; and the profile
            // offers no actions, so none needs `custom_only` (KW0416 has nothing to check).
            let mut entry = Map::new();
            if defaults.contains(scope) && refresh_scope(scope) {
                entry.insert("grants_refresh".into(), json!(true));
                refresh_by_default = true;
            }
            catalogue.insert(scope.clone(), Value::Object(entry));
        }

        // Auth.
        let mut auth = Map::new();
        let grants: &[&str] =
            if auth_code { &["authorization_code", "refresh_token"] } else { &["client_credentials"] };
        auth.insert("grants".into(), json!(grants));
        auth.insert("endpoints".into(), Value::Object(endpoints));
        let nango_basic = self.str("token_request_auth_method") == Some("basic")
            || self.str("authorization_method") == Some("header");
        let nango_method = match self.str("token_request_auth_method") {
            Some("private_key_jwt") if self.str("authorization_method") == Some("header") => {
                return fail(
                    "client authentication that Nango says two ways",
                    "`token_request_auth_method: private_key_jwt` and `authorization_method: header`",
                );
            }
            Some("private_key_jwt") => Some("private_key_jwt"),
            _ if nango_basic => Some("client_secret_basic"),
            _ => None,
        };
        match (registered_auth, nango_method) {
            (Some(method), Some(nango)) if method != nango => {
                return fail(
                    "client authentication that Nango and the registration parameters disagree on",
                    format!("`token_endpoint_auth_method: {method}`"),
                );
            }
            (Some(method), _) | (None, Some(method)) => {
                if method != "client_secret_post" {
                    auth.insert("client_auth".into(), json!(method));
                }
            }
            (None, None) => {}
        }
        if auth.get("client_auth") == Some(&json!("private_key_jwt")) {
            let asked: Vec<String> = self
                .entry
                .get("credentials")
                .and_then(Value::as_object)
                .map(|c| c.keys().filter(|k| kinds::looks_secret(k)).map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            let asked = if asked.is_empty() { String::new() } else { format!("; Nango asks for {}", asked.join(", ")) };
            self.note(
                "the client authenticates with a JWT signed by its private key (`private_key_jwt`)",
                format!(
                    "the connection supplies the key as `private_key` (PEM) and its `kid` as `private_key_id`{asked}"
                ),
            );
        }
        // MCP's authorization (2025-03-26 and later) makes PKCE with S256 mandatory.
        let pkce = match (auth_code, self.entry.get("disable_pkce") == Some(&Value::Bool(true))) {
            (false, _) | (true, true) => "off",
            (true, false) if mcp => "required",
            (true, false) => "optional",
        };
        auth.insert("pkce".into(), json!(pkce));
        if separator != " " {
            auth.insert("scope_separator".into(), json!(separator));
        }
        if !defaults.is_empty() {
            auth.insert("default_scopes".into(), json!(defaults));
        }
        for (field, map) in [
            ("authorization_params", authorization_params),
            ("token_params", token_params),
            ("refresh_params", refresh_params),
        ] {
            if !map.is_empty() && (auth_code || field == "token_params") {
                auth.insert(field.into(), Value::Object(map));
            }
        }
        if self.str("body_format") == Some("json") {
            auth.insert("token_request_format".into(), json!("json"));
        }
        if auth_code {
            // A public client (RFC 7591 `token_endpoint_auth_method: none`) holds no secret.
            let public = registered_auth == Some("none");
            let mut refresh = json!({ "send_client_secret": !public, "rotation": "optional" });
            if !refresh_by_default {
                refresh["needs_scope"] = json!(false);
            }
            auth.insert("refresh".into(), refresh);
        }
        let mut tokens = Map::new();
        self.quirks(&mut auth, &mut tokens)?;
        let keep = self.list("token_response_metadata");
        if !keep.is_empty() {
            tokens.insert("keep_fields".into(), json!(keep));
        }
        if self.str("expires_in_unit") == Some("milliseconds") {
            tokens.insert("expires_in_unit".into(), json!("milliseconds"));
        }
        match self.entry.get("token_expires_in_ms").and_then(Value::as_u64) {
            Some(0) => self.note("`token_expires_in_ms: 0` not carried over", "no lifetime is assumed".into()),
            Some(ms) => {
                tokens.insert("assumed_lifetime_seconds".into(), json!(ms.div_ceil(1000)));
            }
            None => {}
        }
        if !tokens.is_empty() {
            auth.insert("tokens".into(), Value::Object(tokens));
        }

        let api = self.api_base().map(|base| json!({ "base_url": base }));
        if self.entry.get("authorization_url_skip_encode").is_some() {
            self.note("authorization URL encoding quirk not carried over", "`authorization_url_skip_encode`".into());
        }

        let parameters = self.parameters()?;
        if !parameters.is_empty() {
            profile.insert("parameters".into(), Value::Object(parameters));
        }
        profile.insert("auth".into(), Value::Object(auth));
        if let Some(api) = api {
            profile.insert("api".into(), api);
        }
        if !catalogue.is_empty() {
            profile.insert("scopes".into(), Value::Object(catalogue));
        }
        Ok((Value::Object(profile), self.notes))
    }

    /// `proxy.base_url` as `api.base_url`: optional; left out, with a note, when it cannot be
    /// expressed.
    fn api_base(&mut self) -> Option<String> {
        let base = self.entry.get("proxy").and_then(|p| p.get("base_url")).and_then(Value::as_str)?;
        let saved = self.params.clone();
        match self.template(base, Place::ApiBase) {
            Ok(t) => Some(t),
            Err(f) => {
                self.params = saved;
                self.note("API base URL left out", format!("{}{}", f.reason, detail_suffix(&f.detail)));
                None
            }
        }
    }

    /// A map of extra parameters, templates converted, minus the standard pairs keyway sends
    /// itself.
    fn params_map(&mut self, field: &str, standard: &[(&str, &str)]) -> Result<Map<String, Value>, Fail> {
        let mut out = Map::new();
        let Some(map) = self.entry.get(field).and_then(Value::as_object) else {
            return Ok(out);
        };
        for (k, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                _ => return fail("extra parameter that is not a string", format!("`{field}.{k}`")),
            };
            if standard.iter().any(|(sk, sv)| k == sk && text == *sv) {
                continue;
            }
            out.insert(k.clone(), json!(self.template(&text, Place::Value)?));
        }
        Ok(out)
    }

    /// A Nango template as a keyway (minijinja) template.
    fn template(&mut self, text: &str, place: Place) -> Result<String, Fail> {
        let alternatives: Vec<&str> = text.split("||").map(str::trim).collect();
        if alternatives.len() == 1 {
            if place.is_url() && !text.starts_with("https://") && !text.starts_with("http://") {
                // Only a token field may be a whole URL: no parameter pattern can make one safe.
                let first = pieces(text)?.into_iter().next();
                let from_token = matches!(first, Some(Piece::Placeholder(p)) if place == Place::ApiBase
                    && p.strip_prefix("connectionConfig.").is_some_and(|f| self.list("token_response_metadata").iter().any(|k| k == f)));
                if !from_token {
                    return fail(
                        "URL that is not `https://` as written (a whole URL from a connection field)",
                        format!("`{text}`"),
                    );
                }
            }
            return self.simple(text, place, true);
        }
        // Alternatives keyway cannot use are dropped: a whole URL from a parameter (no pattern
        // can make that safe) or a value the OAuth callback returns.
        let mut usable = Vec::new();
        for alt in &alternatives {
            let saved = (self.params.clone(), self.notes.len(), self.fields.len());
            let ok = (!place.is_url() || alt.starts_with("https://")) && self.simple(alt, place, false).is_ok();
            self.params = saved.0;
            self.notes.truncate(saved.1);
            self.fields.truncate(saved.2);
            if ok {
                usable.push(*alt);
            }
        }
        if usable.is_empty() {
            return fail("no `||` alternative keyway can use", format!("`{text}`"));
        }
        if usable.len() < alternatives.len() {
            self.note(
                "`||` alternative dropped (a whole URL, a callback value or a value Nango fills)",
                format!("`{text}`"),
            );
        }
        let alternatives = usable;
        if let [only] = alternatives.as_slice() {
            // The one left keeps the default another endpoint gives its parameter, if any.
            let pieces = pieces(only)?;
            let names: Vec<&str> =
                pieces.iter().filter_map(|p| if let Piece::Placeholder(n) = p { Some(*n) } else { None }).collect();
            if let [name] = names.as_slice() {
                let known = name
                    .strip_prefix("connectionConfig.")
                    .and_then(|n| self.param_name(n).ok().flatten())
                    .and_then(|p| self.defaults.iter().find(|(k, _)| *k == p).cloned());
                if let Some((param, value)) = known {
                    let text =
                        only.replacen(&format!("${{{name}}}"), &format!("{{{{ params.{param} or '{value}' }}}}"), 1);
                    if pieces_ok(&text) {
                        return Ok(text);
                    }
                }
            }
            return self.simple(only, place, true);
        }
        if let [first, second] = alternatives.as_slice() {
            if let Some(t) = self.defaulted(first, second, place)? {
                self.note("`||` fallback as a parameter default", format!("`{text}`"));
                return Ok(t);
            }
        }
        // The general form: the first alternative whose parameters are all given.
        let mut out = String::new();
        let last = alternatives.len() - 1;
        for (i, alt) in alternatives.iter().enumerate() {
            let pieces = pieces(alt)?;
            let names: Vec<&str> =
                pieces.iter().filter_map(|p| if let Piece::Placeholder(n) = p { Some(*n) } else { None }).collect();
            let body = self.simple(alt, place, false)?;
            if i == last || names.is_empty() {
                if i == 0 {
                    return Ok(body);
                }
                out.push_str(&format!("{{% else %}}{body}{{% endif %}}"));
                break;
            }
            let mut conditions = Vec::new();
            for name in names {
                conditions.push(self.expression(name, place, false)?);
            }
            let keyword = if i == 0 { "if" } else { "elif" };
            out.push_str(&format!("{{% {keyword} {} %}}{body}", conditions.join(" and ")));
        }
        self.note("`||` fallback as a condition", format!("`{text}`"));
        Ok(out)
    }

    /// `pre${connectionConfig.x}post || pre VALUE post` as `pre{{ params.x or 'VALUE' }}post`.
    fn defaulted(&mut self, first: &str, second: &str, place: Place) -> Result<Option<String>, Fail> {
        let a = pieces(first)?;
        if pieces(second)?.iter().any(|p| matches!(p, Piece::Placeholder(_))) {
            return Ok(None);
        }
        let holes: Vec<usize> =
            a.iter().enumerate().filter(|(_, p)| matches!(p, Piece::Placeholder(_))).map(|(i, _)| i).collect();
        let [hole] = holes.as_slice() else { return Ok(None) };
        let Piece::Placeholder(name) = a[*hole] else { return Ok(None) };
        let text =
            |p: &[Piece<'_>]| -> String { p.iter().map(|x| if let Piece::Text(t) = x { *t } else { "" }).collect() };
        let (pre, post) = (text(&a[..*hole]), text(&a[hole + 1..]));
        if second.len() <= pre.len() + post.len() || !second.starts_with(&pre) || !second.ends_with(&post) {
            return Ok(None);
        }
        let value = &second[pre.len()..second.len() - post.len()];
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Ok(None);
        }
        let Some(field) = name.strip_prefix("connectionConfig.") else { return Ok(None) };
        if self.list("token_response_metadata").iter().any(|k| k == field) {
            return Ok(None);
        }
        let Some(param) = self.param_name(field)? else { return Ok(None) };
        self.use_param(&param, field, false, place);
        if !self.defaults.iter().any(|(k, _)| *k == param) {
            self.defaults.push((param.clone(), value.to_owned()));
        }
        Ok(Some(format!("{pre}{{{{ params.{param} or '{value}' }}}}{post}")))
    }

    /// A template without `||`. `required`: whether its parameters must be given.
    fn simple(&mut self, text: &str, place: Place, required: bool) -> Result<String, Fail> {
        let mut out = String::new();
        for piece in pieces(text)? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder(name) => match self.constant(name, place)? {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&format!("{{{{ {} }}}}", self.expression(name, place, required)?)),
                },
            }
        }
        Ok(out)
    }

    /// The expression for a placeholder: `params.x`, `params.x or 'default'`, `token.x`.
    fn expression(&mut self, placeholder: &str, place: Place, required: bool) -> Result<String, Fail> {
        if let Some(expression) = self.credential_expression(placeholder, place)? {
            return Ok(expression);
        }
        // `${base64(a${x}b)}` in a header or an exchange's request: the joined value, encoded.
        if let Some(inner) = placeholder.strip_prefix("base64(").and_then(|p| p.strip_suffix(')')) {
            if matches!(place, Place::Credential | Place::Exchange) {
                let mut parts = Vec::new();
                for piece in pieces(inner)? {
                    parts.push(match piece {
                        // A JSON string literal is a minijinja string literal.
                        Piece::Text(t) => match serde_json::to_string(t) {
                            Ok(literal) => literal,
                            Err(_) => return fail("a value keyway cannot quote", format!("`{t}`")),
                        },
                        Piece::Placeholder(name) => self.expression(name, place, required)?,
                    });
                }
                if !parts.is_empty() {
                    return Ok(format!("({}) | b64encode", parts.join(" ~ ")));
                }
            }
        }
        let Some(name) = placeholder.strip_prefix("connectionConfig.") else {
            let kind = placeholder.split(['.', ':', '(']).next().unwrap_or(placeholder);
            return fail(format!("placeholder keyway cannot fill: `${{{kind}...}}`"), format!("`${{{placeholder}}}`"));
        };
        let keep = self.list("token_response_metadata");
        if keep.iter().any(|k| k == name) {
            if place == Place::ApiBase && is_identifier(name) {
                return Ok(format!("token.{name}"));
            }
            if self.config(name).is_none() {
                return fail("endpoint built from a token-response value", format!("`${{{placeholder}}}`"));
            }
        }
        let Some(param) = self.param_name(name)? else {
            return fail(
                "endpoint built from a value the OAuth callback returns (`redirect_uri_metadata`)",
                format!("`${{{placeholder}}}`"),
            );
        };
        let known = self.defaults.iter().find(|(k, _)| *k == param).map(|(_, v)| v.clone());
        let default = known.or_else(|| {
            self.config(name).and_then(|c| c.get("default_value")).and_then(Value::as_str).map(str::to_owned)
        });
        let default =
            default.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        match default {
            Some(value) => {
                self.use_param(&param, name, false, place);
                Ok(format!("params.{param} or '{value}'"))
            }
            None => {
                self.use_param(&param, name, required, place);
                Ok(format!("params.{param}"))
            }
        }
    }

    /// The keyway parameter for a `connectionConfig` field, or `None` when the value comes
    /// from the callback instead of the user.
    fn param_name(&self, name: &str) -> Result<Option<String>, Fail> {
        let from_callback = self.list("redirect_uri_metadata").iter().any(|m| m == name);
        if from_callback && self.config(name).is_none() {
            return Ok(None);
        }
        let param: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        let param =
            if param.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') { param } else { format!("p_{param}") };
        if let Some((_, p)) = self.params.iter().find(|(k, p)| *k == param && p.nango != name) {
            return fail("two connection fields map to one parameter name", format!("`{name}` and `{}`", p.nango));
        }
        Ok(Some(param))
    }

    fn use_param(&mut self, param: &str, nango: &str, required: bool, place: Place) {
        let in_url = !matches!(place, Place::Credential | Place::Exchange);
        match self.params.iter_mut().find(|(k, _)| k == param) {
            Some((_, p)) => {
                p.required |= required;
                p.in_url |= in_url;
            }
            None => self.params.push((param.to_owned(), Param { nango: nango.to_owned(), required, in_url })),
        }
    }

    /// The parameters section: Nango's field descriptions, with patterns keyway can prove safe.
    fn parameters(&mut self) -> Result<Map<String, Value>, Fail> {
        let mut out = Map::new();
        for (id, param) in self.params.clone() {
            let config = self.config(&param.nango);
            let mut p = Map::new();
            let label = config.and_then(|c| c.get("title")).and_then(Value::as_str).filter(|t| !t.trim().is_empty());
            p.insert("label".into(), json!(label.map_or_else(|| kinds::humanise(&param.nango), str::to_owned)));
            if let Some(d) = config.and_then(|c| c.get("description")).and_then(Value::as_str).filter(|d| !d.is_empty())
            {
                p.insert("description".into(), json!(d));
            }
            if param.required && !self.defaults.iter().any(|(k, _)| *k == id) {
                p.insert("required".into(), json!(true));
            }
            let pattern = if param.in_url {
                self.pattern(&param.nango, config)
            } else {
                self.credential_pattern(&param.nango, config)
            };
            if let Some(example) = config.and_then(|c| c.get("example")).and_then(Value::as_str) {
                if matches(&pattern, example) {
                    p.insert("example".into(), json!(example));
                }
            }
            p.insert("pattern".into(), json!(pattern));
            out.insert(id, Value::Object(p));
        }
        Ok(out)
    }

    /// The pattern of a parameter only credential templates send (never a URL): Nango's enum,
    /// or its pattern anchored as field patterns are, else [`CREDENTIAL_PATTERN`].
    fn credential_pattern(&mut self, name: &str, config: Option<&Map<String, Value>>) -> String {
        let compiles = |p: &str| keyway_validate::compile_pattern(p, false).is_ok();
        if let Some(values) = config.and_then(|c| c.get("enum")).and_then(Value::as_array) {
            let values: Vec<String> = values.iter().filter_map(Value::as_str).map(regex_syntax::escape).collect();
            let pattern = format!("^(?:{})$", values.join("|"));
            if !values.is_empty() && compiles(&pattern) {
                return pattern;
            }
        }
        if let Some(original) = config.and_then(|c| c.get("pattern")).and_then(Value::as_str) {
            match kinds::field_pattern(original).filter(|p| compiles(p)) {
                Some(pattern) => {
                    if pattern != original {
                        self.note("parameter pattern anchored", format!("`{name}`: `{original}` as `{pattern}`"));
                    }
                    return pattern;
                }
                None => self.note(
                    "parameter pattern replaced (not a Rust regular expression)",
                    format!("`{name}`: `{original}` replaced by `{CREDENTIAL_PATTERN}`"),
                ),
            }
        } else {
            self.note(
                "parameter sent only in credentials, without a pattern: bounded, control characters refused",
                format!("`{name}`"),
            );
        }
        CREDENTIAL_PATTERN.to_owned()
    }

    /// Nango's pattern or enum when keyway can prove it URL-safe (anchoring it if needed),
    /// else [`SAFE_PATTERN`].
    fn pattern(&mut self, name: &str, config: Option<&Map<String, Value>>) -> String {
        let mut candidates: Vec<(String, Option<&str>)> = Vec::new();
        if let Some(values) = config.and_then(|c| c.get("enum")).and_then(Value::as_array) {
            let values: Vec<String> = values.iter().filter_map(Value::as_str).map(regex_syntax::escape).collect();
            if !values.is_empty() {
                candidates.push((format!("^(?:{})$", values.join("|")), None));
            }
        }
        let nango = config.and_then(|c| c.get("pattern")).and_then(Value::as_str);
        if let Some(pattern) = nango {
            candidates.push((pattern.to_owned(), None));
            let bare = pattern.strip_prefix('^').unwrap_or(pattern);
            let bare = bare.strip_suffix('$').filter(|b| !b.ends_with('\\')).unwrap_or(bare);
            candidates.push((format!("^(?:{bare})$"), Some("anchored")));
        }
        for (candidate, how) in &candidates {
            if regex_syntax::Parser::new().parse(candidate).is_ok()
                && keyway_validate::url_safety(candidate, false).is_none()
            {
                if let (Some(how), Some(original)) = (how, nango) {
                    self.note("parameter pattern anchored", format!("`{name}`: `{original}` {how} as `{candidate}`"));
                }
                return candidate.clone();
            }
        }
        match nango {
            Some(original) => {
                let why = if regex_syntax::Parser::new().parse(original).is_err() {
                    "is not a Rust regular expression".to_owned()
                } else {
                    keyway_validate::url_safety(original, false).unwrap_or_default()
                };
                self.note(
                    "parameter pattern tightened (Nango's lets URL delimiters through)",
                    format!("`{name}`: `{original}` ({why}) replaced by `{SAFE_PATTERN}`"),
                );
            }
            None => self.note("parameter without a pattern given the safe default", format!("`{name}`")),
        }
        SAFE_PATTERN.to_owned()
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(": {detail}") }
}

/// A query parameter's name as keyway writes it (keyway-validate's rule): a short token
/// URLs carry as is.
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn matches(pattern: &str, value: &str) -> bool {
    keyway_validate::pattern_matches(pattern, value)
}

/// Whether a converted template's literal text is free of stray `${`.
fn pieces_ok(text: &str) -> bool {
    !text.contains("${")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a Nango template into text and `${...}` placeholders (nesting counted, so
/// `${base64(${x})}` is one placeholder). Text that minijinja would read as syntax is refused.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, Fail> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let inner = &rest[start + 2..];
        let mut depth = 1usize;
        let mut end = None;
        let bytes = inner.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    depth += 1;
                    i += 1;
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            return fail("malformed placeholder", format!("`{text}`"));
        };
        out.push(Piece::Placeholder(inner[..end].trim()));
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    for p in &out {
        if let Piece::Text(t) = p {
            if t.contains("{{") || t.contains("{%") || t.contains("{#") || t.contains("}}") || t.contains("%}") {
                return fail("text that reads as template syntax", format!("`{text}`"));
            }
        }
    }
    Ok(out)
}

/// The JSON Merge Patch that turns `parent` into `child`, as a keyway patch profile.
fn patch(parent: &Value, child: &Value, parent_id: &str) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), child.get("id").cloned().unwrap_or(Value::Null));
    out.insert("extends".into(), json!(parent_id));
    let mut replace = Vec::new();
    let d = diff(parent, child, "", &mut replace);
    if !replace.is_empty() {
        out.insert("replace".into(), json!(replace));
    }
    if let Some(Value::Object(d)) = d {
        for (k, v) in d {
            if k != "id" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// What a patch at `pointer` says: mappings merge key by key and `null` removes a key. A
/// mapping below the root that would take more removals than the entries the child has is
/// written whole instead, its pointer added to `replace` (a child that swaps its parent's
/// scope catalogue for its own then lists its catalogue, not hundreds of `null`s).
fn diff(parent: &Value, child: &Value, pointer: &str, replace: &mut Vec<String>) -> Option<Value> {
    match (parent, child) {
        (Value::Object(p), Value::Object(c)) => {
            let removed = p.keys().filter(|k| !c.contains_key(*k)).count();
            if !pointer.is_empty() && removed > c.len() {
                replace.push(pointer.to_owned());
                return Some(child.clone());
            }
            let mut out = Map::new();
            for (k, cv) in c {
                match p.get(k) {
                    None => {
                        out.insert(k.clone(), cv.clone());
                    }
                    Some(pv) => {
                        let at = format!("{pointer}/{}", keyway_manifest::escape_pointer_token(k));
                        if let Some(d) = diff(pv, cv, &at, replace) {
                            out.insert(k.clone(), d);
                        }
                    }
                }
            }
            for k in p.keys() {
                if !c.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if parent == child => None,
        _ => Some(child.clone()),
    }
}

fn to_yaml(key: &str, document: &Value) -> String {
    let body = serde_yaml::to_string(document).unwrap_or_default();
    format!(
        "# Generated by `{COMMAND}` from Nango's public provider catalogue (entry `{key}`).\n# Do not edit: change the importer or the catalogue and generate again.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(keyway_id("salesforce-sandbox").as_deref(), Some("salesforce-sandbox"));
        assert_eq!(keyway_id("1password-users").as_deref(), Some("nango-1password-users"));
        assert_eq!(keyway_id("Foo.Bar").as_deref(), Some("foo-bar"));
        assert_eq!(keyway_id("--"), None);
    }

    #[test]
    fn placeholders_split() {
        let p = pieces("https://${connectionConfig.host}/x").expect("parses");
        assert_eq!(p, vec![Piece::Text("https://"), Piece::Placeholder("connectionConfig.host"), Piece::Text("/x")]);
        assert!(pieces("https://${oops").is_err());
        assert_eq!(pieces("${base64(${a}:${b})}").expect("nested").len(), 1);
    }

    #[test]
    fn merge_patch_diff() {
        let parent = json!({ "a": 1, "m": { "x": 1, "y": 2 }, "gone": true });
        let child = json!({ "a": 1, "m": { "x": 1, "y": 3 }, "new": [1] });
        let mut replace = Vec::new();
        assert_eq!(diff(&parent, &child, "", &mut replace), Some(json!({ "m": { "y": 3 }, "new": [1], "gone": null })));
        assert!(replace.is_empty());
    }

    /// Loading the patch over the parent gives the child back, whether the patch merges,
    /// removes or replaces (including keys that need escaping in a pointer).
    #[test]
    fn patches_resolve_to_the_child() {
        let profile = |id: &str, scopes: Value, params: Value| {
            json!({
                "id": id, "name": "P",
                "environments": { "production": { "label": "Production", "default": true } },
                "auth": {
                    "grants": ["authorization_code"],
                    "endpoints": { "authorize": "https://a.example/auth", "token": "https://a.example/token" },
                    "pkce": "optional",
                    "authorization_params": params
                },
                "scopes": scopes
            })
        };
        let scopes = json!({ "a": { "label": "A" }, "b": { "label": "B" }, "c/d": { "label": "C" } });
        let params = json!({ "x~y": "1", "z": "2", "w": "3" });
        let parent = profile("p", scopes.clone(), params.clone());
        let cases = [
            (profile("c", json!({ "e": { "label": "E" } }), params.clone()), json!(["/scopes"])),
            (profile("c", json!({}), json!({ "x~y": "1" })), json!(["/auth/authorization_params", "/scopes"])),
            (profile("c", json!({ "a": { "label": "A2" }, "b": { "label": "B" } }), params.clone()), Value::Null),
            (profile("c", scopes.clone(), json!({ "q": "0" })), json!(["/auth/authorization_params"])),
        ];
        for (child, replace) in cases {
            let patched = patch(&parent, &child, "p");
            assert_eq!(patched.get("replace").cloned().unwrap_or(Value::Null), replace, "{patched}");
            let mut loader = keyway_manifest::Loader::new();
            loader
                .add_str("p.yaml", serde_yaml::to_string(&parent).expect("yaml"))
                .add_str("c.yaml", serde_yaml::to_string(&patched).expect("yaml"));
            let loaded = loader.load();
            assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
            let expected: keyway_manifest::model::Profile = serde_json::from_value(child).expect("a profile");
            let resolved = &loaded.profile("c").expect("resolves").profile;
            assert_eq!(resolved.scopes, expected.scopes, "{patched}");
            assert_eq!(resolved.auth, expected.auth, "{patched}");
        }
    }
}
