//! Templates: one minijinja environment for the whole engine, and the variables each kind of
//! template can see.

use crate::selection::ScopePlan;
use indexmap::IndexSet;
use keyway_manifest::model::Profile;
use minijinja::{Environment, UndefinedBehavior};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::OnceLock;

pub use crate::template_shape::{MAX_TAG_OPERATORS, MAX_TEMPLATE_BYTES};

/// Fuel for one render: enough for any real guide, small enough that a template with an
/// endless loop stops at once.
pub const TEMPLATE_FUEL: u64 = 50_000;

/// The minijinja environment every keyway template is parsed and rendered with: strict
/// undefined (a missing variable is an error, never an empty string), a fuel limit, no
/// auto-escaping (outputs are URLs and Markdown; HTML output escapes on its own).
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(configured)
}

/// What parsing a template tells the rules: the variables it reads, sorted; or why it does
/// not parse (minijinja's detail, and the line within the template).
pub(crate) type Analysis = Result<std::sync::Arc<[String]>, (String, Option<usize>)>;

/// Parses a template for the rules, kept by source (profiles repeat their templates). Plain
/// text (no `{{`, `{%` or `{#`) reads no variables, as [`render`] assumes, and a
/// [`substitution`] reads its paths, both without the engine.
pub(crate) fn analyse(source: &str) -> Analysis {
    if !is_template(source) {
        return Ok(std::sync::Arc::new([]));
    }
    if let Some(parts) = substitution(source) {
        let mut names: Vec<String> = parts
            .iter()
            .filter_map(|part| match part {
                Part::Path(path) => Some((*path).to_owned()),
                Part::Text(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        return Ok(names.into());
    }
    ANALYSED.get(source, || analyse_uncached(source))
}

/// A piece of a [`substitution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    /// Text, output as it is.
    Text(&'a str),
    /// A variable or a chain of attributes (`params.host`), as written.
    Path(&'a str),
}

/// Names minijinja gives a meaning of its own (literals, operators, statement words) or that
/// loops and macros define: a path that starts with one is left to the engine.
const ENGINE_WORDS: [&str; 20] = [
    "true",
    "True",
    "false",
    "False",
    "none",
    "None",
    "loop",
    "self",
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "recursive",
    "caller",
    "varargs",
    "kwargs",
    "super",
];

/// A template that only substitutes variables: text, and `{{ name }}` or `{{ name.attr }}`
/// expressions (most endpoint URLs), split into its parts; `None` for anything else (blocks,
/// comments, filters, operators, whitespace control, a final line break the engine would
/// drop, a stray `}}`), which the engine handles. Such a template always parses and reads
/// exactly its paths (tests compare both with the engine's answers). One pass over the bytes:
/// it runs for every endpoint rendered.
fn substitution(source: &str) -> Option<Vec<Part<'_>>> {
    let bytes = source.as_bytes();
    if matches!(bytes.last(), Some(b'\n' | b'\r')) {
        return None;
    }
    let is_start = |b: &u8| b.is_ascii_alphabetic() || *b == b'_';
    let is_rest = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let mut parts = Vec::with_capacity(4);
    let (mut text_from, mut at) = (0, 0);
    while let Some(i) = bytes[at..].iter().position(|&b| b == b'{' || b == b'}').map(|i| at + i) {
        match (bytes[i], bytes.get(i + 1)) {
            (b'{', Some(b'{')) => {}
            (b'{', Some(b'%' | b'#')) | (b'}', Some(b'}')) => return None,
            _ => {
                at = i + 1;
                continue;
            }
        }
        if text_from < i {
            parts.push(Part::Text(&source[text_from..i]));
        }
        let mut j = i + 2;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let path_from = j;
        loop {
            if !bytes.get(j).is_some_and(is_start) {
                return None;
            }
            j += 1;
            while bytes.get(j).is_some_and(is_rest) {
                j += 1;
            }
            if bytes.get(j) != Some(&b'.') {
                break;
            }
            j += 1;
        }
        let path = &source[path_from..j];
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if bytes.get(j..j + 2) != Some(b"}}") || ENGINE_WORDS.contains(&path.split('.').next().unwrap_or(path)) {
            return None;
        }
        parts.push(Part::Path(path));
        (text_from, at) = (j + 2, j + 2);
    }
    if text_from < bytes.len() {
        parts.push(Part::Text(&source[text_from..]));
    }
    Some(parts)
}

/// A [`substitution`] rendered with `context`, when every path names a string or none there;
/// `None` otherwise (an undefined value, which is the engine's error to word, or a value the
/// engine formats).
fn substitute(parts: &[Part<'_>], context: &minijinja::Value) -> Option<String> {
    let mut out = String::with_capacity(64);
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Path(path) => {
                let mut words = path.split('.');
                let mut value = context.get_attr(words.next()?).ok()?;
                for word in words {
                    value = value.get_attr(word).ok()?;
                }
                match value.kind() {
                    minijinja::value::ValueKind::String => out.push_str(value.as_str()?),
                    // As the engine prints it (the rules render URLs with null parameters).
                    minijinja::value::ValueKind::None => out.push_str(&value.to_string()),
                    _ => return None,
                }
            }
        }
    }
    Some(out)
}

static ANALYSED: crate::memo::Memo<Analysis> = crate::memo::Memo::new();

/// Forgets every kept analysis and compiled template.
pub(crate) fn forget() {
    ANALYSED.clear();
    *compiled().write().unwrap_or_else(std::sync::PoisonError::into_inner) = configured();
}

fn analyse_uncached(source: &str) -> Analysis {
    if let Some((problem, line)) = crate::template_shape::too_complex(source) {
        return Err((problem, Some(line)));
    }
    let template = environment()
        .template_from_str(source)
        .map_err(|e| (e.detail().unwrap_or("syntax error").to_owned(), e.line()))?;
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    Ok(names.into())
}

/// Globals minijinja provides, which templates may call.
const BUILTIN_GLOBALS: [&str; 4] = ["range", "dict", "namespace", "debug"];

/// Where a template is used, which decides what it can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// Endpoint URLs, JWT audience, device start, extra authorization and token parameters.
    Endpoint,
    /// `api.base_url`, which also sees the token fields the profile keeps.
    ApiBase,
    /// Guide text and error fixes.
    Guide,
    /// Where a credential goes on API requests (`auth.apply`): also sees `fields` and, for a
    /// token exchange, `token` (`access_token` and the kept fields).
    Credential,
    /// A token exchange's body, headers and Basic credentials, a signed JWT's key, key id and
    /// claims: also sees `fields`.
    Exchange,
}

/// The variables a profile can supply to each kind of template.
#[derive(Debug)]
pub struct Vocabulary {
    /// Attributes every environment has: `id`, `label` and the vars all environments define.
    env: IndexSet<String>,
    /// Vars some environments define and others do not, with one environment that lacks each.
    env_partial: Vec<(String, String)>,
    params: IndexSet<String>,
    token: IndexSet<String>,
    limits: IndexSet<String>,
    fields: IndexSet<String>,
    /// What `token` holds in `auth.apply`: a token exchange's token and kept fields.
    exchanged: IndexSet<String>,
}

const GUIDE_ROOTS: [&str; 14] = [
    "profile",
    "env",
    "params",
    "callback_url",
    "app_name",
    "variant",
    "scopes",
    "scope_string",
    "default_scopes",
    "selected_actions",
    "limits",
    "refresh_sends_secret",
    "sends_pkce",
    "pkce",
];

impl Vocabulary {
    /// The vocabulary of one resolved profile.
    pub fn of(profile: &Profile) -> Vocabulary {
        let mut env: IndexSet<String> = ["id", "label"].into_iter().map(str::to_owned).collect();
        let mut env_partial = Vec::new();
        let all_vars: IndexSet<&String> = profile.environments.values().flat_map(|e| e.vars.keys()).collect();
        for var in all_vars {
            match profile.environments.iter().find(|(_, e)| !e.vars.contains_key(var)) {
                Some((missing_in, _)) => env_partial.push((var.clone(), missing_in.clone())),
                None => {
                    env.insert(var.clone());
                }
            }
        }
        let limits = match serde_json::to_value(&profile.limits) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => IndexSet::new(),
        };
        Vocabulary {
            env,
            env_partial,
            params: profile.parameters.keys().cloned().collect(),
            token: profile.auth.tokens.keep_fields.iter().cloned().collect(),
            limits,
            fields: profile.auth.fields.keys().cloned().collect(),
            exchanged: match profile.auth.kind {
                keyway_manifest::model::AuthKind::TokenExchange | keyway_manifest::model::AuthKind::SignedJwt => {
                    std::iter::once("access_token".to_owned())
                        .chain(profile.auth.tokens.keep_fields.iter().cloned())
                        .collect()
                }
                _ => IndexSet::new(),
            },
        }
    }

    /// Why `name` (as minijinja reports it: `env.login_host`, `scopes`) cannot be supplied to a
    /// template of `kind`, or `None` when it can.
    pub fn problem(&self, kind: TemplateKind, name: &str) -> Option<String> {
        let (root, attr) = match name.split_once('.') {
            Some((root, attr)) => (root, Some(attr.split('.').next().unwrap_or(attr))),
            None => (name, None),
        };
        if BUILTIN_GLOBALS.contains(&root) {
            return None;
        }
        let (known, what): (&IndexSet<String>, &str) = match (kind, root) {
            (_, "env") => (&self.env, "environment variable"),
            (_, "params") => (&self.params, "parameter"),
            (TemplateKind::ApiBase, "token") => (&self.token, "kept token field (`auth.tokens.keep_fields`)"),
            (TemplateKind::Credential | TemplateKind::Exchange, "fields") => {
                (&self.fields, "credential field (`auth.fields`)")
            }
            (TemplateKind::Credential, "token") => (
                &self.exchanged,
                "exchanged token field (`access_token`, or one of `auth.tokens.keep_fields` of a `token_exchange`)",
            ),
            (TemplateKind::Guide, "limits") => (&self.limits, "limit"),
            (TemplateKind::Guide, "profile") => {
                return attr
                    .filter(|a| !["id", "name"].contains(a))
                    .map(|a| format!("`profile.{a}` does not exist; use `profile.id` or `profile.name`"));
            }
            (TemplateKind::Guide, r) if GUIDE_ROOTS.contains(&r) => return None,
            _ => {
                let roots: &[&str] = match kind {
                    TemplateKind::Endpoint => &["env", "params"],
                    TemplateKind::ApiBase => &["env", "params", "token"],
                    TemplateKind::Guide => &GUIDE_ROOTS,
                    TemplateKind::Credential => &["env", "params", "fields", "token"],
                    TemplateKind::Exchange => &["env", "params", "fields"],
                };
                let hint = keyway_stdx::closest(root, roots.iter().copied())
                    .map(|best| format!("did you mean `{best}`? "))
                    .unwrap_or_default();
                return Some(format!("`{root}` is not available here; {hint}{}", self.roots(kind)));
            }
        };
        let attr = attr?;
        if known.contains(attr) {
            return None;
        }
        if root == "env" {
            if let Some((_, missing_in)) = self.env_partial.iter().find(|(v, _)| v == attr) {
                return Some(format!("`env.{attr}` is not defined in environment `{missing_in}`"));
            }
        }
        let mut message = format!("`{root}.{attr}` is not a declared {what}");
        if let Some(best) = keyway_stdx::closest(attr, known.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean `{root}.{best}`?"));
        }
        Some(message)
    }

    fn roots(&self, kind: TemplateKind) -> String {
        match kind {
            TemplateKind::Endpoint => "endpoint templates see `env` and `params`".to_owned(),
            TemplateKind::ApiBase => "`api.base_url` sees `env`, `params` and `token`".to_owned(),
            TemplateKind::Guide => format!("guide templates see {}", GUIDE_ROOTS.map(|r| format!("`{r}`")).join(", ")),
            TemplateKind::Credential => "`auth.apply` sees `env`, `params`, `fields` and `token`".to_owned(),
            TemplateKind::Exchange => "`auth.exchange` and `auth.jwt` see `env`, `params` and `fields`".to_owned(),
        }
    }
}

