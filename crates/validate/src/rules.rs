//! Semantic rules over one resolved profile (`KW04xx`).

use crate::patterns::check_pattern;
use crate::templates::{
    GuideTarget, TemplateKind, Vocabulary, analyse, env_value, guide_context, is_template, render, templates,
};
use crate::urls::{endpoint_problem, endpoint_shape_problem};
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::escape_pointer_token as esc;
use keyway_manifest::model::{Condition, Grant, Item, Profile};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Runs every rule. Diagnostics carry pointers into the resolved profile.
pub fn check(profile: &Profile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    scopes(profile, &mut out);
    action_ids(profile, &mut out);
    environments(profile, &mut out);
    let (used, in_urls, guide_templates) = templates_and_endpoints(profile, &mut out);
    parameters(profile, &(used, in_urls), &mut out);
    guide_renders(profile, &guide_templates, &mut out);
    regexes(profile, &mut out);
    guide(profile, &mut out);
    guide_links(profile, &mut out);
    unused_scopes(profile, &mut out);
    unused_objects(profile, &mut out);
    crate::credentials::rules(profile, &mut out);
    out
}

/// An `objects` entry whose name no action gives as its `object` labels nothing: usually a
/// typo of the API name (which is case-sensitive), whose actions then show the bare name.
fn unused_objects(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let named: BTreeSet<&str> = profile.actions.values().filter_map(|a| a.object.as_deref()).collect();
    let unlabelled: Vec<&str> = named.iter().copied().filter(|o| !profile.objects.contains_key(*o)).collect();
    for id in profile.objects.keys() {
        if named.contains(id.as_str()) {
            continue;
        }
        let d = Diagnostic::new(Code::UnusedObject, format!("object `{id}` has a label, but no action works on it"))
            .at_pointer(format!("/objects/{}", esc(id)));
        out.push(match keyway_stdx::closest(id, unlabelled.iter().copied()) {
            Some(best) => {
                d.with_help(format!("did you mean `{best}`? Actions name it so (API names are case-sensitive)"))
            }
            None => d.with_help("name it in an action's `object`, or remove the entry"),
        });
    }
}

/// Every link in guide text (and every `docs` URL) goes to an http(s) page, a `mailto:`
/// address or a place in the page: guides reach browsers in every format.
fn guide_links(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let help = "link to `https://` pages (or `mailto:`, or `#...` in the page); guides are shown in browsers, where other schemes run code or open local files, and a link's scheme must be written out, not built by a template";
    for (pointer, kind, source) in templates(profile) {
        if kind != TemplateKind::Guide {
            continue;
        }
        if let Some(target) = crate::links::targets(source).into_iter().find(|t| !crate::links::allowed(t)) {
            let shown: String = target.chars().take(80).collect();
            out.push(
                Diagnostic::new(
                    Code::UnsafeGuideLink,
                    format!("the text links to `{shown}`, which is not an http(s) page"),
                )
                .at_pointer(pointer)
                .with_help(help),
            );
        }
    }
    for (i, doc) in profile.docs.iter().enumerate() {
        if let Some(problem) = crate::urls::web_url_problem(&doc.url, crate::urls::MAX_REDIRECT_URI_CHARS, true) {
            out.push(
                Diagnostic::new(Code::UnsafeGuideLink, format!("the documentation link is refused: {problem}"))
                    .at_pointer(format!("/docs/{i}/url"))
                    .with_help(help),
            );
        }
    }
}

fn suggest(d: Diagnostic, word: &str, candidates: impl IntoIterator<Item = impl AsRef<str>>, what: &str) -> Diagnostic {
    let names: Vec<String> = candidates.into_iter().map(|c| c.as_ref().to_owned()).collect();
    match keyway_stdx::closest(word, names.iter().map(String::as_str)) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None if names.is_empty() => d.with_help(format!("declare it under `{what}`")),
        None => d.with_help(format!("declare it under `{what}`, or use one of: {}", names.join(", "))),
    }
}

