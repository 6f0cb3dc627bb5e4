//! From a profile and a selection to a rendered [`Guide`].

use crate::output::{
    CatalogueAction, Guide, GuideAction, GuideEnvironment, GuideItem, GuideSection, GuideSetting, GuideStep,
    Troubleshooting,
};
use crate::text::{app_name_problem, markdown_text};
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::escape_pointer_token as esc;
use keyway_manifest::model::{Condition, Grant, Item, ItemKind, Profile};
use keyway_validate::templates::{GuideTarget, guide_context_with_params, render as render_template, scope_entries};
use keyway_validate::{Selection, check_selection};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// What a guide is for: the customer's selection and the platform's details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuideRequest {
    /// Selected action ids; empty means the profile's defaults.
    #[serde(default)]
    pub actions: Vec<String>,
    /// The environment; `None` means the profile's default.
    #[serde(default)]
    pub environment: Option<String>,
    /// The console variant; `None` means the profile's default.
    #[serde(default)]
    pub variant: Option<String>,
    /// The platform's callback URL, shown where the admin enters it.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The name to give the app in the provider's console.
    #[serde(default)]
    pub app_name: Option<String>,
    /// Custom scopes the connection will request instead of the computed ones.
    #[serde(default)]
    pub custom_scopes: Option<Vec<String>>,
    /// Whether the platform sends the client secret when refreshing (default: the profile's).
    #[serde(default)]
    pub refresh_sends_secret: Option<bool>,
    /// Whether the platform sends PKCE (default: unless the profile's policy is `off`).
    #[serde(default)]
    pub sends_pkce: Option<bool>,
    /// The grants the connection uses; `None` means the authorization code and refresh token
    /// grants the profile offers. Guide text for other flows (JWT bearer, device, client
    /// credentials) shows only when they are listed. Each must be one the profile offers.
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// Whether the platform stores the new refresh token after every refresh, so the provider's
    /// refresh token rotation can be turned on (default: no).
    #[serde(default)]
    pub rotates_refresh_tokens: Option<bool>,
    /// Connection parameters (`my_domain`), checked like a connection's; guide text sees them
    /// as `params`.
    #[serde(default)]
    pub parameters: indexmap::IndexMap<String, String>,
    /// The docs page the guide lives on: the guide then carries its shareable URL under it.
    /// Only absolute http(s) URLs (KW0510).
    #[serde(default)]
    pub base_url: Option<String>,
}

/// The id of the section that says where each credential field is found (profiles whose
/// connections are linked from entered credentials).
pub const CREDENTIALS_SECTION: &str = "credentials";

/// Shown where the admin enters the callback URL when the request names none.
pub const CALLBACK_PLACEHOLDER: &str = "https://YOUR-PLATFORM.example/oauth/callback";

