//! The guide page's model: a profile's setup guide for the selection a query carries, with
//! what the page's form shows (the action table, the environment, the console variant, the
//! platform's choices). The guide itself is `keyway_guide`'s: parsed from the query with
//! `parse_guide_query`, rendered with `render`, shared with `guide_url`. Nothing is decided
//! here that the guide crate decides.

use crate::error::{HubError, ProblemCode};
use keyway_diagnostics::{Code, Diagnostic};
use keyway_guide::{Guide, GuideRequest, MAX_URL_LEN, guide_url, parse_guide_query, render};
use keyway_manifest::model::{Grant, Profile};
use serde::Serialize;

/// How the page shows the scope string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Separator {
    /// The profile's own separator (what the `scope` parameter carries).
    Profile,
    /// A comma, as many platforms' scope fields take them.
    Comma,
    /// A line break, one scope a line.
    Newline,
}

impl Separator {
    const ALL: [(Separator, &'static str, &'static str); 3] = [
        (Separator::Profile, "profile", "As the profile sends them"),
        (Separator::Comma, "comma", "Comma-separated"),
        (Separator::Newline, "newline", "One a line"),
    ];

    fn parse(value: &str) -> Option<Separator> {
        Separator::ALL.iter().find(|(_, id, _)| *id == value).map(|(s, _, _)| *s)
    }
}

/// The guide page: the form's state, and the guide (or why there is none).
#[derive(Debug, Serialize)]
pub struct GuidePage {
    /// The profile's id and name.
    pub profile: PageProfile,
    /// The actions, grouped by the object they work on, in profile order.
    pub groups: Vec<ActionGroup>,
    /// The environments, with the selected one marked.
    pub environments: Vec<Choice>,
    /// The console variants, with the selected one marked (empty without variants).
    pub variants: Vec<Choice>,
    /// PKCE choices (`on`, `off`), the selected one marked.
    pub pkce: Vec<Choice>,
    /// Refresh-secret choices (`on`, `off`), the selected one marked.
    pub refresh_secret: Vec<Choice>,
    /// The profile's grants beyond the authorization code and refresh token grants, ticked when
    /// the connection uses them (`value`: the grant's name).
    pub flows: Vec<Choice>,
    /// The grants every connection uses (sent with the flows, as hidden fields).
    pub default_grants: Vec<String>,
    /// Refresh-token rotation choices (`on`: the platform stores every new refresh token).
    pub rotation: Vec<Choice>,
    /// The profile's default of each platform choice (`pkce`, `refresh_secret`, `rotation`:
    /// `on` or `off`), so the page can mark a choice that departs from it.
    pub defaults: PlatformDefaults,
    /// Scope separators, the selected one marked.
    pub separators: Vec<Choice>,
    /// The callback URL as entered.
    pub callback: String,
    /// The app name as entered.
    pub app: String,
    /// Custom scopes as entered (comma-separated).
    pub scopes: String,
    /// The connection parameters, with their values.
    pub parameters: Vec<PageParam>,
    /// The guide, or the errors that stop it.
    pub result: GuideResult,
}

/// The profile's defaults of the platform's choices, as the form's values (`on`, `off`).
#[derive(Debug, Serialize)]
pub struct PlatformDefaults {
    /// Whether a connection sends PKCE unless it says otherwise.
    pub pkce: &'static str,
    /// Whether a refresh sends the client secret unless the connection says otherwise.
    pub refresh_secret: &'static str,
    /// Whether the platform stores every rotated refresh token: `off` unless it says so.
    pub rotation: &'static str,
}

/// A profile's id and display name.
#[derive(Debug, Serialize)]
pub struct PageProfile {
    /// `salesforce`.
    pub id: String,
    /// `Salesforce CRM`.
    pub name: String,
}

/// The actions on one object.
#[derive(Debug, Serialize)]
pub struct ActionGroup {
    /// The object's API name (`Knowledge__kav`), or `Other`.
    pub object: String,
    /// Its label, the group's heading (`Knowledge`: the profile's `objects` entry, else the
    /// name).
    pub label: String,
    /// Its actions.
    pub actions: Vec<PageAction>,
}

/// A row of the action table.
#[derive(Debug, Serialize)]
pub struct PageAction {
    /// `create_case`.
    pub id: String,
    /// `Create Case`.
    pub name: String,
    /// The scopes it needs.
    pub scopes: Vec<String>,
    /// Ticked.
    pub selected: bool,
}

/// An option of a select or radio group.
#[derive(Debug, Serialize)]
pub struct Choice {
    /// The value sent.
    pub value: String,
    /// What the page shows.
    pub label: String,
    /// Chosen.
    pub selected: bool,
}

