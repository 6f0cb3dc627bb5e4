//! The tenant layer: a connection's selection checked against its profile, and the one scope
//! resolution every part of keyway uses (validator, guide, runtime).

use crate::patterns::compile;
use crate::urls::{MAX_REDIRECT_URI_CHARS, describe_char, redirect_uri_problem};
use indexmap::IndexMap;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::model::{Grant, Profile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a connection chooses within a profile. Credentials are not part of it: they never
/// need checking against the profile, and keeping them out keeps secrets out of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// The environment; `None` means the profile's default.
    #[serde(default)]
    pub environment: Option<String>,
    /// Selected action ids; empty means the profile's default scopes.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Scopes to request instead of the computed ones.
    #[serde(default)]
    pub custom_scopes: Option<Vec<String>>,
    /// Connection parameter values by name.
    #[serde(default)]
    pub parameters: IndexMap<String, String>,
    /// The redirect URI registered with the provider.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The one grant the connection runs, when it is known (`keyway client-credentials`);
    /// `None`: any of the profile's grants. A grant that issues no refresh token (client
    /// credentials, JWT bearer) needs no refresh-granting scope.
    #[serde(default)]
    pub grant: Option<Grant>,
}

/// The scopes to select in the provider's console and to request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopePlan {
    /// In catalogue order (custom scopes: in the order given).
    pub scopes: Vec<PlannedScope>,
    /// The profile's separator.
    pub separator: String,
    /// Whether these are the connection's custom scopes.
    pub custom: bool,
}

/// One scope of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedScope {
    /// The value sent on the wire.
    pub value: String,
    /// Ids of the selected actions that need it (directly, or through a scope it implies).
    pub actions: Vec<String>,
    /// Whether it is there so the provider issues a refresh token.
    pub for_refresh: bool,
}

impl ScopePlan {
    /// The `scope` parameter value.
    pub fn scope_string(&self) -> String {
        self.scopes.iter().map(|s| s.value.as_str()).collect::<Vec<_>>().join(&self.separator)
    }

    /// The scope values, in order.
    pub fn values(&self) -> Vec<&str> {
        self.scopes.iter().map(|s| s.value.as_str()).collect()
    }
}

/// Whether connections of this profile need a refresh token.
pub fn needs_refresh(profile: &Profile) -> bool {
    profile.auth.grants.contains(&Grant::RefreshToken) && profile.scopes.values().any(|s| s.grants_refresh)
}

/// Everything `scope` implies, transitively (not including itself unless through a cycle).
fn implied_by(profile: &Profile, scope: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut frontier = vec![scope.to_owned()];
    while let Some(s) = frontier.pop() {
        for implied in profile.scopes.get(&s).map(|x| x.implies.as_slice()).unwrap_or_default() {
            if seen.insert(implied.clone()) {
                frontier.push(implied.clone());
            }
        }
    }
    seen
}

