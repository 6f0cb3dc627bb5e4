//! Nango's entries that are not OAuth 2.0: `API_KEY`, `BASIC`, `TWO_STEP`, `JWT` and `NONE`,
//! as profiles of `auth.kind` `api_key`, `basic`, `token_exchange`, `signed_jwt` and `none`.
//!
//! Nango's `credentials` become `auth.fields` (only those a template sends), `proxy.headers`
//! and `proxy.query` become `auth.apply`, a `TWO_STEP` token request becomes `auth.exchange`
//! (renewed by exchanging the fields again: Nango's refresh request, if any, is left out), a
//! `JWT` entry's token `auth.jwt` (signed again when due).
//! What would change how a request is authenticated and that keyway cannot say is refused
//! with a reason; what changes nothing about it (retries, pagination, webhooks) is ignored.

use super::{Entry, Fail, Notes, Piece, Place, fail, is_identifier, is_oauth2, kind_of, pieces};
use serde_json::{Map, Value, json};

// Headers keyway refuses in profiles (it sets or frames them): never carried over.
use keyway_validate::credentials::{RESERVED_HEADERS, is_token};

/// `TWO_STEP` keys that sign an assertion keyway cannot make.
const SIGNING_KEYS: [&str; 4] = ["assertion", "assertion_option", "signature", "token"];

/// `TWO_STEP` keys that renew the token with a second kind of request (left out: keyway
/// exchanges the fields again).
const REFRESH_KEYS: [&str; 3] = ["refresh_url", "refresh_token_params", "refresh_token_headers"];