/// Renders the guide of `profile` for `request`. Unknown actions, environments, variants or
/// scopes, and an unacceptable callback URL, are diagnostics (pointing into the request), not
/// an empty guide.
pub fn render<'a>(profile: &'a Profile, request: &GuideRequest) -> Result<Guide<'a>, Vec<Diagnostic>> {
    // One selection, one guide: actions in profile order without repeats (unknown ones after,
    // for their diagnostics), whatever order the request lists them in.
    let mut selected: Vec<String> = profile.actions.keys().filter(|id| request.actions.contains(id)).cloned().collect();
    for a in &request.actions {
        if !profile.actions.contains_key(a) && !selected.contains(a) {
            selected.push(a.clone());
        }
    }
    let selection = Selection {
        environment: request.environment.clone(),
        actions: selected.clone(),
        custom_scopes: request.custom_scopes.clone(),
        parameters: request.parameters.clone(),
        redirect_uri: request.callback_url.clone(),
        grant: None,
    };
    let (plan, mut diagnostics) = check_selection(profile, &selection);
    let variant = resolve_variant(profile, request.variant.as_deref(), &mut diagnostics);
    if let Some(uri) = &request.callback_url {
        // Shown in a Markdown code span, which a backtick would end.
        if uri.contains('`') && !keyway_diagnostics::has_errors(&diagnostics) {
            diagnostics.push(
                Diagnostic::new(Code::InvalidRedirectUri, "the callback URL contains a backtick")
                    .at_pointer("/callback_url")
                    .with_help("percent-encode it as %60"),
            );
        }
    }
    let grants = grants_of(profile, request.grants.as_deref());
    if let Some(asked) = &request.grants {
        for (i, g) in asked.iter().enumerate() {
            if !profile.auth.grants.contains(g) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::UnknownGrant,
                        format!("the profile does not offer the `{}` grant", grant_name(*g)),
                    )
                    .at_pointer(format!("/grants/{i}"))
                    .with_help(format!(
                        "the profile offers: {}",
                        profile.auth.grants.iter().map(|g| grant_name(*g)).collect::<Vec<_>>().join(", ")
                    )),
                );
            }
        }
    }
    if let Some(problem) = request.app_name.as_deref().and_then(app_name_problem) {
        diagnostics.push(
            Diagnostic::new(Code::InvalidAppName, format!("the app name {problem}"))
                .at_pointer("/app_name")
                .with_help("give a name of 1 to 255 characters on one line"),
        );
    }
    let url = match &request.base_url {
        Some(base) => match crate::url::guide_url(base, profile, request) {
            Ok(url) => Some(url),
            Err(d) => {
                diagnostics.push(*d);
                None
            }
        },
        None => None,
    };
    if keyway_diagnostics::has_errors(&diagnostics) {
        return Err(diagnostics);
    }
    let (env_id, env) = match &request.environment {
        Some(id) => profile.environments.get_key_value(id),
        None => profile.environments.iter().find(|(_, e)| e.default).or_else(|| profile.environments.first()),
    }
    .ok_or_else(|| {
        vec![Diagnostic::new(Code::UnknownEnvironment, "the profile has no environment").at_pointer("/environment")]
    })?;

    let actions: Vec<GuideAction> = profile
        .actions
        .iter()
        .filter(|(id, _)| request.actions.contains(id))
        .map(|(id, a)| GuideAction { id: Cow::Borrowed(id), name: Cow::Borrowed(&a.name) })
        .collect();
    let scopes = scope_entries(profile, &plan);
    let refresh_sends_secret = request.refresh_sends_secret.unwrap_or_else(|| profile.auth.refresh_sends_secret());
    let sends_pkce = request.sends_pkce.unwrap_or_else(|| profile.auth.sends_pkce());
    let rotates_refresh_tokens = request.rotates_refresh_tokens.unwrap_or(false);
    // Platform-supplied text lands in Markdown: escaped so it stays text.
    let app_name = markdown_text(&request.app_name.clone().unwrap_or_else(|| format!("{} integration", profile.name)));
    let callback_url = request.callback_url.clone().unwrap_or_else(|| CALLBACK_PLACEHOLDER.to_owned());

    let context = guide_context_with_params(
        profile,
        &GuideTarget {
            environment: env_id,
            variant: variant.as_deref(),
            plan: &plan,
            scopes: &scopes,
            actions: &selected,
            callback_url: &callback_url,
            app_name: &app_name,
            refresh_sends_secret,
            sends_pkce,
        },
        &request.parameters,
    );

    let facts = Facts {
        variant: variant.as_deref(),
        environment: env_id,
        actions: &selected,
        scopes: plan.values(),
        custom_scopes: plan.custom,
        refresh_sends_secret,
        sends_pkce,
        rotates_refresh_tokens,
        grants: &grants,
        profile_sends_pkce: profile.auth.sends_pkce(),
        profile_refresh_sends_secret: profile.auth.refresh_sends_secret(),
    };
    let mut renderer = Renderer { context, errors: Vec::new() };
    let mut sections = Vec::new();
    if let Some(guide) = &profile.guide {
        for (sid, section) in &guide.sections {
            if !facts.holds(section.when.as_ref()) {
                continue;
            }
            // Pointers are built only when a template fails.
            let sp = || format!("/guide/sections/{}", esc(sid));
            let mut steps = Vec::new();
            for (tid, step) in &section.steps {
                if !facts.holds(step.when.as_ref()) {
                    continue;
                }
                let tp = || format!("{}/steps/{}", sp(), esc(tid));
                let mut items = Vec::new();
                for (i, item) in step.items.iter().enumerate() {
                    let (text, kind, setting, when, pointer) = match item {
                        Item::Text(t) => (t, ItemKind::Bullet, None, None, ""),
                        Item::Detailed(d) => (&d.text, d.kind, d.setting.as_ref(), d.when.as_ref(), "/text"),
                    };
                    if facts.holds(when) {
                        items.push(GuideItem {
                            text: renderer.text(text, || format!("{}/items/{i}{pointer}", tp())),
                            kind,
                            setting: setting
                                .map(|s| GuideSetting { name: Cow::Borrowed(&s.name), state: Cow::Borrowed(&s.state) }),
                            platform_change: setting.is_some()
                                && when.is_some_and(|c| facts.follows_a_changed_choice(c)),
                        });
                    }
                }
                steps.push(GuideStep {
                    id: Cow::Borrowed(tid),
                    title: renderer.text(&step.title, || format!("{}/title", tp())),
                    text: step.text.as_ref().map(|t| renderer.text(t, || format!("{}/text", tp()))),
                    items,
                });
            }
            sections.push(GuideSection {
                id: Cow::Borrowed(sid),
                title: renderer.text(&section.title, || format!("{}/title", sp())),
                intro: section.intro.as_ref().map(|t| renderer.text(t, || format!("{}/intro", sp()))),
                steps,
            });
        }
    }
    // Profiles whose connections are linked from entered credentials end with where the end
    // user finds each one, from the fields' help and documentation links.
    if !profile.auth.fields.is_empty() {
        let steps = profile
            .auth
            .fields
            .iter()
            .map(|(name, field)| GuideStep {
                id: Cow::Borrowed(name),
                title: Cow::Owned(markdown_text(&field.label)),
                text: field.help.as_ref().map(|t| renderer.text(t, || format!("/auth/fields/{}/help", esc(name)))),
                items: field
                    .docs
                    .iter()
                    .map(|url| GuideItem {
                        text: Cow::Owned(format!("[{}'s instructions](<{url}>)", markdown_text(&profile.name))),
                        kind: ItemKind::Bullet,
                        setting: None,
                        platform_change: false,
                    })
                    .collect(),
            })
            .collect();
        sections.push(GuideSection {
            id: Cow::Borrowed(CREDENTIALS_SECTION),
            title: Cow::Owned(format!("Find your {} credentials", markdown_text(&profile.name))),
            intro: Some(Cow::Borrowed(
                "The person connecting the account enters these on the connect page; they are checked with the provider before anything is saved.",
            )),
            steps,
        });
    }
    let troubleshooting = profile
        .errors
        .iter()
        .filter(|(_, rule)| facts.holds(rule.when.as_ref()))
        .filter_map(|(id, rule)| {
            let title = rule.troubleshooting.as_ref()?;
            Some(Troubleshooting {
                title: Cow::Borrowed(title),
                error: rule.matches.error.as_deref().map(Cow::Borrowed),
                meaning: Cow::Borrowed(&rule.meaning),
                fix: renderer.text(&rule.fix, || format!("/errors/{}/fix", esc(id))),
            })
        })
        .collect();
    if !renderer.errors.is_empty() {
        return Err(renderer.errors);
    }
    Ok(Guide {
        profile: Cow::Borrowed(&profile.id),
        title: Cow::Borrowed(&profile.name),
        environment: GuideEnvironment { id: Cow::Borrowed(env_id), label: Cow::Borrowed(&env.label) },
        variant,
        actions,
        scopes,
        scope_string: plan.scope_string(),
        custom_scopes: plan.custom,
        scope_separator: Cow::Borrowed(&profile.auth.scope_separator),
        sends_pkce,
        refresh_sends_secret,
        rotates_refresh_tokens,
        sections,
        troubleshooting,
        catalogue: profile
            .actions
            .iter()
            .map(|(id, a)| CatalogueAction {
                id: Cow::Borrowed(id),
                name: Cow::Borrowed(&a.name),
                object: a.object.as_deref().map(Cow::Borrowed),
                object_label: a.object.as_deref().map(|o| Cow::Borrowed(profile.object_label(o))),
                scopes: a.scopes.iter().map(|s| Cow::Borrowed(s.as_str())).collect(),
                selected: request.actions.contains(id),
            })
            .collect(),
        url,
    })
}