/// A connection parameter's field.
#[derive(Debug, Serialize)]
pub struct PageParam {
    /// Its name (`my_domain`); the field is `param.NAME`.
    pub name: String,
    /// Its label.
    pub label: String,
    /// An example value, as the placeholder.
    pub example: String,
    /// The value entered.
    pub value: String,
}

/// The part of the page that changes as the form changes (the fragment endpoint's answer).
#[derive(Debug, Serialize)]
pub struct GuideResult {
    /// The page's canonical URL for this guide (the Dynamic Guide URL).
    pub url: Option<String>,
    /// The path and query of the fragment and export endpoints for this guide.
    pub query: String,
    /// The scopes, joined by the chosen separator.
    pub scopes_shown: String,
    /// The scope values, one per entry.
    pub scope_count: usize,
    /// Each scope and the selected actions that need it (`value`: the scope, `label`: the
    /// actions, empty for a scope the connection needs for itself, such as refresh).
    pub scope_reasons: Vec<Choice>,
    /// The table of contents: section ids and titles.
    pub toc: Vec<Choice>,
    /// The settings the platform's choices change from their defaults (`value`: the step's
    /// anchor, `label`: what to do), shown first.
    pub changes: Vec<Choice>,
    /// The guide as an HTML fragment (profile text escaped by `keyway_guide`).
    pub html: String,
    /// Why there is no guide: code, message, where, help.
    pub errors: Vec<PageDiagnostic>,
}

/// A refusal of the selection, as the page lists it.
#[derive(Debug, Serialize)]
pub struct PageDiagnostic {
    /// `KW0501`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: Option<String>,
}

impl From<&Diagnostic> for PageDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        PageDiagnostic { code: d.code.as_str(), message: d.message.clone(), help: d.help.clone() }
    }
}

/// Reads the page's query: a guide URL's (`actions=a,b`) or the form's (`actions=a&actions=b`,
/// empty fields, `sep`). The form's shape is folded into the guide URL's, which
/// `parse_guide_query` then reads, so both name one guide.
/// A query that names no callback URL gets `callback`, the URL the hub itself receives the
/// profile's callbacks at.
fn request_of(profile: &Profile, callback: &str, query: &str) -> Result<(GuideRequest, Separator), Box<Diagnostic>> {
    if query.len() > MAX_URL_LEN {
        return Err(Box::new(
            Diagnostic::new(
                Code::InvalidGuideUrl,
                format!("the query is {} bytes long; at most {MAX_URL_LEN} are accepted", query.len()),
            )
            .at_pointer("/url"),
        ));
    }
    let mut actions: Vec<String> = Vec::new();
    let mut grants: Vec<String> = Vec::new();
    let mut separator = Separator::Profile;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "actions" => actions.extend(value.split(',').filter(|a| !a.is_empty()).map(str::to_owned)),
            "grants" => grants.extend(value.split(',').filter(|a| !a.is_empty()).map(str::to_owned)),
            "sep" => separator = Separator::parse(&value).unwrap_or(Separator::Profile),
            "profile" if value == profile.id => {}
            "profile" => {
                return Err(Box::new(
                    Diagnostic::new(
                        Code::InvalidGuideUrl,
                        format!("this guide URL is for another profile than `{}`", profile.id),
                    )
                    .at_pointer("/url/profile"),
                ));
            }
            // Empty form fields mean "not given".
            "callback" | "app" | "scopes" | "env" | "variant" if value.trim().is_empty() => {}
            k if k.starts_with("param.") && value.trim().is_empty() => {}
            _ => {
                rest.append_pair(&key, &value);
            }
        }
    }
    rest.append_pair("profile", &profile.id);
    if !actions.is_empty() {
        rest.append_pair("actions", &actions.join(","));
    }
    if !grants.is_empty() {
        // The form sends the authorization code grant as a hidden field, so a form with no
        // other flow ticked still names one.
        rest.append_pair("grants", &grants.join(","));
    }
    let (_, mut request) = parse_guide_query(&rest.finish())?;
    if request.callback_url.is_none() {
        request.callback_url = Some(callback.to_owned());
    }
    Ok((request, separator))
}

/// The guide page for `query` under `page_base` (`https://connect.example.com/guide/salesforce`),
/// with `callback` (the hub's callback URL for the profile) where the query names none.
pub fn guide_page(profile: &Profile, page_base: &str, callback: &str, query: &str) -> GuidePage {
    let parsed = request_of(profile, callback, query);
    let (request, separator) = match &parsed {
        Ok((r, s)) => (r.clone(), *s),
        Err(_) => (GuideRequest::default(), Separator::Profile),
    };
    let result = match parsed {
        Err(d) => GuideResult::refused(vec![PageDiagnostic::from(d.as_ref())]),
        Ok(_) => match render(profile, &request) {
            Ok(guide) => GuideResult::of(profile, &guide, &request, page_base, separator),
            Err(diagnostics) => GuideResult::refused(diagnostics.iter().map(PageDiagnostic::from).collect()),
        },
    };
    form(profile, &request, separator, result)
}