fn scopes(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let catalogue = profile.scopes.keys();
    for (action_id, action) in &profile.actions {
        for (i, scope) in action.scopes.iter().enumerate() {
            if !profile.scopes.contains_key(scope) {
                let d = Diagnostic::new(
                    Code::UnknownScope,
                    format!("action `{action_id}` needs scope `{scope}`, which is not in the scope catalogue"),
                )
                .at_pointer(format!("/actions/{}/scopes/{i}", esc(action_id)));
                out.push(suggest(d, scope, catalogue.clone(), "scopes"));
            }
        }
    }
    for (i, scope) in profile.auth.default_scopes.iter().enumerate() {
        if !profile.scopes.contains_key(scope) {
            let d = Diagnostic::new(
                Code::UnknownDefaultScope,
                format!("default scope `{scope}` is not in the scope catalogue"),
            )
            .at_pointer(format!("/auth/default_scopes/{i}"));
            out.push(suggest(d, scope, catalogue.clone(), "scopes"));
        }
    }
    // A provider that issues refresh tokens whatever the scopes says so with `needs_scope: false`.
    let scoped_refresh = profile.auth.refresh.as_ref().is_none_or(|r| r.needs_scope);
    if profile.auth.grants.contains(&Grant::RefreshToken) && scoped_refresh {
        let refresh_scopes: Vec<&String> =
            profile.scopes.iter().filter(|(_, s)| s.grants_refresh).map(|(k, _)| k).collect();
        let by_default =
            profile.auth.default_scopes.iter().any(|s| profile.scopes.get(s).is_some_and(|s| s.grants_refresh));
        // A profile without any scope catalogue cannot say which scope grants refresh.
        if !by_default && !profile.scopes.is_empty() {
            let help = match refresh_scopes.first() {
                Some(s) => format!("add `{s}` to `auth.default_scopes`"),
                None => "mark the scope that makes the provider issue refresh tokens with `grants_refresh: true`, and request it by default".to_owned(),
            };
            out.push(
                Diagnostic::new(
                    Code::NoRefreshScope,
                    "the profile refreshes tokens, but no default scope grants a refresh token",
                )
                .at_pointer("/auth/default_scopes")
                .with_help(help),
            );
        }
    }
    for (id, scope) in &profile.scopes {
        for (i, implied) in scope.implies.iter().enumerate() {
            if !profile.scopes.contains_key(implied) {
                let d = Diagnostic::new(
                    Code::UnknownImpliedScope,
                    format!("scope `{id}` implies `{implied}`, which is not in the catalogue"),
                )
                .at_pointer(format!("/scopes/{}/implies/{i}", esc(id)));
                out.push(suggest(d, implied, profile.scopes.keys(), "scopes"));
            }
        }
    }
    implication_cycles(profile, out);
}

fn implication_cycles(profile: &Profile, out: &mut Vec<Diagnostic>) {
    if profile.scopes.values().all(|s| s.implies.is_empty()) {
        return; // no implications, no cycles (most catalogues)
    }
    // Depth-first search; each cycle is reported once, at its first member in catalogue order.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        profile: &'a Profile,
        id: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<&'a str>>,
    ) {
        match marks.get(id) {
            Some(Mark::Done) => return,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| *p == id).unwrap_or(0);
                cycles.push(path[start..].to_vec());
                return;
            }
            None => {}
        }
        marks.insert(id, Mark::Open);
        path.push(id);
        if let Some(scope) = profile.scopes.get(id) {
            for implied in &scope.implies {
                if profile.scopes.contains_key(implied) {
                    visit(profile, implied, marks, path, cycles);
                }
            }
        }
        path.pop();
        marks.insert(id, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut cycles = Vec::new();
    for id in profile.scopes.keys() {
        visit(profile, id, &mut marks, &mut Vec::new(), &mut cycles);
    }
    for cycle in cycles {
        let first = cycle[0];
        let mut names: Vec<&str> = cycle.clone();
        names.push(first);
        out.push(
            Diagnostic::new(
                Code::ScopeImplicationCycle,
                format!("scope implications form a cycle: {}", names.join(" -> ")),
            )
            .at_pointer(format!("/scopes/{}/implies", esc(first)))
            .with_help("a scope cannot imply itself, directly or through others; remove one implication"),
        );
    }
}

pub(crate) fn is_snake_case(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !id.ends_with('_')
        && !id.contains("__")
}

