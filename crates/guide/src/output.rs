//! The rendered guide, and its Markdown and HTML forms.

use keyway_manifest::model::ItemKind;
use pulldown_cmark::{Options, Parser, html};
use schemars::JsonSchema;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

/// A rendered setup guide: what a docs front end shows for one selection.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Guide<'a> {
    /// The profile's id.
    pub profile: Cow<'a, str>,
    /// The provider's display name.
    pub title: Cow<'a, str>,
    /// The environment the guide is for.
    pub environment: GuideEnvironment<'a>,
    /// The console variant (`external_client_app`), when the profile has variants.
    pub variant: Option<String>,
    /// The selected actions, in profile order.
    pub actions: Vec<GuideAction<'a>>,
    /// The scopes to select in the console and request, with the actions that need each.
    pub scopes: Vec<GuideScope>,
    /// The `scope` parameter value.
    pub scope_string: String,
    /// Whether the scopes are the connection's custom scopes.
    pub custom_scopes: bool,
    /// What separates scopes in `scope_string` (the profile's `auth.scope_separator`).
    pub scope_separator: Cow<'a, str>,
    /// Whether the platform sends a PKCE challenge, as the guide assumes.
    pub sends_pkce: bool,
    /// Whether the platform sends the client secret when refreshing, as the guide assumes.
    pub refresh_sends_secret: bool,
    /// Whether the platform stores every rotated refresh token, as the guide assumes.
    pub rotates_refresh_tokens: bool,
    /// The sections whose conditions hold, in order. Text is Markdown.
    pub sections: Vec<GuideSection<'a>>,
    /// What provider errors mean and how to fix them.
    pub troubleshooting: Vec<Troubleshooting<'a>>,
    /// Every action the profile offers, with its scopes and whether it is selected: what a
    /// docs site needs to build its own picker.
    pub catalogue: Vec<CatalogueAction<'a>>,
    /// The shareable URL of this guide, when a base URL was given (always http or https).
    pub url: Option<String>,
}

/// An action of the profile's catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CatalogueAction<'a> {
    /// Its id: `create_case`.
    pub id: Cow<'a, str>,
    /// Its display name: "Create Case".
    pub name: Cow<'a, str>,
    /// The provider object it works on, by its API name (`Knowledge__kav`), for grouping.
    pub object: Option<Cow<'a, str>>,
    /// The object's label (`Knowledge`): the profile's `objects` entry, else its name.
    pub object_label: Option<Cow<'a, str>>,
    /// The scopes it needs.
    pub scopes: Vec<Cow<'a, str>>,
    /// Whether the guide's selection includes it.
    pub selected: bool,
}

/// The environment a guide is for.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideEnvironment<'a> {
    /// Its id: `production`.
    pub id: Cow<'a, str>,
    /// Its display name.
    pub label: Cow<'a, str>,
}

/// A selected action.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideAction<'a> {
    /// Its id: `create_case`.
    pub id: Cow<'a, str>,
    /// Its display name: "Create Case".
    pub name: Cow<'a, str>,
}

/// A scope to select: the console's entry and the actions that need it.
pub use keyway_validate::templates::ScopeEntry as GuideScope;

/// A section of a rendered guide.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideSection<'a> {
    /// Its id in the profile.
    pub id: Cow<'a, str>,
    /// Heading (Markdown inline).
    pub title: Cow<'a, str>,
    /// Paragraph under the heading (Markdown).
    pub intro: Option<Cow<'a, str>>,
    /// Steps whose conditions hold.
    pub steps: Vec<GuideStep<'a>>,
}

/// A step of a rendered guide.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideStep<'a> {
    /// Its id in the profile.
    pub id: Cow<'a, str>,
    /// What to do (Markdown inline).
    pub title: Cow<'a, str>,
    /// The instruction (Markdown).
    pub text: Option<Cow<'a, str>>,
    /// Bullets whose conditions hold.
    pub items: Vec<GuideItem<'a>>,
}