/// Only the part that changes: what the fragment endpoint answers.
pub fn guide_result(profile: &Profile, page_base: &str, callback: &str, query: &str) -> GuideResult {
    match request_of(profile, callback, query) {
        Err(d) => GuideResult::refused(vec![PageDiagnostic::from(d.as_ref())]),
        Ok((request, separator)) => match render(profile, &request) {
            Ok(guide) => GuideResult::of(profile, &guide, &request, page_base, separator),
            Err(diagnostics) => GuideResult::refused(diagnostics.iter().map(PageDiagnostic::from).collect()),
        },
    }
}

/// The guide as a self-contained HTML file (`keyway guide --format html`), or why not.
/// The export's refusal names the selection's first problem, as a page shows one.
pub fn guide_export(profile: &Profile, page_base: &str, callback: &str, query: &str) -> Result<String, HubError> {
    let refused = |d: &Diagnostic| {
        let error = HubError::new(ProblemCode::GuideRequestInvalid, format!("{}: {}", d.code, d.message));
        match &d.help {
            Some(help) => error.with_fix(help.clone()),
            None => error,
        }
    };
    let (mut request, _) = request_of(profile, callback, query).map_err(|d| refused(&d))?;
    request.base_url = Some(page_base.to_owned());
    render(profile, &request).map(|guide| guide.to_html(true)).map_err(|diagnostics| match diagnostics.first() {
        Some(d) => refused(d),
        None => HubError::new(ProblemCode::GuideRequestInvalid, "the selection is refused"),
    })
}

impl GuideResult {
    fn refused(errors: Vec<PageDiagnostic>) -> GuideResult {
        GuideResult {
            url: None,
            query: String::new(),
            scopes_shown: String::new(),
            scope_count: 0,
            scope_reasons: Vec::new(),
            toc: Vec::new(),
            changes: Vec::new(),
            html: String::new(),
            errors,
        }
    }

    fn of(
        profile: &Profile,
        guide: &Guide<'_>,
        request: &GuideRequest,
        page_base: &str,
        separator: Separator,
    ) -> GuideResult {
        let url = guide_url(page_base, profile, request).ok();
        let query = url
            .as_deref()
            .and_then(|u| u.split_once('?'))
            .map(|(_, q)| q.split('#').next().unwrap_or(q).to_owned())
            .unwrap_or_default();
        let values: Vec<&str> =
            guide.scope_string.split(guide.scope_separator.as_ref()).filter(|s| !s.is_empty()).collect();
        let scopes_shown = match separator {
            Separator::Profile => guide.scope_string.clone(),
            Separator::Comma => values.join(","),
            Separator::Newline => values.join("\n"),
        };
        let toc = guide
            .sections
            .iter()
            .map(|s| Choice { value: s.id.to_string(), label: plain(&s.title), selected: false })
            .chain((!guide.troubleshooting.is_empty()).then(|| Choice {
                value: "troubleshooting".to_owned(),
                label: "Troubleshooting".to_owned(),
                selected: false,
            }))
            .collect();
        GuideResult {
            url,
            query,
            scopes_shown,
            scope_count: values.len(),
            scope_reasons: guide
                .scopes
                .iter()
                .map(|s| Choice {
                    value: s.value.clone(),
                    label: if s.for_refresh { "refresh".to_owned() } else { s.actions.join(", ") },
                    selected: false,
                })
                .collect(),
            toc,
            changes: guide
                .sections
                .iter()
                .flat_map(|section| section.steps.iter().map(move |step| (section, step)))
                .flat_map(|(section, step)| step.items.iter().map(move |item| (section, step, item)))
                .filter(|(_, _, item)| item.platform_change)
                .filter_map(|(section, step, item)| {
                    let setting = item.setting.as_ref()?;
                    let label = match setting.state.as_ref() {
                        "checked" => format!("Check {}", setting.name),
                        "unchecked" => format!("Uncheck {}", setting.name),
                        state => format!("Set {} to {state}", setting.name),
                    };
                    Some(Choice { value: format!("{}-{}", section.id, step.id), label, selected: false })
                })
                .collect(),
            html: guide.to_html(false),
            errors: Vec::new(),
        }
    }
}

/// A Markdown inline title as plain text (the table of contents).
fn plain(markdown: &str) -> String {
    markdown.replace("**", "").replace('`', "")
}