/// Every template of a profile: its JSON pointer, kind and source.
pub fn templates(profile: &Profile) -> Vec<(String, TemplateKind, &str)> {
    use TemplateKind::*;
    let esc = keyway_manifest::escape_pointer_token;
    let mut out: Vec<(String, TemplateKind, &str)> = Vec::new();
    if let Some(e) = &profile.auth.endpoints {
        out.push(("/auth/endpoints/token".into(), Endpoint, &e.token));
        for (name, value) in [
            ("authorize", &e.authorize),
            ("refresh", &e.refresh),
            ("revoke", &e.revoke),
            ("introspect", &e.introspect),
            ("userinfo", &e.userinfo),
            ("device_authorization", &e.device_authorization),
        ] {
            if let Some(v) = value {
                out.push((format!("/auth/endpoints/{name}"), Endpoint, v));
            }
        }
    }
    if let Some(exchange) = &profile.auth.exchange {
        out.push(("/auth/exchange/url".into(), Endpoint, &exchange.url));
        for (k, v) in &exchange.body {
            out.push((format!("/auth/exchange/body/{}", esc(k)), Exchange, v));
        }
        for (k, v) in &exchange.headers {
            out.push((format!("/auth/exchange/headers/{}", esc(k)), Exchange, v));
        }
        if let Some(basic) = &exchange.basic {
            out.push(("/auth/exchange/basic/username".into(), Exchange, &basic.username));
            out.push(("/auth/exchange/basic/password".into(), Exchange, &basic.password));
        }
    }
    if let Some(jwt) = &profile.auth.jwt {
        out.push(("/auth/jwt/key".into(), Exchange, &jwt.key));
        if let Some(kid) = &jwt.key_id {
            out.push(("/auth/jwt/key_id".into(), Exchange, kid));
        }
        for (k, v) in &jwt.claims {
            match v {
                keyway_manifest::model::ClaimTemplate::Text(t) => {
                    out.push((format!("/auth/jwt/claims/{}", esc(k)), Exchange, t))
                }
                keyway_manifest::model::ClaimTemplate::List(items) => {
                    for (i, t) in items.iter().enumerate() {
                        out.push((format!("/auth/jwt/claims/{}/{i}", esc(k)), Exchange, t));
                    }
                }
            }
        }
    }
    if let Some(apply) = &profile.auth.apply {
        for (k, v) in &apply.headers {
            out.push((format!("/auth/apply/headers/{}", esc(k)), Credential, v));
        }
        for (k, v) in &apply.query {
            out.push((format!("/auth/apply/query/{}", esc(k)), Credential, v));
        }
        if let Some(basic) = &apply.basic {
            out.push(("/auth/apply/basic/username".into(), Credential, &basic.username));
            out.push(("/auth/apply/basic/password".into(), Credential, &basic.password));
        }
    }
    for (k, field) in &profile.auth.fields {
        if let Some(help) = &field.help {
            out.push((format!("/auth/fields/{}/help", esc(k)), Guide, help));
        }
    }
    for (k, v) in &profile.auth.authorization_params {
        out.push((format!("/auth/authorization_params/{}", esc(k)), Endpoint, v));
    }
    for (k, v) in &profile.auth.token_params {
        out.push((format!("/auth/token_params/{}", esc(k)), Endpoint, v));
    }
    for (k, v) in &profile.auth.refresh_params {
        out.push((format!("/auth/refresh_params/{}", esc(k)), Endpoint, v));
    }
    if let Some(issuer) = &profile.auth.issuer {
        out.push(("/auth/issuer".into(), Endpoint, issuer));
    }
    if let Some(jwt) = &profile.auth.jwt_bearer {
        out.push(("/auth/jwt_bearer/audience".into(), Endpoint, &jwt.audience));
    }
    if let Some(device) = &profile.auth.device {
        out.push(("/auth/device/start".into(), Endpoint, &device.start));
    }
    if let Some(api) = &profile.api {
        out.push(("/api/base_url".into(), ApiBase, &api.base_url));
    }
    if let Some(guide) = &profile.guide {
        for (sid, section) in &guide.sections {
            let sp = format!("/guide/sections/{}", esc(sid));
            out.push((format!("{sp}/title"), Guide, &section.title));
            if let Some(intro) = &section.intro {
                out.push((format!("{sp}/intro"), Guide, intro));
            }
            for (tid, step) in &section.steps {
                let tp = format!("{sp}/steps/{}", esc(tid));
                out.push((format!("{tp}/title"), Guide, &step.title));
                if let Some(text) = &step.text {
                    out.push((format!("{tp}/text"), Guide, text));
                }
                for (i, item) in step.items.iter().enumerate() {
                    match item {
                        keyway_manifest::model::Item::Text(text) => out.push((format!("{tp}/items/{i}"), Guide, text)),
                        keyway_manifest::model::Item::Detailed(d) => {
                            out.push((format!("{tp}/items/{i}/text"), Guide, &d.text))
                        }
                    }
                }
            }
        }
    }
    for (id, rule) in &profile.errors {
        out.push((format!("/errors/{}/fix", esc(id)), Guide, &rule.fix));
    }
    out
}