/// A bullet of a rendered step.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideItem<'a> {
    /// The text (Markdown).
    pub text: Cow<'a, str>,
    /// How to present it.
    pub kind: ItemKind,
    /// The console setting it asks for, for checklists.
    pub setting: Option<GuideSetting<'a>>,
    /// Whether the setting's state follows a platform choice that differs from the profile's
    /// default (no PKCE, no client secret on refresh, refresh token rotation): the change this
    /// platform needs, shown apart from the settings kept at their defaults.
    pub platform_change: bool,
}

/// A console setting and the state to put it in.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuideSetting<'a> {
    /// The setting's name as the console shows it.
    pub name: Cow<'a, str>,
    /// `checked`, `unchecked` or a value.
    pub state: Cow<'a, str>,
}

/// A troubleshooting entry, from the profile's error map.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Troubleshooting<'a> {
    /// The heading.
    pub title: Cow<'a, str>,
    /// The provider error code it covers, if any.
    pub error: Option<Cow<'a, str>>,
    /// The cause.
    pub meaning: Cow<'a, str>,
    /// What to do (Markdown).
    pub fix: Cow<'a, str>,
}

/// What marks a setting the platform's choices change from the default, in every format.
pub const CHANGE_LABEL: &str = "Change from the default";

fn kind_label(kind: ItemKind) -> Option<&'static str> {
    match kind {
        ItemKind::Bullet => None,
        ItemKind::Note => Some("Note"),
        ItemKind::Tip => Some("Tip"),
        ItemKind::Warning => Some("Warning"),
        ItemKind::Important => Some("Important"),
    }
}