impl Entry<'_> {
    /// An API key, Basic, two-step or no-auth entry as a profile.
    pub(super) fn build_other(mut self, id: &str) -> Result<(Value, Notes), Fail> {
        let kind = kind_of(self.mode);
        self.refuse_other()?;
        let mut profile = self.prelude(id);
        let mut auth = Map::new();
        auth.insert("kind".into(), json!(kind));
        let mut tokens = Map::new();
        let exchange = match self.mode {
            "TWO_STEP" => Some(self.exchange(&mut tokens)?),
            _ => None,
        };
        let jwt = match self.mode {
            "JWT" => Some(self.jwt()?),
            _ => None,
        };
        let apply = match self.mode {
            "NONE" => None,
            _ => Some(self.apply()?),
        };
        let base = self.api_base();
        let verify = if base.is_some() { self.verify() } else { None };
        self.unsent_credentials()?;
        if self.mode != "NONE" && self.fields.is_empty() {
            return match self.mode {
                "API_KEY" => {
                    fail("API key placement not declared (no `proxy.headers` or `proxy.query` carries it)", "")
                }
                _ => fail("no credential is sent (no template uses a field)", ""),
            };
        }
        let fields = self.field_entries();
        let parameters = self.parameters()?;
        if !parameters.is_empty() {
            profile.insert("parameters".into(), Value::Object(parameters));
        }
        if !fields.is_empty() {
            auth.insert("fields".into(), Value::Object(fields));
        }
        if let Some(apply) = apply {
            auth.insert("apply".into(), Value::Object(apply));
        }
        if let Some(exchange) = exchange {
            auth.insert("exchange".into(), exchange);
        }
        if let Some(jwt) = jwt {
            auth.insert("jwt".into(), jwt);
        }
        if !tokens.is_empty() {
            auth.insert("tokens".into(), Value::Object(tokens));
        }
        profile.insert("auth".into(), Value::Object(auth));
        if let Some(base) = base {
            let mut api = Map::new();
            api.insert("base_url".into(), json!(base));
            if let Some(path) = verify {
                api.insert("verify".into(), json!({ "path": path }));
            }
            profile.insert("api".into(), Value::Object(api));
        }
        Ok((Value::Object(profile), self.notes))
    }

    fn proxy(&self) -> Option<&Map<String, Value>> {
        self.entry.get("proxy").and_then(Value::as_object)
    }

    fn present(&self, key: &str) -> bool {
        self.entry.get(key).is_some_and(|v| !v.is_null())
    }

    /// Refuses what changes how requests are authenticated and keyway cannot say; notes what
    /// Nango does around the connection that keyway leaves out.
    fn refuse_other(&mut self) -> Result<(), Fail> {
        let proxy = self.proxy();
        if proxy.and_then(|p| p.get("body")).is_some_and(|b| !b.is_null()) {
            return fail("adds values to every request's body (`proxy.body`)", "");
        }
        let mut notes = Vec::new();
        if proxy.and_then(|p| p.get("connection_config")).is_some() {
            notes.push(("`proxy.connection_config` not carried over", String::new()));
        }
        if proxy.and_then(|p| p.get("forward_headers_on_redirect")).is_some() {
            notes.push(("`proxy.forward_headers_on_redirect` not carried over", String::new()));
        }
        for (key, kind) in [
            ("post_connection_script", "Nango's post-connection script not run"),
            ("credentials_verification_script", "Nango's credential verification script not run"),
        ] {
            if let Some(script) = self.str(key) {
                notes.push((kind, format!("`{script}`")));
            }
        }
        if self.mode != "TWO_STEP" && (self.present("authorization_url") || self.present("token_url")) {
            notes.push(("OAuth endpoints of a non-OAuth entry ignored", String::new()));
        }
        for (kind, detail) in notes {
            self.note(kind, detail);
        }
        Ok(())
    }

    /// The credential Nango's templates name `name`: declared in `credentials`, implicit
    /// (`apiKey` of an API key entry, `username` and `password` of a Basic one), or declared
    /// for the integration (`integration_config`).
    fn credential_spec(&self, name: &str) -> Option<Map<String, Value>> {
        let declared = self.entry.get("credentials").and_then(Value::as_object);
        if let Some(spec) = declared.and_then(|c| c.get(name)) {
            return Some(spec.as_object().cloned().unwrap_or_default());
        }
        let implicit = match self.mode {
            "API_KEY" => name == "apiKey",
            "BASIC" => name == "username" || name == "password",
            _ => false,
        };
        if implicit && declared.is_none_or(|c| c.is_empty()) {
            return Some(Map::new());
        }
        self.entry.get("integration_config").and_then(|c| c.get(name)).and_then(Value::as_object).map(|spec| {
            let mut spec = spec.clone();
            spec.insert("_integration".into(), json!(true));
            spec
        })
    }

    /// Whether a bare placeholder (`${apiKey}`, `${username}`) names a credential.
    fn is_credential(&self, name: &str) -> bool {
        let declared = self.entry.get("credentials").and_then(Value::as_object);
        if declared.is_some_and(|c| c.contains_key(name)) {
            return true;
        }
        matches!((self.mode, name), ("API_KEY", "apiKey") | ("BASIC", "username" | "password"))
    }

    /// The credential a placeholder names, if any: `credentials.x`, or a bare credential name.
    fn credential_of<'p>(&self, placeholder: &'p str) -> Option<&'p str> {
        if is_oauth2(self.mode) {
            return None;
        }
        match placeholder.strip_prefix("credentials.") {
            Some(name) => Some(name),
            None if self.is_credential(placeholder) => Some(placeholder),
            None => None,
        }
    }

    /// A placeholder that stands for a fixed value: a hidden credential with a default
    /// (`username: {hidden: true, default_value: ''}`), as literal text.
    pub(super) fn constant(&self, placeholder: &str, place: Place) -> Result<Option<String>, Fail> {
        if !matches!(place, Place::Credential | Place::Exchange) {
            return Ok(None);
        }
        let Some(spec) = self.credential_of(placeholder).and_then(|name| self.credential_spec(name)) else {
            return Ok(None);
        };
        if spec.get("hidden") != Some(&Value::Bool(true)) {
            return Ok(None);
        }
        let Some(value) = spec.get("default_value").and_then(Value::as_str) else { return Ok(None) };
        if value.contains(['{', '}', '%', '#']) || value.chars().any(char::is_control) {
            return fail("a fixed credential value that reads as template syntax", format!("`${{{placeholder}}}`"));
        }
        Ok(Some(value.to_owned()))
    }

    /// The expression for a placeholder naming a credential, the exchanged token, or a secret
    /// connection value used in a credential template; `None` for other placeholders.
    pub(super) fn credential_expression(&mut self, placeholder: &str, place: Place) -> Result<Option<String>, Fail> {
        if is_oauth2(self.mode) {
            return Ok(None);
        }
        let shown = format!("`${{{placeholder}}}`");
        let in_credential = matches!(place, Place::Credential | Place::Exchange);
        let is_token = matches!(placeholder, "accessToken" | "access_token")
            || (placeholder == "credentials.token" && self.credential_spec("token").is_none());
        if matches!(self.mode, "TWO_STEP" | "JWT") && is_token {
            if place != Place::Credential {
                return fail("the exchanged token used outside `auth.apply`", shown);
            }
            self.uses_token = true;
            return Ok(Some("token.access_token".into()));
        }
        if let Some(name) = self.credential_of(placeholder) {
            if !in_credential {
                let what = if place == Place::Endpoint { "the token URL" } else { "a URL" };
                return fail(
                    format!("credential in {what} (keyway puts fields only in headers, query and body)"),
                    shown,
                );
            }
            let Some(spec) = self.credential_spec(name) else {
                return fail("placeholder keyway cannot fill: `${credentials...}`", shown);
            };
            if spec.get("automated") == Some(&Value::Bool(true)) {
                return fail("a credential Nango computes itself (`automated`)", shown);
            }
            if !is_identifier(name) {
                return fail("a credential name templates cannot use", shown);
            }
            if spec.contains_key("_integration") {
                self.note("integration-level value asked for per connection", format!("`{name}`"));
            }
            return self.use_field(name, spec).map(Some);
        }
        let Some(name) = placeholder.strip_prefix("connectionConfig.") else { return Ok(None) };
        let Some(config) = self.config(name) else { return Ok(None) };
        if config.get("automated") == Some(&Value::Bool(true)) {
            return fail("a connection value Nango fills itself (`automated`)", shown);
        }
        if in_credential && secret_config(name, config) && is_identifier(name) {
            if self.is_credential(name) {
                return fail("a connection value and a credential share a name", shown);
            }
            let mut spec = config.clone();
            spec.entry("secret").or_insert(json!(true));
            self.note("secret connection value asked for as a credential field", format!("`{name}`"));
            return self.use_field(name, spec).map(Some);
        }
        Ok(None)
    }

    /// Records that a template uses field `name`; its expression (`fields.x`, or
    /// `fields.x or 'default'` for an optional one).
    fn use_field(&mut self, name: &str, spec: Map<String, Value>) -> Result<String, Fail> {
        let default = optional_default(&spec);
        if !self.fields.iter().any(|(n, _)| n == name) {
            self.fields.push((name.to_owned(), spec));
        }
        match default {
            None => Ok(format!("fields.{name}")),
            Some(value) if value.contains(['\'', '\\']) || value.chars().any(char::is_control) => {
                fail("a credential default keyway cannot write as text", format!("`{name}`"))
            }
            Some(value) => Ok(format!("fields.{name} or '{value}'")),
        }
    }

    /// `proxy.headers` and `proxy.query` as `auth.apply` (Basic from `Basic ${base64(a:b)}`,
    /// or a `BASIC` entry's user and password); a token exchange's token as a Bearer header
    /// when Nango's proxy names no place for it.
    fn apply(&mut self) -> Result<Map<String, Value>, Fail> {
        let proxy = self.proxy().cloned().unwrap_or_default();
        let mut headers = Map::new();
        let mut basic = None;
        match proxy.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let Some(text) = scalar(value) else {
                        return fail("a request header that is not a string", format!("`proxy.headers.{name}`"));
                    };
                    let lower = name.to_ascii_lowercase();
                    if RESERVED_HEADERS.contains(&lower.as_str()) {
                        self.note("header keyway sets itself not carried over", format!("`{name}: {text}`"));
                        continue;
                    }
                    if !is_token(name) {
                        return fail("a header name that is not an HTTP token", format!("`{name}`"));
                    }
                    if headers.keys().any(|k: &String| k.eq_ignore_ascii_case(name)) {
                        return fail("a header given twice", format!("`{name}`"));
                    }
                    if lower == "authorization" {
                        if let Some((user, password)) = basic_pair(&text)? {
                            basic = Some(self.basic(&user, &password, Place::Credential)?);
                            continue;
                        }
                    }
                    headers.insert(name.clone(), json!(self.template(&text, Place::Credential)?));
                }
            }
            Some(_) => return fail("`proxy.headers` is not a mapping", ""),
        }
        let mut query = Map::new();
        match proxy.get("query") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let Some(text) = scalar(value) else {
                        return fail("a query parameter that is not a string", format!("`proxy.query.{name}`"));
                    };
                    query.insert(name.clone(), json!(self.template(&text, Place::Credential)?));
                }
            }
            Some(_) => return fail("`proxy.query` is not a mapping", ""),
        }
        let has_authorization = headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"));
        if self.mode == "BASIC" && basic.is_none() {
            if has_authorization {
                return fail("an `Authorization` header that replaces HTTP Basic", "");
            }
            basic = Some(self.basic("${username}", "${password}", Place::Credential)?);
        }
        if matches!(self.mode, "TWO_STEP" | "JWT") && !self.uses_token {
            if has_authorization || basic.is_some() {
                let what = if self.mode == "JWT" { "signed JWT" } else { "exchanged token" };
                return fail(format!("API requests carry no {what}"), "");
            }
            if !headers.is_empty() || !query.is_empty() {
                self.note("`Authorization: Bearer` added (Nango's default for the token)", String::new());
            }
            headers.insert("Authorization".into(), json!("Bearer {{ token.access_token }}"));
            self.uses_token = true;
        }
        let mut apply = Map::new();
        if !headers.is_empty() {
            apply.insert("headers".into(), Value::Object(headers));
        }
        if !query.is_empty() {
            let secret: Vec<String> = query
                .iter()
                .filter(|(_, t)| t.as_str().is_some_and(|t| self.carries_secret(t)))
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            apply.insert("query".into(), Value::Object(query));
            if !secret.is_empty() {
                apply.insert("secret_in_query".into(), json!(true));
                self.note("secret in the query string (Nango puts it there)", secret.join(", "));
            }
        }
        if let Some(basic) = basic {
            apply.insert("basic".into(), basic);
        }
        Ok(apply)
    }

    /// Whether a converted template sends a secret field or the token.
    fn carries_secret(&self, template: &str) -> bool {
        template.contains("token.")
            || self.fields.iter().any(|(name, spec)| {
                let used =
                    template.contains(&format!("fields.{name} ")) || template.contains(&format!("fields.{name}}}"));
                used && self.field_secret(name, spec)
            })
    }

    fn basic(&mut self, user: &str, password: &str, place: Place) -> Result<Value, Fail> {
        Ok(json!({ "username": self.template(user, place)?, "password": self.template(password, place)? }))
    }

    /// A `TWO_STEP` token request as `auth.exchange`; lifetimes and kept fields into `tokens`.
    fn exchange(&mut self, tokens: &mut Map<String, Value>) -> Result<Value, Fail> {
        for key in SIGNING_KEYS {
            if self.entry.get(key).is_some_and(Value::is_object) {
                return fail(format!("signs an assertion for the token request (`{key}`)"), "");
            }
        }
        if self.present("additional_steps") {
            return fail("a token obtained in several requests (`additional_steps`)", "");
        }
        let response = self.entry.get("token_response").and_then(Value::as_object).cloned().unwrap_or_default();
        // keyway renews an exchanged token by exchanging the stored fields again when it is
        // due; Nango's refresh request (a second kind of request, with the refresh token it
        // kept) is left out, which the stored fields make unnecessary.
        let mut refresh: Vec<String> =
            REFRESH_KEYS.iter().filter(|k| self.present(k)).map(|k| format!("`{k}`")).collect();
        if response.get("refresh_token").is_some_and(|v| !v.is_null()) {
            refresh.push("`token_response.refresh_token`".into());
        }
        if !refresh.is_empty() {
            self.note(
                "renewed by exchanging the credentials again, not by Nango's refresh request",
                format!("{} ignored", refresh.join(", ")),
            );
        }
        let get = match self.str("token_request_method") {
            None => false,
            Some(m) if m.eq_ignore_ascii_case("POST") => false,
            Some(m) if m.eq_ignore_ascii_case("GET") => true,
            Some(method) => {
                return fail(
                    "a token request that is neither a POST nor a GET (`token_request_method`)",
                    format!("`{method}`"),
                );
            }
        };
        if self.present("token_response_headers") {
            return fail("the token read from the answer's headers (`token_response_headers`)", "");
        }
        let Some(url) = self.entry.get("token_url") else {
            return fail("no `token_url`", "");
        };
        let Some(url) = url.as_str() else {
            return fail("endpoint that is not a single URL", "`token_url`");
        };
        // A GET sends its parameters in the URL's query: those Nango writes into the token
        // URL become the exchange's parameters, which keyway puts there (encoded).
        let (url, url_params) = match url.split_once('?') {
            Some((base, query)) if get => (base, query_pairs(query)?),
            _ => (url, Vec::new()),
        };
        let url = self.template(url, Place::Endpoint)?;
        let header_type = self
            .entry
            .get("token_headers")
            .and_then(Value::as_object)
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_ascii_lowercase);
        let json = match self.str("body_format") {
            Some("json") => true,
            Some("form") => false,
            None => header_type.as_deref().is_some_and(|t| t.starts_with("application/json")),
            Some(other) => {
                return fail("a token request body keyway cannot send (`body_format`)", format!("`{other}`"));
            }
        };
        if let Some(t) = &header_type {
            let expected = if json { "application/json" } else { "application/x-www-form-urlencoded" };
            if !t.starts_with(expected) {
                return fail("a token request whose content type differs from its body", format!("`{t}`"));
            }
        }
        let mut exchange = Map::new();
        exchange.insert("url".into(), json!(url));
        if json {
            exchange.insert("format".into(), json!("json"));
        }
        let mut body = Map::new();
        match self.entry.get("token_params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(params)) => {
                for (name, value) in params {
                    let text = match value {
                        Value::String(s) => self.template(s, Place::Exchange)?,
                        Value::Null => continue,
                        Value::Number(_) | Value::Bool(_) if json => {
                            return fail(
                                "a JSON token request value that is not a string (`token_params`)",
                                format!("`{name}: {value}`"),
                            );
                        }
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return fail("a nested token request body (`token_params`)", format!("`{name}`")),
                    };
                    body.insert(name.clone(), json!(text));
                }
            }
            Some(_) => return fail("`token_params` is not a mapping", ""),
        }
        for (name, value) in url_params {
            if body.contains_key(&name) {
                return fail("a token request parameter given twice", format!("`{name}`"));
            }
            body.insert(name, json!(self.template(&value, Place::Exchange)?));
        }
        if get {
            if json {
                return fail("a GET token request with a JSON body (`body_format: json`)", "");
            }
            exchange.insert("method".into(), json!("get"));
            let secret: Vec<String> = body
                .iter()
                .filter(|(_, t)| t.as_str().is_some_and(|t| self.carries_secret(t)))
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            if !secret.is_empty() {
                exchange.insert("secret_in_query".into(), json!(true));
                self.note(
                    "secret in the token request's query string (Nango's token request is a GET)",
                    secret.join(", "),
                );
            }
        }
        if !body.is_empty() {
            exchange.insert("body".into(), Value::Object(body));
        }
        let mut headers = Map::new();
        if let Some(map) = self.entry.get("token_headers").and_then(Value::as_object) {
            for (name, value) in map {
                let Some(text) = scalar(value) else {
                    return fail("a token request header that is not a string", format!("`token_headers.{name}`"));
                };
                let lower = name.to_ascii_lowercase();
                if lower == "content-type" {
                    continue; // checked against the body above; keyway sets it
                }
                if RESERVED_HEADERS.contains(&lower.as_str()) {
                    self.note("header keyway sets itself not carried over", format!("`{name}: {text}`"));
                    continue;
                }
                if !is_token(name) {
                    return fail("a header name that is not an HTTP token", format!("`{name}`"));
                }
                if lower == "authorization" {
                    if let Some((user, password)) = basic_pair(&text)? {
                        exchange.insert("basic".into(), self.basic(&user, &password, Place::Exchange)?);
                        continue;
                    }
                }
                headers.insert(name.clone(), json!(self.template(&text, Place::Exchange)?));
            }
        }
        if !headers.is_empty() {
            exchange.insert("headers".into(), Value::Object(headers));
        }
        let token = response.get("token").and_then(Value::as_str).unwrap_or("");
        let Some(token_pointer) = pointer(token) else {
            return fail("the whole answer is the token (`token_response.token`)", format!("`{token}`"));
        };
        exchange.insert("token_pointer".into(), json!(token_pointer));
        if let Some(expiration) = response.get("token_expiration").and_then(Value::as_str) {
            let key = match response.get("token_expiration_strategy").and_then(Value::as_str) {
                Some("expireIn") => "expires_in_pointer",
                // A time: keyway reads epoch seconds, epoch milliseconds or RFC 3339.
                Some("expireAt") => "expires_at_pointer",
                other => {
                    return fail(
                        "a token expiry keyway cannot read (`token_expiration_strategy`)",
                        format!("`{}`", other.unwrap_or("none")),
                    );
                }
            };
            let Some(expires_pointer) = pointer(expiration) else {
                return fail("a token lifetime keyway cannot find (`token_response.token_expiration`)", "");
            };
            exchange.insert(key.into(), json!(expires_pointer));
        }
        match self.entry.get("token_expires_in_ms").and_then(Value::as_u64) {
            Some(0) => self.note("`token_expires_in_ms: 0` not carried over", "no lifetime is assumed".into()),
            Some(ms) => {
                tokens.insert("assumed_lifetime_seconds".into(), json!(ms.div_ceil(1000)));
            }
            None => {}
        }
        if let Some(buffer) = self.entry.get("token_expiration_buffer") {
            self.note("`token_expiration_buffer` not carried over", format!("`{buffer}`"));
        }
        let keep = self.list("token_response_metadata");
        if !keep.is_empty() {
            tokens.insert("keep_fields".into(), json!(keep));
        }
        Ok(Value::Object(exchange))
    }

    /// A `JWT` entry's token as `auth.jwt`: the algorithm (`token.header.alg`, checked against
    /// `signature.protocol`), the key (`token.signing_key`, from a field), its encoding
    /// (`signature.hmac_secret_encoding`, Nango's default hex), the key id (`header.kid`), the
    /// claims (`token.payload`) and the lifetime (`token.expires_in_ms`).
    fn jwt(&mut self) -> Result<Value, Fail> {
        let signature = self.entry.get("signature").and_then(Value::as_object).cloned().unwrap_or_default();
        let Some(token) = self.entry.get("token").and_then(Value::as_object).cloned() else {
            return fail("a JWT entry without `token`", "");
        };
        let header = token.get("header").and_then(Value::as_object).cloned().unwrap_or_default();
        let protocol = signature.get("protocol").and_then(Value::as_str).unwrap_or("");
        let family = match protocol {
            "HMAC" => "HS",
            "RSA" => "RS",
            "EC" => "ES",
            other => return fail("a JWT signature keyway cannot make (`signature.protocol`)", format!("`{other}`")),
        };
        let algorithm = match header.get("alg").and_then(Value::as_str) {
            Some(alg) => alg.to_owned(),
            None => {
                self.note("JWT algorithm not given: the protocol's 256-bit one", format!("`{protocol}`"));
                format!("{family}256")
            }
        };
        const ALGORITHMS: [&str; 11] =
            ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"];
        let same_family = algorithm.starts_with(family) || (family == "RS" && algorithm.starts_with("PS"));
        if !ALGORITHMS.contains(&algorithm.as_str()) || !same_family {
            return fail(
                "a JWT algorithm keyway cannot sign with (`token.header.alg`)",
                format!("`{algorithm}` (`signature.protocol: {protocol}`)"),
            );
        }
        let mut jwt = Map::new();
        jwt.insert("algorithm".into(), json!(algorithm));
        let Some(key) = token.get("signing_key").and_then(Value::as_str) else {
            return fail("a JWT entry without a signing key (`token.signing_key`)", "");
        };
        if key.contains("||") {
            return fail(
                "a signing key keyway cannot tell (`token.signing_key` joins values with `||`)",
                format!("`{key}`: one of them, or both joined, signs"),
            );
        }
        jwt.insert("key".into(), json!(self.jwt_template(key)?));
        if family == "HS" {
            let encoding = match signature.get("hmac_secret_encoding").and_then(Value::as_str) {
                None => {
                    self.note(
                        "HMAC secret read as hex (Nango's default)",
                        "no `signature.hmac_secret_encoding`".into(),
                    );
                    "hex"
                }
                Some(e @ ("hex" | "utf8" | "base64")) => e,
                Some(other) => {
                    return fail("an HMAC secret encoding keyway cannot read", format!("`{other}`"));
                }
            };
            if encoding != "utf8" {
                jwt.insert("key_encoding".into(), json!(encoding));
            }
        } else {
            self.note(
                "the signing key must be a PEM private key",
                "Nango also takes one pasted on a single line".into(),
            );
        }
        for (name, value) in &header {
            match (name.as_str(), value) {
                ("alg", _) => {}
                ("typ", Value::String(t)) if t == "JWT" => {}
                ("kid", Value::String(kid)) => {
                    let kid = self.jwt_template(kid)?;
                    jwt.insert("key_id".into(), json!(kid));
                }
                _ => return fail("a JWT header keyway cannot set (`token.header`)", format!("`{name}: {value}`")),
            }
        }
        let mut claims = Map::new();
        let mut left_out = Vec::new();
        for (name, value) in token.get("payload").and_then(Value::as_object).cloned().unwrap_or_default() {
            if name == "iat" || name == "exp" {
                continue;
            }
            let texts: Vec<String> = match &value {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => match items.iter().map(|i| i.as_str().map(str::to_owned)).collect() {
                    Some(items) => items,
                    None => return fail("a JWT claim keyway cannot write (not strings)", format!("`{name}`")),
                },
                _ => return fail("a JWT claim keyway cannot write (not strings)", format!("`{name}`")),
            };
            // Nango leaves a claim out when its values are not given; keyway sends every claim.
            if texts.iter().all(|t| self.optional_only(t)) {
                left_out.push(format!("`{name}`"));
                continue;
            }
            let mut converted = Vec::new();
            for text in &texts {
                converted.push(self.jwt_template(text)?);
            }
            let claim = match value {
                Value::String(_) => json!(converted[0]),
                _ => json!(converted),
            };
            claims.insert(name, claim);
        }
        if !left_out.is_empty() {
            self.note(
                "optional JWT claims left out (Nango sends them only when given; keyway sends every claim)",
                left_out.join(", "),
            );
        }
        if !claims.is_empty() {
            jwt.insert("claims".into(), Value::Object(claims));
        }
        let lifetime = match token.get("expires_in_ms").and_then(Value::as_u64) {
            Some(ms) if (1000..=86_400_000).contains(&ms) => ms / 1000,
            other => {
                return fail(
                    "a JWT lifetime keyway cannot use (`token.expires_in_ms`: 1 second to a day)",
                    other.map_or_else(|| "none".to_owned(), |ms| format!("`{ms}`")),
                );
            }
        };
        jwt.insert("lifetime_seconds".into(), json!(lifetime));
        Ok(Value::Object(jwt))
    }

    /// Whether every placeholder of a template is a value the user may leave out: an
    /// optional connection value or credential (and there is at least one).
    fn optional_only(&self, text: &str) -> bool {
        let Ok(pieces) = pieces(text) else { return false };
        let names: Vec<&str> =
            pieces.iter().filter_map(|p| if let Piece::Placeholder(n) = p { Some(*n) } else { None }).collect();
        let optional =
            |spec: Option<&Map<String, Value>>| spec.is_some_and(|s| s.get("optional") == Some(&Value::Bool(true)));
        !names.is_empty()
            && names.iter().all(|n| match n.strip_prefix("connectionConfig.") {
                Some(name) => optional(self.config(name)),
                None => self.credential_of(n).is_some_and(|c| optional(self.credential_spec(c).as_ref())),
            })
    }

    /// A JWT template: as others (`Place::Exchange`), and a whole `${credentials.x.id}` or
    /// `${credentials.x.secret}` as that part of an `ID:SECRET` field (Nango splits Ghost's
    /// admin key at its `:`), when the field's pattern says it has exactly one.
    fn jwt_template(&mut self, text: &str) -> Result<String, Fail> {
        let whole = match pieces(text)?.as_slice() {
            [Piece::Placeholder(p)] => Some(*p),
            _ => None,
        };
        let split = whole.and_then(|p| p.strip_prefix("credentials.")).and_then(|t| t.rsplit_once('.'));
        let Some((name, part)) = split else {
            return self.template(text, Place::Exchange);
        };
        let index = match part {
            "id" => 0,
            "secret" => 1,
            _ => return fail("a part of a credential keyway cannot take apart", format!("`{text}`")),
        };
        let spec = self.credential_spec(name).unwrap_or_default();
        let pattern = spec.get("pattern").and_then(Value::as_str).unwrap_or("");
        let one_colon = pattern.starts_with('^') && pattern.ends_with('$') && pattern.matches(':').count() == 1;
        if !is_identifier(name) || !one_colon {
            return fail(
                "a part of a credential keyway cannot take apart",
                format!("`{text}`: no pattern says `{name}` is `ID:SECRET`"),
            );
        }
        let field = self.template(&format!("${{credentials.{name}}}"), Place::Exchange)?;
        let Some(expression) =
            field.strip_prefix("{{ ").and_then(|f| f.strip_suffix(" }}")).filter(|e| !e.contains(' '))
        else {
            return fail("a part of an optional credential", format!("`{text}`"));
        };
        self.note("a credential split at its `:` (`ID:SECRET`)", format!("`{text}`"));
        Ok(format!("{{{{ ({expression} | split(':') | list)[{index}] }}}}"))
    }

    /// `proxy.verification` as `api.verify.path`: a `GET` of a fixed path under the base URL.
    fn verify(&mut self) -> Option<String> {
        let verification = self.proxy()?.get("verification")?.as_object()?.clone();
        let left_out = |entry: &mut Self, why: String| {
            entry.note("connection test left out", why);
            None
        };
        let method = verification.get("method").and_then(Value::as_str).unwrap_or("GET");
        if !method.eq_ignore_ascii_case("GET") {
            return left_out(self, format!("Nango's is a `{method}`"));
        }
        if verification.get("base_url_override").is_some() {
            return left_out(self, "it goes to another base URL (`base_url_override`)".into());
        }
        let endpoint = match verification.get("endpoints") {
            Some(Value::Array(list)) => list.first().and_then(Value::as_str),
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let Some(endpoint) = endpoint else {
            return left_out(self, "no endpoint".into());
        };
        // Nango joins the base URL and the endpoint with a `/` when the endpoint has none.
        let endpoint = if endpoint.starts_with('/') { endpoint.to_owned() } else { format!("/{endpoint}") };
        if endpoint.starts_with("//")
            || endpoint.contains("${")
            || endpoint.contains(['{', '}'])
            || endpoint.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return left_out(self, format!("`{endpoint}` is not a fixed path"));
        }
        if let Some(headers) = verification.get("headers").and_then(Value::as_object) {
            let extra: Vec<&String> = headers
                .keys()
                .filter(|k| !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("accept"))
                .collect();
            if !extra.is_empty() {
                let names: Vec<String> = extra.iter().map(|k| format!("`{k}`")).collect();
                self.note("connection test headers not carried over", names.join(", "));
            }
        }
        Some(endpoint)
    }

    /// Credentials Nango asks for that no converted template sends: refused when Nango sends
    /// them somewhere keyway did not carry over, else left out with a note.
    fn unsent_credentials(&mut self) -> Result<(), Fail> {
        let Some(declared) = self.entry.get("credentials").and_then(Value::as_object) else { return Ok(()) };
        let mut rest = self.entry.clone();
        for key in ["credentials", "integration_config", "assertion_option"] {
            rest.remove(key);
        }
        if let Some(Value::Object(proxy)) = rest.get_mut("proxy") {
            proxy.remove("verification");
        }
        let places: Vec<(String, String)> = rest
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("proxy", Value::Object(proxy)) => {
                    proxy.iter().map(|(k, v)| (format!("proxy.{k}"), v.to_string())).collect::<Vec<_>>()
                }
                _ => vec![(key.clone(), value.to_string())],
            })
            .collect();
        for (name, spec) in declared {
            if self.fields.iter().any(|(n, _)| n == name) {
                continue;
            }
            let spec = spec.as_object();
            let fixed =
                spec.is_some_and(|s| s.get("hidden") == Some(&Value::Bool(true)) && s.contains_key("default_value"));
            if fixed {
                continue;
            }
            let (qualified, bare) = (format!("credentials.{name}}}"), format!("${{{name}}}"));
            if let Some((place, _)) = places.iter().find(|(_, text)| text.contains(&qualified) || text.contains(&bare))
            {
                return fail("a credential sent where keyway cannot put it", format!("`{name}` in `{place}`"));
            }
            self.note("credential Nango asks for but never sends left out", format!("`{name}`"));
        }
        Ok(())
    }

    /// The `auth.fields` section for the fields templates use.
    fn field_entries(&mut self) -> Map<String, Value> {
        let docs = self.str("docs_connect").filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace));
        let mut out = Map::new();
        let mut notes = Vec::new();
        for (name, spec) in &self.fields {
            let text = |key: &str| spec.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
            let mut field = Map::new();
            field.insert("label".into(), json!(text("title").map_or_else(|| humanise(name), str::to_owned)));
            let secret = self.field_secret(name, spec);
            if !secret {
                field.insert("secret".into(), json!(false));
            }
            if optional_default(spec).is_some() {
                field.insert("required".into(), json!(false));
            }
            let pattern = match spec.get("pattern").and_then(Value::as_str) {
                Some(p) => match field_pattern(p) {
                    Some(anchored) => {
                        if anchored != p {
                            notes.push(("field pattern anchored", format!("`{name}`: `{p}` as `{anchored}`")));
                        }
                        field.insert("pattern".into(), json!(anchored));
                        Some(anchored)
                    }
                    None => {
                        notes.push((
                            "field pattern left out (not a Rust regular expression)",
                            format!("`{name}`: `{p}`"),
                        ));
                        None
                    }
                },
                None => None,
            };
            if let Some(help) = text("description") {
                match guide_safe(help) {
                    Some(help) => {
                        field.insert("help".into(), json!(help));
                    }
                    None => notes.push(("field help left out (template syntax)", format!("`{name}`"))),
                }
            }
            if let Some(docs) = docs {
                let section = text("doc_section").filter(|s| {
                    s.starts_with('#') && s.len() > 1 && !s.contains(char::is_whitespace) && !s[1..].contains('#')
                });
                field.insert("docs".into(), json!(format!("{docs}{}", section.unwrap_or(""))));
            }
            if let Some(example) = text("example") {
                // A masked example shows the shape; it cannot match the pattern, and need not.
                let masked = example.contains(['*', '•', '…']) || example.contains("...") || example.contains("xxxx");
                let fits = masked || pattern.as_deref().is_none_or(|p| super::matches(p, example));
                let usable = fits && !example.chars().any(char::is_control);
                if usable && (!secret || masked) {
                    field.insert("example".into(), json!(example));
                } else if usable {
                    notes.push(("example of a secret left out (not visibly masked)", format!("`{name}`")));
                }
            }
            out.insert(name.clone(), Value::Object(field));
        }
        for (kind, detail) in notes {
            self.note(kind, detail);
        }
        out
    }

    /// Whether a field is secret: as Nango says, else by what it is (an API key, a password,
    /// anything named or titled like a key, token or secret that is not an identifier).
    fn field_secret(&self, name: &str, spec: &Map<String, Value>) -> bool {
        if let Some(secret) = spec.get("secret").and_then(Value::as_bool) {
            return secret;
        }
        if (self.mode == "API_KEY" && name == "apiKey") || name == "password" {
            return true;
        }
        let title = spec.get("title").and_then(Value::as_str).unwrap_or("");
        looks_secret(name) || looks_secret(title)
    }
}