/// Resolves a selection's scopes: the minimal set that covers every selected action (none
/// selected: the profile's defaults), in catalogue order, with the refresh scope added where
/// the profile needs it, and without scopes another listed scope implies. With custom scopes,
/// those are requested as given, after checking that they exist, cover every selected action
/// and include a refresh scope when one is needed.
///
/// Diagnostics point into the selection: `/actions/0`, `/custom_scopes/2`.
pub fn plan_scopes(profile: &Profile, selection: &Selection) -> (ScopePlan, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    // scope -> actions needing it, in selection order.
    let mut needed: IndexMap<String, Vec<String>> = IndexMap::new();
    let mut seen = BTreeSet::new();
    for (i, id) in selection.actions.iter().enumerate() {
        match profile.actions.get(id) {
            // An action selected twice counts once.
            Some(_) if !seen.insert(id.as_str()) => {}
            Some(action) => {
                for scope in &action.scopes {
                    needed.entry(scope.clone()).or_default().push(id.clone());
                }
            }
            None => {
                let mut d =
                    Diagnostic::new(Code::UnknownAction, format!("`{id}` is not an action of `{}`", profile.id))
                        .at_pointer(format!("/actions/{i}"));
                d = match keyway_stdx::closest(id, profile.actions.keys().map(String::as_str)) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help(format!(
                        "`keyway inspect {}` lists its {} actions",
                        profile.id,
                        profile.actions.len()
                    )),
                };
                diagnostics.push(d);
            }
        }
    }
    if selection.actions.is_empty() {
        for scope in &profile.auth.default_scopes {
            needed.entry(scope.clone()).or_default();
        }
    }
    let refresh = needs_refresh(profile) && selection.grant.is_none_or(Grant::issues_refresh_token);
    let grants_refresh = |s: &str| profile.scopes.get(s).is_some_and(|x| x.grants_refresh);

    if let Some(custom) = &selection.custom_scopes {
        let plan = custom_plan(profile, custom, &needed, refresh, &mut diagnostics);
        return (plan, diagnostics);
    }

    let mut refresh_scopes = Vec::new();
    if refresh && !needed.keys().any(|s| grants_refresh(s)) {
        refresh_scopes = profile.auth.default_scopes.iter().filter(|s| grants_refresh(s)).cloned().collect();
        if refresh_scopes.is_empty() {
            refresh_scopes.extend(profile.scopes.iter().find(|(_, s)| s.grants_refresh).map(|(k, _)| k.clone()));
        }
    }
    // Drop a scope another needed scope implies (unless they imply each other), and credit its
    // actions to the implying scope.
    let keys: Vec<String> = needed.keys().cloned().collect();
    let closures: IndexMap<&String, BTreeSet<String>> = keys.iter().map(|k| (k, implied_by(profile, k))).collect();
    let mut kept: IndexMap<String, (Vec<String>, bool)> = IndexMap::new();
    for scope in &keys {
        let implier = keys
            .iter()
            .find(|other| *other != scope && closures[*other].contains(scope) && !closures[scope].contains(*other));
        if implier.is_none() {
            kept.insert(scope.clone(), (needed[scope].clone(), false));
        }
    }
    for scope in &keys {
        if kept.contains_key(scope) {
            continue;
        }
        for (other, (actions, _)) in kept.iter_mut() {
            if closures[other].contains(scope) {
                for a in &needed[scope] {
                    if !actions.contains(a) {
                        actions.push(a.clone());
                    }
                }
            }
        }
    }
    for scope in refresh_scopes {
        kept.entry(scope).or_insert_with(|| (Vec::new(), true)).1 = true;
    }
    // Actions in selection order.
    let order = |a: &String| selection.actions.iter().position(|s| s == a);
    for (scope, (actions, for_refresh)) in kept.iter_mut() {
        *for_refresh = *for_refresh || grants_refresh(scope);
        actions.sort_by_key(order);
    }
    // Catalogue order; unknown scopes (already reported by profile validation) last.
    let position = |s: &str| profile.scopes.get_index_of(s).unwrap_or(usize::MAX);
    let mut scopes: Vec<PlannedScope> =
        kept.into_iter().map(|(value, (actions, for_refresh))| PlannedScope { value, actions, for_refresh }).collect();
    scopes.sort_by_key(|s| position(&s.value));
    (ScopePlan { scopes, separator: profile.auth.scope_separator.clone(), custom: false }, diagnostics)
}