/// Indents every line after the first by `indent` spaces, so multi-line text stays inside its
/// list item.
fn indent_rest(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.trim_end().lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

impl Guide<'_> {
    /// The guide as one Markdown document.
    pub fn to_markdown(&self) -> String {
        let mut md = String::with_capacity(8 * 1024);
        let _ = writeln!(md, "# {} setup guide\n", self.title);
        let _ = writeln!(md, "Environment: **{}**", self.environment.label);
        if !self.actions.is_empty() {
            let names: Vec<&str> = self.actions.iter().map(|a| a.name.as_ref()).collect();
            let _ = writeln!(md, "\nSelected actions: {}", names.join(", "));
        }
        // A profile without scopes (an API key's) has none to request.
        if !self.scope_string.is_empty() {
            let _ = writeln!(md, "\nScopes to request: `{}`", self.scope_string);
        }
        if let Some(url) = &self.url {
            let _ = writeln!(md, "\nThis guide: <{url}>");
        }
        for section in &self.sections {
            let _ = writeln!(md, "\n## {}", section.title);
            if let Some(intro) = &section.intro {
                let _ = writeln!(md, "\n{}", intro.trim_end());
            }
            for (n, step) in section.steps.iter().enumerate() {
                let _ = writeln!(md, "\n{}. **{}**", n + 1, step.title);
                if let Some(text) = &step.text {
                    let _ = writeln!(md, "\n   {}", indent_rest(text, 3));
                }
                if !step.items.is_empty() {
                    md.push('\n');
                }
                for item in &step.items {
                    let mut prefix = kind_label(item.kind).map(|k| format!("**{k}:** ")).unwrap_or_default();
                    if item.platform_change {
                        prefix.push_str(&format!("**{CHANGE_LABEL}:** "));
                    }
                    let _ = writeln!(md, "   - {prefix}{}", indent_rest(&item.text, 5));
                }
            }
        }
        if !self.troubleshooting.is_empty() {
            let _ = writeln!(md, "\n## Troubleshooting");
            for t in &self.troubleshooting {
                let _ = writeln!(md, "\n### {}\n", t.title);
                if let Some(error) = &t.error {
                    let _ = writeln!(md, "Error: `{error}`\n");
                }
                let _ = writeln!(md, "{}\n\n{}", t.meaning.trim_end(), t.fix.trim_end());
            }
        }
        md
    }

    /// The guide as HTML: a standalone page (no external assets) or, with `standalone` false, a
    /// fragment to embed (a `<article class="keyway-guide">`).
    pub fn to_html(&self, standalone: bool) -> String {
        let mut body = String::with_capacity(16 * 1024);
        let _ = write!(body, "<article class=\"keyway-guide\" data-profile=\"{}\">", escape(&self.profile));
        let _ = write!(body, "<h1>{} setup guide</h1>", escape(&self.title));
        let _ = write!(body, "<p class=\"meta\">Environment: <strong>{}</strong>", escape(&self.environment.label));
        if !self.actions.is_empty() {
            let names: Vec<String> = self.actions.iter().map(|a| escape(&a.name)).collect();
            let _ = write!(body, "<br>Selected actions: {}", names.join(", "));
        }
        if !self.scope_string.is_empty() {
            let _ = write!(body, "<br>Scopes to request: <code>{}</code>", escape(&self.scope_string));
        }
        if let Some(url) = &self.url {
            let _ = write!(body, "<br>This guide: <a href=\"{0}\">{0}</a>", escape(url));
        }
        body.push_str("</p>");
        for section in &self.sections {
            let _ = write!(body, "<section id=\"{}\"><h2>{}</h2>", escape(&section.id), inline(&section.title));
            if let Some(intro) = &section.intro {
                body.push_str(&block(intro));
            }
            body.push_str("<ol class=\"steps\">");
            for step in &section.steps {
                let _ = write!(
                    body,
                    "<li id=\"{}-{}\"><h3>{}</h3>",
                    escape(&section.id),
                    escape(&step.id),
                    inline(&step.title)
                );
                if let Some(text) = &step.text {
                    body.push_str(&block(text));
                }
                if !step.items.is_empty() {
                    body.push_str("<ul>");
                    for item in &step.items {
                        let mut class = format!("{:?}", item.kind).to_lowercase();
                        let mut label = kind_label(item.kind)
                            .map(|k| format!("<span class=\"label\">{k}</span> "))
                            .unwrap_or_default();
                        if item.platform_change {
                            class.push_str(" change");
                            label.push_str(&format!("<span class=\"change-label\">{CHANGE_LABEL}</span> "));
                        }
                        // A console setting gets a tag naming the state to set (a label, not a
                        // control: it must not look clickable), and its state as data for checklists.
                        let (marker, state) = match item.setting.as_ref().map(|s| s.state.as_ref()) {
                            Some("checked") => ("<span class=\"state on\">Checked</span> ", " data-state=\"checked\""),
                            Some("unchecked") => {
                                ("<span class=\"state off\">Unchecked</span> ", " data-state=\"unchecked\"")
                            }
                            _ => ("", ""),
                        };
                        let _ = write!(body, "<li class=\"{class}\"{state}>{label}{marker}{}</li>", inline(&item.text));
                    }
                    body.push_str("</ul>");
                }
                body.push_str("</li>");
            }
            body.push_str("</ol></section>");
        }
        if !self.troubleshooting.is_empty() {
            body.push_str("<section id=\"troubleshooting\"><h2>Troubleshooting</h2>");
            for t in &self.troubleshooting {
                let _ = write!(body, "<h3>{}</h3>", escape(&t.title));
                if let Some(error) = &t.error {
                    let _ = write!(body, "<p>Error: <code>{}</code></p>", escape(error));
                }
                let _ = write!(body, "<p>{}</p>{}", escape(t.meaning.trim_end()), block(&t.fix));
            }
            body.push_str("</section>");
        }
        body.push_str("</article>");
        if !standalone {
            return body;
        }
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} setup guide</title>\n<style>{}</style>\n</head>\n<body>\n{}\n</body>\n</html>\n",
            escape(&self.title),
            STYLE,
            body
        )
    }
}