/// The `env` value templates see: the environment's `id`, `label` and `vars`.
pub fn env_value(profile: &Profile, env_id: &str) -> Value {
    let mut env = serde_json::Map::new();
    env.insert("id".into(), json!(env_id));
    if let Some(environment) = profile.environments.get(env_id) {
        env.insert("label".into(), json!(environment.label));
        for (k, v) in &environment.vars {
            env.insert(k.clone(), json!(v));
        }
    }
    Value::Object(env)
}

/// A scope as guides show it: the console's entry and the actions that need it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ScopeEntry {
    /// The value sent on the wire.
    pub value: String,
    /// The console's label, or the value where the scope has none.
    pub label: String,
    /// The console's entry as shown ("Manage user data via APIs (api)"), or the value where
    /// the scope has no label.
    pub console_label: String,
    /// Display names of the selected actions that need it.
    pub actions: Vec<String>,
    /// Whether it is there so the provider issues a refresh token.
    pub for_refresh: bool,
}

/// The scope entries of a plan, with console labels and action display names.
pub fn scope_entries(profile: &Profile, plan: &ScopePlan) -> Vec<ScopeEntry> {
    let name_of = |id: &str| profile.actions.get(id).map_or_else(|| id.to_owned(), |a| a.name.clone());
    plan.scopes
        .iter()
        .map(|s| {
            // A scope without a label is shown by its value, as its console shows it.
            let scope = profile.scopes.get(&s.value);
            let label = scope.and_then(|scope| scope.label.clone());
            let console_label = match (scope.and_then(|scope| scope.console_label.clone()), &label) {
                (Some(console_label), _) => console_label,
                (None, Some(label)) => format!("{label} ({})", s.value),
                (None, None) => s.value.clone(),
            };
            let label = label.unwrap_or_else(|| s.value.clone());
            ScopeEntry {
                value: s.value.clone(),
                label,
                console_label,
                actions: s.actions.iter().map(|a| name_of(a)).collect(),
                for_refresh: s.for_refresh,
            }
        })
        .collect()
}