fn custom_plan(
    profile: &Profile,
    custom: &[String],
    needed: &IndexMap<String, Vec<String>>,
    refresh: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> ScopePlan {
    let mut values: Vec<&String> = Vec::new();
    for (i, scope) in custom.iter().enumerate() {
        if values.contains(&scope) {
            continue;
        }
        values.push(scope);
        if !profile.scopes.contains_key(scope) {
            let mut d = Diagnostic::new(
                Code::UnknownCustomScope,
                format!("custom scope `{scope}` is not in the scope catalogue of `{}`", profile.id),
            )
            .at_pointer(format!("/custom_scopes/{i}"));
            if let Some(best) = keyway_stdx::closest(scope, profile.scopes.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            diagnostics.push(d);
        }
    }
    let grants_refresh = |s: &str| profile.scopes.get(s).is_some_and(|x| x.grants_refresh);
    if refresh && !values.iter().any(|s| grants_refresh(s)) {
        let options: Vec<&str> =
            profile.scopes.iter().filter(|(_, s)| s.grants_refresh).map(|(k, _)| k.as_str()).collect();
        diagnostics.push(
            Diagnostic::new(Code::CustomScopesWithoutRefresh, "the custom scopes include no scope that grants a refresh token")
                .at_pointer("/custom_scopes")
                .with_help(format!(
                    "add {}; without it the provider issues no refresh token and the connection fails when the access token expires",
                    options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(" or ")
                )),
        );
    }
    let covered: BTreeSet<String> =
        values.iter().flat_map(|v| std::iter::once((*v).clone()).chain(implied_by(profile, v))).collect();
    for (scope, actions) in needed {
        if !covered.contains(scope) {
            for action in actions {
                diagnostics.push(
                    Diagnostic::new(Code::CustomScopesMissActionScope, format!("action `{action}` needs scope `{scope}`, which the custom scopes do not include"))
                        .at_pointer("/custom_scopes")
                        .with_help(format!("add `{scope}` to the custom scopes (and to the app's selected scopes in the provider's console)")),
                );
            }
        }
    }
    let scopes = values
        .into_iter()
        .map(|value| {
            let closure = implied_by(profile, value);
            let actions: Vec<String> = needed
                .iter()
                .filter(|(s, _)| *s == value || closure.contains(*s))
                .flat_map(|(_, a)| a.iter().cloned())
                .fold(Vec::new(), |mut acc, a| {
                    if !acc.contains(&a) {
                        acc.push(a);
                    }
                    acc
                });
            PlannedScope { value: value.clone(), actions, for_refresh: grants_refresh(value) }
        })
        .collect();
    ScopePlan { scopes, separator: profile.auth.scope_separator.clone(), custom: true }
}

/// Checks a whole selection against its profile: actions, scopes, environment, parameters and
/// redirect URI. Returns the scope plan and every problem found.
pub fn check_selection(profile: &Profile, selection: &Selection) -> (ScopePlan, Vec<Diagnostic>) {
    let (plan, mut diagnostics) = plan_scopes(profile, selection);
    if let Some(env) = &selection.environment {
        if !profile.environments.contains_key(env) {
            let mut d =
                Diagnostic::new(Code::UnknownEnvironment, format!("`{env}` is not an environment of `{}`", profile.id))
                    .at_pointer("/environment");
            let names: Vec<&str> = profile.environments.keys().map(String::as_str).collect();
            d = match keyway_stdx::closest(env, names.iter().copied()) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!("one of: {}", names.join(", "))),
            };
            diagnostics.push(d);
        }
    }
    diagnostics.extend(check_parameters(profile, &selection.parameters));
    if let Some(uri) = &selection.redirect_uri {
        let max_chars = profile.limits.callback_urls_max_chars.map_or(MAX_REDIRECT_URI_CHARS, |limit| limit as usize);
        if let Some(problem) = redirect_uri_problem(uri, max_chars) {
            diagnostics.push(
                Diagnostic::new(Code::InvalidRedirectUri, format!("redirect URI `{}` {problem}", shown(uri)))
                    .at_pointer("/redirect_uri")
                    .with_help("use an https URL, a private-use scheme like `com.example.app:/callback`, or http://127.0.0.1:PORT/..."),
            );
        }
    }
    (plan, diagnostics)
}