const STYLE: &str = "body{font:16px/1.55 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;background:#f6f7f9;margin:0}\
.keyway-guide{max-width:52rem;margin:2rem auto;padding:2rem 2.5rem;background:#fff;border:1px solid #e2e5ea;border-radius:10px}\
h1{font-size:1.8rem;margin:0 0 .5rem}h2{margin-top:2.2rem;padding-top:1rem;border-top:1px solid #e2e5ea;font-size:1.35rem}\
h3{font-size:1.05rem;margin:.2rem 0}.meta{color:#4a5263}ol.steps>li{margin:1rem 0}ul{padding-left:1.3rem}li{margin:.3rem 0}\
code{background:#eef1f5;padding:0 .2rem;border-radius:4px;font-size:.9em;word-break:break-word}\
.label{display:inline-block;font-size:.72em;font-weight:700;letter-spacing:.06em;text-transform:uppercase;padding:.05rem .4rem;margin-right:.3rem;border-radius:3px;color:#fff;background:#5b7bd5;vertical-align:.1em}\
li.tip .label{background:#2f9e6b}li.warning .label{background:#d9822b}li.important .label{background:#c23b3b}\
.state{display:inline-block;font-size:.72em;font-weight:600;padding:0 .35rem;border-radius:3px;border:1px solid #9aa5b5;color:#4a5263;vertical-align:.1em}.state.on{border-color:#2f9e6b;color:#1f7a50}\
li.note,li.tip,li.warning,li.important{list-style:none;margin-left:-1.3rem;padding:.45rem .7rem;border-left:4px solid;border-radius:4px}\
li.note{border-color:#5b7bd5;background:#eef2fc}li.tip{border-color:#2f9e6b;background:#ecf8f2}\
li.warning{border-color:#d9822b;background:#fdf4ea}li.important{border-color:#c23b3b;background:#fbeeee}a{color:#2456c7}\
li.change{list-style:none;margin-left:-1.3rem;padding:.45rem .7rem;border-left:4px solid #6b3fc4;border-radius:4px;background:#f3eefc}\
.change-label{display:inline-block;font-size:.72em;font-weight:700;letter-spacing:.06em;text-transform:uppercase;padding:.05rem .4rem;margin-right:.3rem;border-radius:3px;color:#fff;background:#6b3fc4;vertical-align:.1em}";

/// Escapes text for HTML (the one escaper, `keyway_stdx`'s).
pub(crate) use keyway_stdx::escape_html as escape;

/// Profile Markdown to HTML, as guides render it: raw HTML escaped, links only to http(s),
/// `mailto:` and fragments, no images. For every page that shows profile text.
pub fn markdown_html(markdown: &str) -> String {
    block(markdown)
}

/// Markdown to HTML. Raw HTML in profile text is escaped, never passed through: a profile is
/// data, not markup.
fn block(markdown: &str) -> String {
    use pulldown_cmark::{Event, Tag, TagEnd};
    // Links keep their text but lose their target unless it is http(s), mailto or a fragment;
    // images become their alt text: a guide page loads nothing and runs nothing.
    let mut dropped_links = Vec::new();
    let events = Parser::new_ext(markdown, Options::empty()).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let safe =
                ["https://", "http://", "mailto:", "#"].iter().any(|p| dest_url.to_ascii_lowercase().starts_with(p));
            dropped_links.push(!safe);
            safe.then_some(event)
        }
        Event::End(TagEnd::Link) => (!dropped_links.pop().unwrap_or(false)).then_some(event),
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Markdown to HTML without the wrapping paragraph, for titles and bullets.
fn inline(markdown: &str) -> String {
    let html = block(markdown);
    let trimmed = html.trim_end();
    match trimmed.strip_prefix("<p>").and_then(|s| s.strip_suffix("</p>")) {
        Some(inner) if !inner.contains("<p>") => inner.to_owned(),
        _ => html,
    }
}