/// What a guide is rendered for, beyond the profile.
#[derive(Debug, Clone, Copy)]
pub struct GuideTarget<'a> {
    /// The environment id.
    pub environment: &'a str,
    /// The console variant id, if the guide has variants.
    pub variant: Option<&'a str>,
    /// The resolved scopes.
    pub plan: &'a ScopePlan,
    /// The same scopes as guides show them ([`scope_entries`] of `plan`).
    pub scopes: &'a [ScopeEntry],
    /// Selected action ids.
    pub actions: &'a [String],
    /// The platform's callback URL.
    pub callback_url: &'a str,
    /// The app's name in the console.
    pub app_name: &'a str,
    /// Whether refresh requests carry the client secret.
    pub refresh_sends_secret: bool,
    /// Whether authorization requests carry a PKCE challenge.
    pub sends_pkce: bool,
}

/// The context every guide template is rendered with: the one definition of the guide
/// vocabulary [`Vocabulary`] checks against. Built from borrowed data in one conversion.
/// Every declared parameter is `none` (guides use `params.x or env.y`).
pub fn guide_context(profile: &Profile, target: &GuideTarget<'_>) -> minijinja::Value {
    guide_context_with_params(profile, target, &indexmap::IndexMap::new())
}

/// [`guide_context`] for a connection whose parameters are known (`keyway guide --param`):
/// `params.x` is the value given, `none` for a declared parameter not given.
pub fn guide_context_with_params(
    profile: &Profile,
    target: &GuideTarget<'_>,
    parameters: &indexmap::IndexMap<String, String>,
) -> minijinja::Value {
    #[derive(Serialize)]
    struct Named<'a> {
        id: &'a str,
        name: &'a str,
    }
    #[derive(Serialize)]
    struct Context<'a> {
        profile: Named<'a>,
        env: indexmap::IndexMap<&'a str, &'a str>,
        params: indexmap::IndexMap<&'a str, Option<&'a str>>,
        callback_url: &'a str,
        app_name: &'a str,
        variant: &'a str,
        scopes: &'a [ScopeEntry],
        scope_string: String,
        default_scopes: &'a [String],
        selected_actions: Vec<Named<'a>>,
        limits: &'a keyway_manifest::model::Limits,
        refresh_sends_secret: bool,
        sends_pkce: bool,
        pkce: Option<keyway_manifest::model::Pkce>,
    }
    let mut env = indexmap::IndexMap::new();
    env.insert("id", target.environment);
    if let Some(environment) = profile.environments.get(target.environment) {
        env.insert("label", environment.label.as_str());
        for (k, v) in &environment.vars {
            env.insert(k.as_str(), v.as_str());
        }
    }
    let context = Context {
        profile: Named { id: &profile.id, name: &profile.name },
        env,
        params: profile.parameters.keys().map(|k| (k.as_str(), parameters.get(k).map(String::as_str))).collect(),
        callback_url: target.callback_url,
        app_name: target.app_name,
        variant: target.variant.unwrap_or_default(),
        scopes: target.scopes,
        scope_string: target.plan.scope_string(),
        default_scopes: &profile.auth.default_scopes,
        selected_actions: profile
            .actions
            .iter()
            .filter(|(id, _)| target.actions.contains(id))
            .map(|(id, a)| Named { id, name: &a.name })
            .collect(),
        limits: &profile.limits,
        refresh_sends_secret: target.refresh_sends_secret,
        sends_pkce: target.sends_pkce,
        pkce: profile.auth.pkce,
    };
    minijinja::Value::from(minijinja::value::Serde(context))
}