/// Checks connection parameter values: each is declared, required ones are present, each passes
/// its rejections (with their explanations) and its pattern. Values are never echoed beyond
/// what the user typed, and parameters hold no secrets.
pub fn check_parameters(profile: &Profile, values: &IndexMap<String, String>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, value) in values {
        let pointer = format!("/parameters/{}", keyway_manifest::escape_pointer_token(name));
        let Some(param) = profile.parameters.get(name) else {
            let mut d =
                Diagnostic::new(Code::InvalidParameter, format!("`{name}` is not a parameter of `{}`", profile.id))
                    .at_pointer(pointer);
            if let Some(best) = keyway_stdx::closest(name, profile.parameters.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            out.push(d);
            continue;
        };
        if value.is_empty() {
            let example = param.example.as_deref().unwrap_or("...");
            out.push(
                Diagnostic::new(Code::InvalidParameter, format!("`{name}` is empty"))
                    .at_pointer(pointer)
                    .with_help(format!("leave `{name}` out to use the default, or give a value like `{example}`")),
            );
            continue;
        }
        // Control characters are shown escaped, everything else as typed.
        let shown = shown(value);
        let odd = value.chars().find(|c| !c.is_ascii() || c.is_control() || c.is_whitespace());
        if let Some(rejection) =
            param.reject.iter().find(|r| compile(&r.pattern, false).is_ok_and(|re| re.is_match(value)))
        {
            out.push(
                Diagnostic::new(Code::InvalidParameter, format!("`{shown}` is not accepted for {}", param.label))
                    .at_pointer(pointer)
                    .with_help(rejection.message.trim()),
            );
            continue;
        }
        // A pattern that does not compile is reported by profile validation; refuse the value.
        let accepted = compile(&param.pattern, param.case_insensitive).is_ok_and(|re| re.is_match(value));
        if !accepted {
            let because = odd.map(|c| format!(": it contains {}", describe_char(c))).unwrap_or_default();
            let mut d =
                Diagnostic::new(Code::InvalidParameter, format!("`{shown}` is not a valid {}{because}", param.label))
                    .at_pointer(pointer);
            d = match &param.example {
                Some(example) => d.with_help(format!("expected something like `{example}`")),
                None => d.with_help(format!("it must match `{}`", param.pattern)),
            };
            out.push(d);
        }
    }
    for (name, param) in &profile.parameters {
        if param.required && !values.contains_key(name) {
            out.push(
                Diagnostic::new(
                    Code::InvalidParameter,
                    format!("the required parameter `{name}` ({}) is missing", param.label),
                )
                .at_pointer("/parameters"),
            );
        }
    }
    out
}