/// Whether a name or title says it is a secret: a key, token, password or secret, and not an
/// identifier of one (`keyId`, `Client ID`).
pub(super) fn looks_secret(text: &str) -> bool {
    let lower: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let identifier = ["id", "ids", "name", "email", "emailaddress", "url", "login", "user", "username"]
        .iter()
        .any(|suffix| lower.ends_with(suffix));
    let secret =
        ["password", "secret", "token", "key", "passphrase", "privatekey", "jwt"].iter().any(|w| lower.contains(w))
            || lower == "pat";
    secret && !identifier
}

/// Whether a connection value Nango asks for is a secret (a key or token the user enters as
/// connection configuration): as Nango says, else by its name and title.
fn secret_config(name: &str, config: &Map<String, Value>) -> bool {
    if let Some(secret) = config.get("secret").and_then(Value::as_bool) {
        return secret;
    }
    looks_secret(name) || config.get("title").and_then(Value::as_str).is_some_and(looks_secret)
}

/// The value an optional field falls back to (Nango's default, else empty); `None` for a
/// required field. A default alone does not make a field optional: Nango's form shows it
/// filled in, and the user still sends a value.
fn optional_default(spec: &Map<String, Value>) -> Option<String> {
    if spec.get("optional") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(spec.get("default_value").and_then(Value::as_str).unwrap_or_default().to_owned())
}