fn resolve_variant(profile: &Profile, asked: Option<&str>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let variants = profile.guide.as_ref().map(|g| &g.variants)?;
    let by_alias = |v: &str| {
        variants.iter().find(|(id, x)| *id == v || x.aliases.iter().any(|a| a == v)).map(|(id, _)| id.clone())
    };
    match asked {
        Some(v) if by_alias(v).is_some() => by_alias(v),
        Some(v) => {
            let names: Vec<&str> = variants.keys().map(String::as_str).collect();
            let mut d =
                Diagnostic::new(Code::UnknownVariant, format!("`{v}` is not a guide variant of `{}`", profile.id))
                    .at_pointer("/variant");
            d = match keyway_stdx::closest(v, names.iter().copied()) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!("one of: {}", names.join(", "))),
            };
            diagnostics.push(d);
            None
        }
        None => variants.iter().find(|(_, v)| v.default).or_else(|| variants.first()).map(|(k, _)| k.clone()),
    }
}

/// What conditions are evaluated against.
struct Facts<'a> {
    variant: Option<&'a str>,
    environment: &'a str,
    actions: &'a [String],
    scopes: Vec<&'a str>,
    custom_scopes: bool,
    refresh_sends_secret: bool,
    sends_pkce: bool,
    rotates_refresh_tokens: bool,
    grants: &'a [Grant],
    /// The profile's defaults of the platform's choices (rotation's is off).
    profile_sends_pkce: bool,
    profile_refresh_sends_secret: bool,
}

