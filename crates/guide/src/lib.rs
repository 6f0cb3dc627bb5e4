//! keyway's setup-guide generator.
//!
//! A profile's guide is written once, with templated text and conditions. Given a
//! [`GuideRequest`] (the actions a customer selected, an environment, the platform's callback
//! URL, a console variant), [`render`] produces the exact guide for that selection: only the
//! scopes those actions need (from [`keyway_validate::plan_scopes`], the one scope resolution),
//! only the steps whose conditions hold, every template rendered with strict undefined and a
//! fuel limit. The result is a [`Guide`]: serialize it for a docs front end (JSON, with its own
//! schema in `schemas/guide.schema.json`), or write it as [`Guide::to_markdown`] or
//! [`Guide::to_html`]. [`guide_url`] and [`parse_guide_url`] encode a selection in a stable,
//! shareable URL.

mod output;
mod render;
mod text;
mod url;

pub use output::{
    CHANGE_LABEL, CatalogueAction, Guide, GuideAction, GuideEnvironment, GuideItem, GuideScope, GuideSection,
    GuideSetting, GuideStep, Troubleshooting, markdown_html,
};
pub use render::{CALLBACK_PLACEHOLDER, CREDENTIALS_SECTION, GuideRequest, grant_name, grants_of, render};
pub use text::{MAX_APP_NAME_CHARS, markdown_text};
pub use url::{MAX_URL_LEN, guide_url, parse_guide_query, parse_guide_url};

/// The guide JSON Schema, exactly as committed in `schemas/guide.schema.json`.
pub fn guide_schema_json() -> String {
    let schema = schemars::schema_for!(Guide<'static>);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