/// A header or parameter value as text: a string, number or boolean.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `Basic ${base64(USER:PASSWORD)}` as the Nango templates of the user and the password;
/// `None` for any other value.
fn basic_pair(text: &str) -> Result<Option<(String, String)>, Fail> {
    let text = text.trim();
    let Some(rest) = text.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).map(|_| &text[6..]) else {
        return Ok(None);
    };
    let outer = pieces(rest.trim())?;
    let [Piece::Placeholder(call)] = outer.as_slice() else { return Ok(None) };
    let Some(inner) = call.strip_prefix("base64(").and_then(|c| c.strip_suffix(')')) else { return Ok(None) };
    let (mut user, mut password, mut colons) = (String::new(), String::new(), 0);
    for piece in pieces(inner)? {
        let target = if colons == 0 { &mut user } else { &mut password };
        match piece {
            Piece::Placeholder(p) => target.push_str(&format!("${{{p}}}")),
            Piece::Text(t) => {
                for (i, part) in t.split(':').enumerate() {
                    if i > 0 {
                        colons += 1;
                    }
                    let target = if colons == 0 { &mut user } else { &mut password };
                    target.push_str(part);
                }
            }
        }
    }
    Ok((colons == 1).then_some((user, password)))
}

/// A token URL's query (`a=${x}&b=c`) as its parameters, for a GET exchange that sends them
/// again, encoded. Text already encoded (`%`, `+`) would be encoded twice: refused.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Fail> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let literal: String =
            pieces(value)?.iter().filter_map(|x| if let Piece::Text(t) = x { Some(*t) } else { None }).collect();
        if name.is_empty() || name.contains(['%', '+', '$', '{', '}']) || literal.contains(['%', '+']) {
            return fail("a token URL query keyway cannot take apart", format!("`{pair}`"));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// A dotted path into a JSON answer (`data.token`) as a JSON pointer (`/data/token`).
pub(super) fn pointer(path: &str) -> Option<String> {
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return None;
    }
    Some(path.split('.').map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect())
}