fn form(profile: &Profile, request: &GuideRequest, separator: Separator, result: GuideResult) -> GuidePage {
    let mut groups: Vec<ActionGroup> = Vec::new();
    for (id, action) in &profile.actions {
        let object = action.object.as_deref().unwrap_or("Other");
        let row = PageAction {
            id: id.clone(),
            name: action.name.clone(),
            scopes: action.scopes.clone(),
            selected: request.actions.contains(id),
        };
        match groups.iter_mut().find(|g| g.object == object) {
            Some(group) => group.actions.push(row),
            None => groups.push(ActionGroup {
                object: object.to_owned(),
                label: profile.object_label(object).to_owned(),
                actions: vec![row],
            }),
        }
    }
    let default_env = profile.environments.iter().find(|(_, e)| e.default).map(|(id, _)| id.as_str());
    let env = request.environment.as_deref().or(default_env);
    let environments = profile
        .environments
        .iter()
        .map(|(id, e)| Choice { value: id.clone(), label: e.label.clone(), selected: Some(id.as_str()) == env })
        .collect();
    let variants = profile
        .guide
        .as_ref()
        .map(|g| {
            let asked = request.variant.as_deref();
            let chosen = asked
                .and_then(|a| g.variants.iter().find(|(id, v)| *id == a || v.aliases.iter().any(|x| x == a)))
                .or_else(|| g.variants.iter().find(|(_, v)| v.default))
                .map(|(id, _)| id.as_str());
            g.variants
                .iter()
                .map(|(id, v)| Choice {
                    value: id.clone(),
                    label: v.label.clone(),
                    selected: Some(id.as_str()) == chosen,
                })
                .collect()
        })
        .unwrap_or_default();
    // The profile's default is named, so a choice that departs from it is seen as one.
    let on_off = |value: bool, default: bool, on: &str, off: &str| {
        let label = |text: &str, is_default: bool| {
            if is_default { format!("{text} (default)") } else { text.to_owned() }
        };
        vec![
            Choice { value: "on".to_owned(), label: label(on, default), selected: value },
            Choice { value: "off".to_owned(), label: label(off, !default), selected: !value },
        ]
    };
    let sends_pkce = request.sends_pkce.unwrap_or_else(|| profile.auth.sends_pkce());
    let sends_secret = request.refresh_sends_secret.unwrap_or_else(|| profile.auth.refresh_sends_secret());
    GuidePage {
        profile: PageProfile { id: profile.id.clone(), name: profile.name.clone() },
        groups,
        environments,
        variants,
        pkce: on_off(sends_pkce, profile.auth.sends_pkce(), "Sends PKCE (S256)", "Sends no PKCE"),
        refresh_secret: on_off(
            sends_secret,
            profile.auth.refresh_sends_secret(),
            "Sends the client secret",
            "Refreshes without the secret",
        ),
        flows: {
            let used = keyway_guide::grants_of(profile, request.grants.as_deref());
            profile
                .auth
                .grants
                .iter()
                .filter(|g| !matches!(g, Grant::AuthorizationCode | Grant::RefreshToken))
                .map(|g| {
                    let value = keyway_guide::grant_name(*g);
                    let label = match g {
                        Grant::ClientCredentials => "Client credentials",
                        Grant::JwtBearer => "JWT bearer",
                        Grant::DeviceCode => "Device flow",
                        _ => "",
                    };
                    Choice { value, label: label.to_owned(), selected: used.contains(g) }
                })
                .collect()
        },
        default_grants: keyway_guide::grants_of(profile, None).into_iter().map(keyway_guide::grant_name).collect(),
        defaults: {
            let on_off = |on: bool| if on { "on" } else { "off" };
            PlatformDefaults {
                pkce: on_off(profile.auth.sends_pkce()),
                refresh_secret: on_off(profile.auth.refresh_sends_secret()),
                rotation: "off",
            }
        },
        rotation: on_off(
            request.rotates_refresh_tokens.unwrap_or(false),
            false,
            "Stores each new refresh token (rotation)",
            "Keeps one refresh token",
        ),
        separators: Separator::ALL
            .iter()
            .map(|(s, id, label)| Choice {
                value: (*id).to_owned(),
                label: (*label).to_owned(),
                selected: *s == separator,
            })
            .collect(),
        callback: request.callback_url.clone().unwrap_or_default(),
        app: request.app_name.clone().unwrap_or_default(),
        scopes: request.custom_scopes.as_ref().map(|s| s.join(",")).unwrap_or_default(),
        parameters: profile
            .parameters
            .iter()
            .map(|(name, p)| PageParam {
                name: name.clone(),
                label: p.label.clone(),
                example: p.example.clone().unwrap_or_default(),
                value: request.parameters.get(name).cloned().unwrap_or_default(),
            })
            .collect(),
        result,
    }
}