/// The grants a guide is for: those asked for, else the authorization code and refresh token
/// grants the profile offers.
pub fn grants_of(profile: &Profile, asked: Option<&[Grant]>) -> Vec<Grant> {
    match asked {
        Some(list) => list.to_vec(),
        None => profile
            .auth
            .grants
            .iter()
            .copied()
            .filter(|g| matches!(g, Grant::AuthorizationCode | Grant::RefreshToken))
            .collect(),
    }
}

/// A grant's name as profiles write it (`jwt_bearer`).
pub fn grant_name(grant: Grant) -> String {
    serde_json::to_value(grant).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Facts<'_> {
    /// Whether `condition` (which holds) names a platform choice the request makes differently
    /// from the profile's default: no PKCE, no secret on refresh (when the profile sends it),
    /// rotation. What it shows is the change this platform needs.
    fn follows_a_changed_choice(&self, c: &Condition) -> bool {
        (c.sends_pkce.is_some() && self.sends_pkce != self.profile_sends_pkce)
            || (c.refresh_sends_secret.is_some() && self.refresh_sends_secret != self.profile_refresh_sends_secret)
            || (c.rotates_refresh_tokens.is_some() && self.rotates_refresh_tokens)
    }

    fn holds(&self, condition: Option<&Condition>) -> bool {
        let Some(c) = condition else { return true };
        let any = |list: &[String], pred: &dyn Fn(&str) -> bool| list.is_empty() || list.iter().any(|x| pred(x));
        any(&c.variant, &|v| self.variant == Some(v))
            && any(&c.environment, &|e| self.environment == e)
            && any(&c.actions, &|a| self.actions.iter().any(|s| s == a))
            && any(&c.scopes, &|s| self.scopes.contains(&s))
            && c.custom_scopes.is_none_or(|want| want == self.custom_scopes)
            && c.refresh_sends_secret.is_none_or(|want| want == self.refresh_sends_secret)
            && c.sends_pkce.is_none_or(|want| want == self.sends_pkce)
            && c.rotates_refresh_tokens.is_none_or(|want| want == self.rotates_refresh_tokens)
            && (c.grants.is_empty() || c.grants.iter().any(|g| self.grants.contains(g)))
            && c.not.as_deref().is_none_or(|not| !self.holds(Some(not)))
    }
}

struct Renderer {
    context: minijinja::Value,
    errors: Vec<Diagnostic>,
}

impl Renderer {
    fn text<'a>(&mut self, source: &'a str, pointer: impl FnOnce() -> String) -> Cow<'a, str> {
        match render_template(source, &self.context) {
            Ok(text) => text,
            Err(detail) => {
                self.errors.push(
                    Diagnostic::new(Code::TemplateSyntax, format!("guide template fails to render: {detail}"))
                        .at_pointer(pointer()),
                );
                Cow::Borrowed("")
            }
        }
    }
}