/// A user's value as diagnostics echo it: control characters escaped, the rest as typed.
fn shown(value: &str) -> String {
    // A long value is cut: a diagnostic need not repeat a megabyte back.
    const SHOWN_CHARS: usize = 120;
    let mut shown: String = value
        .chars()
        .take(SHOWN_CHARS)
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect();
    if value.chars().nth(SHOWN_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"id: demo
name: Demo
environments:
  production: {label: Production, default: true, vars: {host: login.example.com}}
parameters:
  tenant: {label: Tenant host, pattern: '^[a-z0-9-]+\.example\.com$', example: acme.example.com, reject: [{pattern: '^admin\.', message: Admin hosts are not OAuth hosts.}]}
auth:
  grants: [authorization_code, refresh_token]
  endpoints: {token: "https://{{ params.tenant or env.host }}/token"}
  pkce: required
  default_scopes: [api, refresh_token, offline_access]
scopes:
  api: {label: API, implies: [chatter_api]}
  refresh_token: {label: Refresh, grants_refresh: true}
  offline_access: {label: Offline, grants_refresh: true}
  full: {label: Full, implies: [api, web]}
  web: {label: Web}
  chatter_api: {label: Chatter}
actions:
  create_case: {name: Create Case, method: POST, path: /sobjects/Case, scopes: [api]}
  post_feed: {name: Post Feed, method: POST, path: /chatter/feed, scopes: [chatter_api]}
  open_page: {name: Open Page, method: GET, path: /page, scopes: [web]}
  do_all: {name: Do All, method: GET, path: /all, scopes: [full]}
"#;

    fn profile() -> Profile {
        let loaded = keyway_manifest::load_str("demo.yaml", PROFILE);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        loaded.profiles.into_iter().next().expect("demo").profile
    }

    fn select(actions: &[&str]) -> Selection {
        Selection { actions: actions.iter().map(|a| a.to_string()).collect(), ..Selection::default() }
    }

    #[test]
    fn no_actions_means_the_default_scopes() {
        let (plan, diags) = plan_scopes(&profile(), &Selection::default());
        assert!(diags.is_empty());
        assert_eq!(plan.scope_string(), "api refresh_token offline_access");
    }

    #[test]
    fn actions_get_their_scopes_plus_the_refresh_scopes_in_catalogue_order() {
        let (plan, _) = plan_scopes(&profile(), &select(&["open_page", "create_case"]));
        assert_eq!(plan.values(), ["api", "refresh_token", "offline_access", "web"]);
        assert_eq!(plan.scopes[0].actions, ["create_case"]);
        assert!(plan.scopes[1].for_refresh && !plan.scopes[0].for_refresh);
    }

    #[test]
    fn implied_scopes_are_dropped_and_their_actions_credited() {
        let (plan, _) = plan_scopes(&profile(), &select(&["post_feed", "create_case", "do_all"]));
        assert_eq!(
            plan.values(),
            ["refresh_token", "offline_access", "full"],
            "full implies api, which implies chatter_api"
        );
        assert_eq!(plan.scopes[2].actions, ["post_feed", "create_case", "do_all"], "in selection order");
        let (plan, _) = plan_scopes(&profile(), &select(&["post_feed", "create_case"]));
        assert_eq!(plan.values(), ["api", "refresh_token", "offline_access"]);
        assert_eq!(plan.scopes[0].actions, ["post_feed", "create_case"]);
    }

    #[test]
    fn unknown_actions_are_reported_with_a_suggestion() {
        let (_, diags) = plan_scopes(&profile(), &select(&["create_case", "creat_case"]));
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].code, diags[0].pointer.as_deref()), (Code::UnknownAction, Some("/actions/1")));
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `create_case`?"));
    }

    #[test]
    fn custom_scopes_are_requested_as_given_once_checked() {
        let mut s = select(&["create_case", "open_page"]);
        s.custom_scopes = Some(vec!["full".into(), "offline_access".into(), "full".into()]);
        let (plan, diags) = plan_scopes(&profile(), &s);
        assert!(diags.is_empty(), "{diags:#?}");
        assert!(plan.custom);
        assert_eq!(plan.scope_string(), "full offline_access");
        assert_eq!(plan.scopes[0].actions, ["create_case", "open_page"]);
    }

    #[test]
    fn custom_scopes_must_exist_refresh_and_cover_the_actions() {
        let mut s = select(&["create_case", "open_page"]);
        s.custom_scopes = Some(vec!["api".into(), "chatter".into()]);
        let (_, diags) = plan_scopes(&profile(), &s);
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [Code::UnknownCustomScope, Code::CustomScopesWithoutRefresh, Code::CustomScopesMissActionScope]
        );
        assert!(diags[2].message.contains("`open_page` needs scope `web`"), "{}", diags[2].message);
    }

    #[test]
    fn parameters_pass_rejections_then_patterns() {
        let p = profile();
        let check = |v: &str| {
            let values: IndexMap<String, String> = [("tenant".to_owned(), v.to_owned())].into_iter().collect();
            check_parameters(&p, &values)
        };
        assert!(check("acme.example.com").is_empty());
        let d = check("admin.example.com");
        assert_eq!(d[0].help.as_deref(), Some("Admin hosts are not OAuth hosts."));
        for hostile in [
            "evil.com#.example.com",
            "a@b.example.com",
            "acme.example.com:443",
            "acme.example.com/x",
            " acme.example.com",
        ] {
            assert_eq!(check(hostile).len(), 1, "{hostile} is refused");
        }
        let values: IndexMap<String, String> = [("tenent".to_owned(), "x".to_owned())].into_iter().collect();
        assert_eq!(check_parameters(&p, &values)[0].help.as_deref(), Some("did you mean `tenant`?"));
    }
}