fn action_ids(profile: &Profile, out: &mut Vec<Diagnostic>) {
    for (id, action) in &profile.actions {
        if let Some(problem) = crate::action_paths::action_path_problem(&action.path) {
            out.push(
                Diagnostic::new(Code::MalformedActionPath, format!("action `{id}`'s path is malformed: {problem}"))
                    .at_pointer(format!("/actions/{}/path", esc(id)))
                    .with_help("write the path under `api.base_url` as `/` segments: `/sobjects/Case/{id}`"),
            );
        }
        if !is_snake_case(id) {
            let wanted: String = action.name.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join("_");
            out.push(
                Diagnostic::new(Code::MalformedActionId, format!("action id `{id}` is not snake_case"))
                    .at_pointer(format!("/actions/{}", esc(id)))
                    .with_help(format!("use lowercase letters, digits and single underscores, like `{wanted}`")),
            );
        }
    }
}

fn environments(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let defaults: Vec<&String> = profile.environments.iter().filter(|(_, e)| e.default).map(|(k, _)| k).collect();
    match defaults.len() {
        1 => {}
        0 => out.push(
            Diagnostic::new(Code::DefaultEnvironment, "no environment is the default")
                .at_pointer("/environments")
                .with_help("mark the environment most tenants use with `default: true`"),
        ),
        _ => {
            for extra in &defaults[1..] {
                out.push(
                    Diagnostic::new(
                        Code::DefaultEnvironment,
                        format!("environment `{extra}` is a second default (`{}` is one already)", defaults[0]),
                    )
                    .at_pointer(format!("/environments/{}/default", esc(extra)))
                    .with_help("exactly one environment is the default"),
                );
            }
        }
    }
}

