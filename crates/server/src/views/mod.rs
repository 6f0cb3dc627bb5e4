//! The hosted pages (connect, done, error, guide): their view models and their rendering,
//! server-side with minijinja (HTML auto-escaping), CSS and scripts embedded in the binary. No
//! CDN, no build step.

pub mod guide;

use crate::domain::ConnectionState;
use crate::error::HubError;
use crate::hub::{ConnectPage, Finished};
use guide::{GuidePage, GuideResult};
use minijinja::{Environment, context};

/// The stylesheet, served at `/assets/keyway.css`.
pub const CSS: &str = include_str!("../../assets/keyway.css");
/// The done page's script, served at `/assets/connect.js`.
pub const SCRIPT: &str = include_str!("../../assets/connect.js");
/// The guide page's stylesheet, served at `/assets/guide.css`.
pub const GUIDE_CSS: &str = include_str!("../../assets/guide.css");
/// The guide page's script (a few lines: the form updates the guide in place), served at
/// `/assets/guide.js`. The page works as a plain form without it.
pub const GUIDE_SCRIPT: &str = include_str!("../../assets/guide.js");

/// Profile and diagnostic text is Markdown-ish: `code` spans become `<code>`, everything else
/// is escaped. Nothing else of Markdown is interpreted.
fn inline_code(text: &str) -> minijinja::Value {
    let escape = keyway_stdx::escape_html;
    let parts: Vec<&str> = text.split('`').collect();
    // With an odd number of backticks the last one pairs with nothing and stays text.
    let paired = if parts.len() % 2 == 0 { parts.len() - 1 } else { parts.len() };
    let mut out = String::with_capacity(text.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(&escape(part));
        } else if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            out.push_str(&escape(part));
        }
    }
    minijinja::Value::from_safe_string(out)
}

#[cfg(test)]
mod tests {
    use super::inline_code;

    #[test]
    fn inline_code_marks_code_spans_and_escapes_everything_else() {
        let cases = [
            ("plain <b>", "plain &lt;b&gt;"),
            ("use `https://` here", "use <code>https://</code> here"),
            ("`<script>`", "<code>&lt;script&gt;</code>"),
            ("one ` unpaired", "one ` unpaired"),
            ("`a` and `b", "<code>a</code> and `b"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(inline_code(input).to_string(), expected, "{input}");
        }
    }
}

/// The page templates.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

impl Pages {
    /// Compiles the templates (they ship with the binary: a failure is a bug, caught by tests).
    pub fn new() -> Pages {
        let mut env = Environment::new();
        env.add_filter("inline_code", inline_code);
        // Profile Markdown (a credential field's help), rendered as guides render it.
        env.add_filter("markdown", |text: &str| minijinja::Value::from_safe_string(keyway_guide::markdown_html(text)));
        for (name, source) in [
            ("layout.html", include_str!("../../templates/layout.html")),
            ("connect.html", include_str!("../../templates/connect.html")),
            ("done.html", include_str!("../../templates/done.html")),
            ("error.html", include_str!("../../templates/error.html")),
            ("guide.html", include_str!("../../templates/guide.html")),
            ("guide_result.html", include_str!("../../templates/guide_result.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a page template does not compile");
            }
        }
        Pages { env }
    }

    fn render(&self, name: &str, title: &str, script: Option<&str>, ctx: minijinja::Value) -> String {
        let page = self.env.get_template(name).and_then(|t| t.render(ctx)).and_then(|body| {
            self.env.get_template("layout.html")?.render(context! { title => title, body => body, script => script })
        });
        page.unwrap_or_else(|e| {
            tracing::error!(template = name, error = %e, "a page does not render");
            "<!doctype html><title>keyway</title><p>This page could not be shown.</p>".to_owned()
        })
    }

    /// The connect page.
    pub fn connect(&self, page: &ConnectPage) -> String {
        let title = if page.reconnect { "Reconnect your account" } else { "Connect an account" };
        self.render(
            "connect.html",
            title,
            None,
            context! { page => minijinja::Value::from(minijinja::value::Serde(page)) },
        )
    }

    /// The done page. `return_link` is the platform's return URL with the outcome added.
    pub fn done(&self, done: &Finished) -> String {
        let status = if done.state == ConnectionState::Active { "connected" } else { done.state.as_str() };
        let return_link = done.return_url.as_deref().and_then(|u| url::Url::parse(u).ok()).map(|mut url| {
            url.query_pairs_mut().append_pair("connection_id", &done.connection_id).append_pair("status", status);
            String::from(url)
        });
        let result = serde_json::json!({
            "type": "keyway:connection",
            "connection_id": done.connection_id,
            "status": status,
            "reconnected": done.reconnected,
        });
        let title = format!("{} connected", done.provider);
        self.render(
            "done.html",
            &title,
            Some("/assets/connect.js"),
            context! {
                done => minijinja::Value::from(minijinja::value::Serde(done)),
                return_link => return_link,
                result_json => result.to_string(),
                origins_json => serde_json::to_string(&done.allowed_origins).unwrap_or_default(),
            },
        )
    }

    /// The guide page: the form and the guide.
    pub fn guide(&self, page: &GuidePage) -> String {
        let ctx = context! {
            page => minijinja::Value::from(minijinja::value::Serde(page)),
            result_html => self.guide_result(&page.profile.id, &page.result),
        };
        self.standalone("guide.html", ctx)
    }

    /// The part of the guide page that changes with the selection.
    pub fn guide_result(&self, profile_id: &str, result: &GuideResult) -> String {
        let ctx = context! {
            result => minijinja::Value::from(minijinja::value::Serde(result)),
            profile_id => profile_id,
        };
        self.standalone("guide_result.html", ctx)
    }

    fn standalone(&self, name: &str, ctx: minijinja::Value) -> String {
        self.env.get_template(name).and_then(|t| t.render(ctx)).unwrap_or_else(|e| {
            tracing::error!(template = name, error = %e, "a page does not render");
            "<!doctype html><title>keyway</title><p>This page could not be shown.</p>".to_owned()
        })
    }

    /// An error page.
    pub fn error(&self, heading: &str, error: &HubError) -> String {
        let shown = serde_json::json!({"code": error.code().as_str(), "message": error.detail(), "fix": error.fix()});
        self.render(
            "error.html",
            heading,
            None,
            context! { heading => heading, error => minijinja::Value::from(minijinja::value::Serde(&shown)) },
        )
    }
}