/// Renders a template; plain text (most of a guide) skips the engine, and so does a
/// [`substitution`] whose paths all name strings (most endpoint URLs). Templates are compiled
/// once, on first use, and kept (keyed by their source; up to [`COMPILED_LIMIT`], then compiled
/// for each render) in an environment with the same settings as [`environment`], so rendering
/// the same guide again costs only evaluation. The error is minijinja's detail, or its kind
/// ("engine ran out of fuel").
pub fn render<'a>(source: &'a str, context: &minijinja::Value) -> Result<std::borrow::Cow<'a, str>, String> {
    if !is_template(source) {
        return Ok(std::borrow::Cow::Borrowed(source));
    }
    if let Some(rendered) = substitution(source).and_then(|parts| substitute(&parts, context)) {
        return Ok(std::borrow::Cow::Owned(rendered));
    }
    let message = |e: minijinja::Error| e.detail().map_or_else(|| e.kind().to_string(), str::to_owned);
    let compiled = compiled();
    {
        let env = compiled.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(template) = env.get_template(source) {
            return template.render(context).map(std::borrow::Cow::Owned).map_err(message);
        }
    }
    // The engine recurses over what it parses: a tag too complex for it never reaches it.
    if let Some((problem, line)) = crate::template_shape::too_complex(source) {
        return Err(format!("{problem} (line {line} of the template)"));
    }
    let mut env = compiled.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if env.get_template(source).is_err() {
        if env.templates().count() >= COMPILED_LIMIT {
            drop(env);
            let template = environment().template_from_str(source).map_err(message)?;
            return template.render(context).map(std::borrow::Cow::Owned).map_err(message);
        }
        env.add_template_owned(source.to_owned(), source.to_owned()).map_err(message)?;
    }
    let template = env.get_template(source).map_err(message)?;
    template.render(context).map(std::borrow::Cow::Owned).map_err(message)
}