/// Checks every template (syntax, variables) and every endpoint's rendered URL. Returns the
/// parameters some template uses, those that reach an endpoint URL, and the guide templates
/// not already reported as broken (for [`guide_renders`]).
fn templates_and_endpoints<'p>(
    profile: &'p Profile,
    out: &mut Vec<Diagnostic>,
) -> (BTreeSet<String>, BTreeSet<String>, Vec<(String, &'p str)>) {
    let vocabulary = Vocabulary::of(profile);
    let mut used = BTreeSet::new();
    let mut in_urls = BTreeSet::new();
    let mut guide_templates = Vec::new();
    let mut url_contexts = None;
    for (pointer, kind, source) in templates(profile) {
        let names = match analyse(source) {
            Ok(names) => names,
            Err((detail, line)) => {
                let line = line.map(|l| format!(" (line {l} of the template)")).unwrap_or_default();
                out.push(
                    Diagnostic::new(Code::TemplateSyntax, format!("template does not parse: {detail}{line}"))
                        .at_pointer(pointer)
                        .with_help(
                            "templates are minijinja (Jinja2) syntax: `{{ variable }}`, `{% if ... %}...{% endif %}`",
                        ),
                );
                continue;
            }
        };
        let mut known = true;
        for name in names.iter() {
            // `params.x` names one parameter; `params` alone (`params['x']`, `{% set p = params %}`,
            // a loop over it) could reach any of them, so all count as used and as reaching the URL.
            let reached: Vec<String> = match name.strip_prefix("params.") {
                Some(param) => vec![param.split('.').next().unwrap_or(param).to_owned()],
                None if name == "params" => profile.parameters.keys().cloned().collect(),
                None => Vec::new(),
            };
            for param in reached {
                // Credential templates put values in headers, encoded query values and request
                // bodies, never in a URL's structure: their parameters need no URL-safe pattern.
                if !matches!(kind, TemplateKind::Guide | TemplateKind::Credential | TemplateKind::Exchange) {
                    in_urls.insert(param.clone());
                }
                used.insert(param);
            }
            if let Some(problem) = vocabulary.problem(kind, name) {
                known = false;
                out.push(Diagnostic::new(Code::UnknownTemplateVariable, problem).at_pointer(pointer.clone()));
            }
        }
        let is_url = pointer.starts_with("/auth/endpoints/")
            || pointer == "/auth/device/start"
            || pointer == "/auth/exchange/url"
            || pointer == "/api/base_url";
        if is_url {
            if let Some((problem, line)) = crate::template_shape::transformed_parameter(source) {
                out.push(
                    Diagnostic::new(
                        Code::TransformedParameter,
                        format!("{problem} (line {line} of the template); the URL would hold something its pattern never checked"),
                    )
                    .at_pointer(pointer.clone())
                    .with_help("insert parameters as typed: `{{ params.NAME }}` or `{{ params.NAME or env.NAME }}`; put any fixed text around the tag, and tighten the parameter's pattern instead of rewriting its value"),
                );
            }
        }
        if known && is_url && kind != TemplateKind::ApiBase {
            let uses_params = names.iter().any(|n| n == "params" || n.starts_with("params."));
            check_url(profile, &mut url_contexts, (&pointer, source, uses_params), out);
        }
        if known && kind == TemplateKind::Guide {
            guide_templates.push((pointer, source));
        }
    }
    (used, in_urls, guide_templates)
}

/// Renders every guide template (and error fix) once per environment and console variant,
/// with every action selected, so unknown filters or tests, runaway loops (fuel) and other
/// render-time failures are found when the profile is validated, not when an admin asks.
fn guide_renders(profile: &Profile, guide_templates: &[(String, &str)], out: &mut Vec<Diagnostic>) {
    if guide_templates.is_empty() {
        return;
    }
    let all: Vec<String> = profile.actions.keys().cloned().collect();
    let selection = crate::Selection { actions: all.clone(), ..Default::default() };
    let (plan, _) = crate::plan_scopes(profile, &selection);
    let variants: Vec<Option<&str>> = match profile.guide.as_ref().map(|g| &g.variants) {
        Some(v) if !v.is_empty() => v.keys().map(|k| Some(k.as_str())).collect(),
        _ => vec![None],
    };
    let scopes = crate::templates::scope_entries(profile, &plan);
    let mut reported = BTreeSet::new();
    for env_id in profile.environments.keys() {
        for variant in &variants {
            let setting = GuideTarget {
                environment: env_id,
                variant: *variant,
                plan: &plan,
                scopes: &scopes,
                actions: &all,
                callback_url: "https://platform.example/oauth/callback",
                app_name: "Example integration",
                refresh_sends_secret: profile.auth.refresh_sends_secret(),
                sends_pkce: profile.auth.sends_pkce(),
            };
            let context = guide_context(profile, &setting);
            for (pointer, source) in guide_templates {
                if let Err(e) = render(source, &context) {
                    if reported.insert(pointer.clone()) {
                        out.push(
                            Diagnostic::new(Code::TemplateSyntax, format!("template fails to render: {e}"))
                                .at_pointer(pointer.clone())
                                .with_help("filters and tests must be minijinja built-ins; loops must end within the fuel limit"),
                        );
                    }
                }
            }
        }
    }
}

/// The contexts endpoints are rendered in: for every environment, each parameter absent, then
/// (if any has one) at its example. Each says whether any parameter is absent in it.
fn url_contexts(profile: &Profile) -> Vec<(&str, bool, minijinja::Value)> {
    let mut param_sets: Vec<(bool, Value)> =
        vec![(true, Value::Object(profile.parameters.keys().map(|k| (k.clone(), Value::Null)).collect()))];
    let examples: serde_json::Map<String, Value> = profile
        .parameters
        .iter()
        .map(|(k, p)| (k.clone(), p.example.clone().map_or(Value::Null, Value::String)))
        .collect();
    if examples.values().any(|v| !v.is_null()) {
        let some_absent = examples.values().any(Value::is_null);
        param_sets.push((some_absent, Value::Object(examples)));
    }
    let mut contexts = Vec::new();
    for env_id in profile.environments.keys() {
        for (absent, params) in &param_sets {
            let context = json!({ "env": env_value(profile, env_id), "params": params });
            contexts.push((env_id.as_str(), *absent, minijinja::Value::from(minijinja::value::Serde(context))));
        }
    }
    contexts
}

/// Renders an endpoint in every context of [`url_contexts`] (made on first need, once per
/// profile) and checks that the result is a safe endpoint URL. With its parameters absent, a
/// template that uses them renders a placeholder host (`None`), which is held to everything
/// but the public-host rule; their examples are held to all of it.
fn check_url<'p>(
    profile: &'p Profile,
    contexts: &mut Option<Vec<(&'p str, bool, minijinja::Value)>>,
    (pointer, source, uses_params): (&str, &str, bool),
    out: &mut Vec<Diagnostic>,
) {
    // Plain text renders to itself whatever the environment and parameters: check it once,
    // as the first environment would.
    if !is_template(source) {
        if let (Some(problem), Some(env_id)) = (endpoint_problem(source), profile.environments.keys().next()) {
            out.push(insecure_endpoint(env_id, source, &problem, pointer));
        }
        return;
    }
    for (env_id, absent, context) in contexts.get_or_insert_with(|| url_contexts(profile)).iter() {
        let rendered = match render(source, context) {
            Ok(r) => r,
            Err(e) => {
                out.push(
                    Diagnostic::new(
                        Code::TemplateSyntax,
                        format!("template fails to render for environment `{env_id}`: {e}"),
                    )
                    .at_pointer(pointer),
                );
                return;
            }
        };
        let problem =
            if *absent && uses_params { endpoint_shape_problem(&rendered) } else { endpoint_problem(&rendered) };
        if let Some(problem) = problem {
            out.push(insecure_endpoint(env_id, &rendered, &problem, pointer));
            return;
        }
    }
}

fn insecure_endpoint(env_id: &str, rendered: &str, problem: &str, pointer: &str) -> Diagnostic {
    Diagnostic::new(Code::InsecureEndpoint, format!("for environment `{env_id}` this renders `{rendered}`, {problem}"))
        .at_pointer(pointer)
        .with_help(
            "endpoints must be `https://` URLs; plain `http://` is allowed only for 127.0.0.1, [::1] and localhost",
        )
}

fn parameters(profile: &Profile, (used, in_urls): &(BTreeSet<String>, BTreeSet<String>), out: &mut Vec<Diagnostic>) {
    for (id, param) in &profile.parameters {
        let pointer = format!("/parameters/{}", esc(id));
        // One parse gives both the matcher and the URL-safety verdict.
        let checked = check_pattern(&param.pattern, param.case_insensitive);
        if !used.contains(id) {
            out.push(
                Diagnostic::new(Code::UnusedParameter, format!("parameter `{id}` is declared but no template uses it"))
                    .at_pointer(pointer.clone())
                    .with_help(format!("use it as `{{{{ params.{id} }}}}` in an endpoint, or remove it")),
            );
        }
        if in_urls.contains(id) {
            if let Some(problem) = &checked.url_safety {
                let mut d = Diagnostic::new(Code::UnsafeParameterPattern, format!("parameter `{id}` reaches a URL, but its pattern is unsafe: {problem}"))
                    .at_pointer(format!("{pointer}/pattern"))
                    .with_help("allow only what a host can be, e.g. `^[a-z0-9-]+\\.example\\.com$`; anything the pattern lets through lands in the URL");
                if param.case_insensitive {
                    d = d.with_help("allow only what a host can be, e.g. `^(?-u:[a-z0-9-]+\\.example\\.com)$`; `(?-u:...)` stops case folding from admitting Unicode look-alikes");
                }
                out.push(d);
            }
        }
        if let Some(example) = &param.example {
            if let Ok(re) = &checked.compiled {
                if !re.is_match(example) {
                    out.push(
                        Diagnostic::new(
                            Code::BadParameterExample,
                            format!("the example `{example}` does not match the pattern of `{id}`"),
                        )
                        .at_pointer(format!("{pointer}/example")),
                    );
                }
            }
            for (i, rejection) in param.reject.iter().enumerate() {
                if check_pattern(&rejection.pattern, false).compiled.as_ref().is_ok_and(|re| re.is_match(example)) {
                    out.push(
                        Diagnostic::new(
                            Code::BadParameterExample,
                            format!("the example `{example}` is refused by rejection {i} of `{id}`"),
                        )
                        .at_pointer(format!("{pointer}/example")),
                    );
                }
            }
        }
    }
}

fn regexes(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let mut check = |pointer: String, pattern: &str, case_insensitive: bool| {
        if let Err(e) = &check_pattern(pattern, case_insensitive).compiled {
            out.push(
                Diagnostic::new(Code::InvalidRegex, format!("regular expression does not compile: {e}"))
                    .at_pointer(pointer)
                    .with_help("patterns use Rust regex syntax (no look-around, no backreferences)"),
            );
        }
    };
    for (id, p) in &profile.parameters {
        check(format!("/parameters/{}/pattern", esc(id)), &p.pattern, p.case_insensitive);
        for (i, r) in p.reject.iter().enumerate() {
            check(format!("/parameters/{}/reject/{i}/pattern", esc(id)), &r.pattern, false);
        }
    }
    for (id, e) in &profile.environments {
        for (i, p) in e.identify.iter().flat_map(|x| x.host_patterns.iter()).enumerate() {
            check(format!("/environments/{}/identify/host_patterns/{i}", esc(id)), p, false);
        }
    }
    for (id, rule) in &profile.errors {
        if let Some(p) = &rule.matches.description {
            check(format!("/errors/{}/match/description", esc(id)), p, false);
        }
    }
}

fn guide(profile: &Profile, out: &mut Vec<Diagnostic>) {
    for (id, rule) in &profile.errors {
        if let Some(c) = &rule.when {
            condition(profile, c, &format!("/errors/{}/when", esc(id)), out);
        }
    }
    let Some(guide) = &profile.guide else { return };
    if !guide.variants.is_empty() {
        let defaults = guide.variants.values().filter(|v| v.default).count();
        if defaults != 1 {
            out.push(
                Diagnostic::new(
                    Code::DefaultVariant,
                    format!("{defaults} guide variants are the default; exactly one must be"),
                )
                .at_pointer("/guide/variants")
                .with_help("mark the console variant most admins use with `default: true`"),
            );
        }
    }
    for (sid, section) in &guide.sections {
        let sp = format!("/guide/sections/{}", esc(sid));
        if let Some(c) = &section.when {
            condition(profile, c, &format!("{sp}/when"), out);
        }
        for (tid, step) in &section.steps {
            let tp = format!("{sp}/steps/{}", esc(tid));
            if let Some(c) = &step.when {
                condition(profile, c, &format!("{tp}/when"), out);
            }
            for (i, item) in step.items.iter().enumerate() {
                if let Item::Detailed(d) = item {
                    if let Some(c) = &d.when {
                        condition(profile, c, &format!("{tp}/items/{i}/when"), out);
                    }
                }
            }
        }
    }
}

fn condition(profile: &Profile, c: &Condition, pointer: &str, out: &mut Vec<Diagnostic>) {
    let variants: Vec<&String> = profile.guide.as_ref().map(|g| g.variants.keys().collect()).unwrap_or_default();
    let lists: [(&str, &Vec<String>, Vec<&String>, &str); 4] = [
        ("variant", &c.variant, variants, "guide.variants"),
        ("environment", &c.environment, profile.environments.keys().collect(), "environments"),
        ("actions", &c.actions, profile.actions.keys().collect(), "actions"),
        ("scopes", &c.scopes, profile.scopes.keys().collect(), "scopes"),
    ];
    for (field, names, known, section) in lists {
        for (i, name) in names.iter().enumerate() {
            if !known.contains(&name) {
                let d = Diagnostic::new(
                    Code::UnknownConditionName,
                    format!("condition names {field} `{name}`, which the profile does not have"),
                )
                .at_pointer(format!("{pointer}/{field}/{i}"));
                out.push(suggest(d, name, known.iter().map(|s| s.as_str()), section));
            }
        }
    }
    if let Some(not) = &c.not {
        condition(profile, not, &format!("{pointer}/not"), out);
    }
}

fn unused_scopes(profile: &Profile, out: &mut Vec<Diagnostic>) {
    // A profile that offers no actions has nothing to check its catalogue against: the whole
    // catalogue is there for custom scope selections (an imported catalogue, or a profile
    // whose actions are still to be written).
    if profile.actions.is_empty() {
        return;
    }
    let mut needed: BTreeSet<&str> = profile.auth.default_scopes.iter().map(String::as_str).collect();
    needed.extend(profile.actions.values().flat_map(|a| a.scopes.iter().map(String::as_str)));
    // Whatever a needed scope implies is needed too.
    let mut frontier: Vec<&str> = needed.iter().copied().collect();
    while let Some(s) = frontier.pop() {
        for implied in profile.scopes.get(s).map(|x| x.implies.as_slice()).unwrap_or_default() {
            if needed.insert(implied) {
                frontier.push(implied);
            }
        }
    }
    for (id, scope) in &profile.scopes {
        if !needed.contains(id.as_str()) && !scope.custom_only {
            out.push(
                Diagnostic::new(Code::UnusedScope, format!("scope `{id}` is in the catalogue, but no action or default needs it"))
                    .at_pointer(format!("/scopes/{}", esc(id)))
                    .with_help("name it in an action's `scopes`, or mark it `custom_only: true` if it is there for custom scope selections"),
            );
        }
    }
}