/// Nango's field pattern as an anchored Rust regular expression, or `None`. Nango tests a
/// value with JavaScript's `RegExp.test` (a match anywhere), so a pattern anchored at one end
/// only keeps its meaning: `^sk-` is a prefix (`^(?:sk-).*$`), `[a-f0-9]$` a suffix
/// (`^.*(?:[a-f0-9])$`). One anchored at neither end is read as the whole value.
pub(super) fn field_pattern(pattern: &str) -> Option<String> {
    let parses = |p: &str| regex_syntax::Parser::new().parse(p).is_ok();
    let start = pattern.starts_with('^');
    let end = pattern.ends_with('$') && !pattern.ends_with("\\$");
    if start && end {
        return parses(pattern).then(|| pattern.to_owned());
    }
    let bare = if start { &pattern[1..] } else { pattern };
    let bare = if end { &bare[..bare.len() - 1] } else { bare };
    let anchored = match (start, end) {
        (true, false) => format!("^(?:{bare}).*$"),
        (false, true) => format!("^.*(?:{bare})$"),
        _ => format!("^(?:{bare})$"),
    };
    parses(&anchored).then_some(anchored)
}

/// Text for a guide template (a field's `help`): as is without template syntax, else `None`.
fn guide_safe(text: &str) -> Option<&str> {
    let syntax = ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|s| text.contains(s));
    (!syntax).then_some(text)
}