/// How many compiled templates [`render`] keeps: a service rendering many profiles' guides
/// over its life does not grow without bound.
const COMPILED_LIMIT: usize = 4096;

/// Whether text has template syntax (`{{`, `{%` or `{#`), in one pass.
pub(crate) fn is_template(text: &str) -> bool {
    // `find` on a byte uses memchr; most guide text has no brace at all.
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        if matches!(rest.as_bytes().get(i + 1), Some(b'{' | b'%' | b'#')) {
            return true;
        }
        rest = &rest[i + 1..];
    }
    false
}

fn compiled() -> &'static std::sync::RwLock<Environment<'static>> {
    static COMPILED: OnceLock<std::sync::RwLock<Environment<'static>>> = OnceLock::new();
    COMPILED.get_or_init(|| std::sync::RwLock::new(configured()))
}

fn configured() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("b64encode", b64encode);
    env
}

/// The `b64encode` filter: a string's UTF-8 bytes in standard base64, for credentials a
/// provider takes encoded in a header (`{{ (fields.user ~ ':' ~ fields.key) | b64encode }}`).
fn b64encode(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64encode_encodes_the_joined_text() {
        let context =
            minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"fields": {"u": "ada", "k": "s:3"}})));
        assert_eq!(render("{{ (fields.u ~ ':' ~ fields.k) | b64encode }}", &context).as_deref(), Ok("YWRhOnM6Mw=="));
        assert_eq!(render("{{ '' | b64encode }}", &context).as_deref(), Ok(""));
    }

    /// The kept and shortcut answers are the engine's.
    #[test]
    fn analysis_is_the_engine_s_answer() {
        for source in [
            "https://login.example.com/oauth/token",
            "plain { text } with %} and }} and -%}",
            "",
            "https://{{ params.host }}/t?x={{ env.region | lower }}",
            "{% for s in scopes %}{{ s.value }}{% endfor %}{{ profile.name }}",
            "{% set p = params %}{{ p.x }}",
            "{{ unclosed",
            "{% if %}",
            "{# a comment #}text",
            // Substitutions, and near misses the engine reads differently or refuses.
            "https://{{ params.host }}/oauth/token",
            "{{params.a}}{{ params.a }}{{ env.id }}",
            "{{ token.instance_url }}/services/data/v62.0",
            "{{ a.b.c }} and {{ a }}",
            "{{ a.if }}{{ a.true }}{{ a.loop }}",
            "{{ a }}}",
            "{{ a }}}}",
            "{{ _x }}",
            "{ {{ a }} }",
            "{{ true }}",
            "{{ none.x }}",
            "{{ loop.index }}",
            "{{ range }}",
            "{{ params.x or 'y' }}",
            "{{- params.x }}",
            "{{ params.x -}}",
            "a }} b {{ c }}",
            "{{ a }}\n",
            "{{ a. b }}",
            "{{ a .b }}",
            "{{ a. }}",
            "{{ 1a }}",
            "{{ a.1 }}",
            "{{ a }",
            "{{ a",
            "{{ }}",
            "{{ a }} {% if b %}c{% endif %}",
            "{{ a }}{# c #}",
            "{{ a\tb }}",
        ] {
            let expected = analyse_uncached(source);
            assert_eq!(analyse(source), expected, "{source:?}");
            assert_eq!(analyse(source), expected, "{source:?}, kept");
        }
        // The shortcut is taken where it should be, and only there.
        assert_eq!(
            substitution("https://{{ params.host }}/x"),
            Some(vec![Part::Text("https://"), Part::Path("params.host"), Part::Text("/x")])
        );
        assert_eq!(substitution("{ {{a.b}} }"), Some(vec![Part::Text("{ "), Part::Path("a.b"), Part::Text(" }")]));
        for declined in ["{{ true }}", "{{ a }}\n", "{{ a | lower }}", "{{ a }}{# c #}", "a }} {{ b }}", "{{ a."] {
            assert_eq!(substitution(declined), None, "{declined:?}");
        }
    }

    /// What the substitution shortcut renders is the engine's output; whatever it cannot
    /// render (numbers, null, undefined values, globals) goes to the engine, errors included.
    #[test]
    fn rendering_is_the_engine_s_output() {
        let context = minijinja::Value::from(minijinja::value::Serde(json!({
            "params": {"host": "eu.example.com", "n": 5, "nothing": null, "nested": {"deep": "x"}},
            "env": {"id": "production"},
        })));
        let engine = configured();
        for source in [
            "https://{{ params.host }}/oauth/token",
            "https://{{params.host}}/{{ env.id }}/{{ params.nested.deep }}",
            "{{ params.n }}",
            "{{ params.nothing }}",
            "{{ params.missing }}",
            "{{ missing.x }}",
            "{{ range }}",
            "{{ params.nested }}",
            "{{ params.host }}\n",
            "{ {{ params.host }}}",
            "{{ params.nested.if }}",
        ] {
            let expected = engine
                .template_from_str(source)
                .and_then(|t| t.render(&context))
                .map_err(|e| e.detail().map_or_else(|| e.kind().to_string(), str::to_owned));
            assert_eq!(render(source, &context).map(|r| r.into_owned()), expected, "{source:?}");
        }
        let shortcut = |source| substitution(source).and_then(|parts| substitute(&parts, &context));
        assert_eq!(shortcut("https://{{ params.host }}/t").as_deref(), Some("https://eu.example.com/t"));
        assert_eq!(shortcut("{{ params.nothing }}.example").as_deref(), Some("None.example"));
        assert_eq!(shortcut("{{ params.n }}"), None);
        assert_eq!(shortcut("{{ params.missing }}"), None);
    }
}