/// A field or parameter name as a label: `apiKey` as "API key".
pub(super) fn humanise(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    let words: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let lower = w.to_lowercase();
            match lower.as_str() {
                "api" | "id" | "url" | "pat" | "sso" | "jwt" => lower.to_uppercase(),
                _ if i == 0 => {
                    let mut chars = lower.chars();
                    chars.next().map(|f| f.to_uppercase().chain(chars).collect()).unwrap_or_default()
                }
                _ => lower,
            }
        })
        .collect();
    if words.is_empty() { name.to_owned() } else { words.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(humanise("apiKey"), "API key");
        assert_eq!(humanise("client_secret"), "Client secret");
        assert_eq!(humanise("userApiToken"), "User API token");
        assert_eq!(humanise("password"), "Password");
    }

    #[test]
    fn basic_headers() {
        let pair = |t: &str| basic_pair(t).ok().flatten();
        assert_eq!(
            pair("Basic ${base64(${credentials.username}:${credentials.password})}"),
            Some(("${credentials.username}".into(), "${credentials.password}".into()))
        );
        assert_eq!(pair("Basic ${base64(${apiKey}:)}"), Some(("${apiKey}".into(), String::new())));
        assert_eq!(
            pair("basic ${base64(${credentials.username}/token:${credentials.password})}"),
            Some(("${credentials.username}/token".into(), "${credentials.password}".into()))
        );
        assert_eq!(pair("Basic ${base64(${a}:${b}:${c})}"), None);
        assert_eq!(pair("Bearer ${apiKey}"), None);
        assert_eq!(pair("ID ${base64(${a}:${b})}"), None);
    }

    #[test]
    fn pointers_and_secrets() {
        assert_eq!(pointer("data.signIn.token").as_deref(), Some("/data/signIn/token"));
        assert_eq!(pointer("access_token").as_deref(), Some("/access_token"));
        assert_eq!(pointer(""), None);
        assert_eq!(pointer("a..b"), None);
        assert!(looks_secret("clientSecret") && looks_secret("API Key") && looks_secret("appKey"));
        assert!(!looks_secret("clientId") && !looks_secret("keyId") && !looks_secret("Key ID"));
        assert_eq!(field_pattern("[a-z]+").as_deref(), Some("^(?:[a-z]+)$"));
        assert_eq!(field_pattern("^sk-gamma-").as_deref(), Some("^(?:sk-gamma-).*$"));
        assert_eq!(field_pattern("[a-f0-9]$").as_deref(), Some("^.*(?:[a-f0-9])$"));
        assert_eq!(field_pattern("^a\\$").as_deref(), Some("^(?:a\\$).*$"));
        assert_eq!(field_pattern("^[a-z]+$").as_deref(), Some("^[a-z]+$"));
        assert_eq!(field_pattern("(["), None);
    }
}
