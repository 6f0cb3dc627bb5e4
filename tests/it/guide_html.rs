//! The HTML forms of rendered guides, parsed with an HTML5 parser (html5ever, through
//! `scraper`): the standalone page and the fragment of the all-34-actions Service Cloud guide
//! and of the connected-app CRM guide parse without a single parse error, have the structure a
//! docs page needs (one h1, a heading per section and step, lang and charset), run nothing and
//! load nothing from elsewhere; and HTML in a profile's text comes out as text.

use keyway_guide::{Guide, GuideRequest, render};
use keyway_tests::bundled_profile;
use scraper::{ElementRef, Html, Selector};
use std::collections::BTreeSet;

fn sel(selector: &str) -> Selector {
    Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e:?}"))
}

/// The two guides under test, by name.
fn guides() -> Vec<(&'static str, Guide<'static>)> {
    let sc = bundled_profile("salesforce-service-cloud");
    let all = GuideRequest {
        actions: sc.actions.keys().cloned().collect(),
        callback_url: Some("https://app.example.com/oauth/callback".to_owned()),
        ..GuideRequest::default()
    };
    assert_eq!(all.actions.len(), 34);
    let classic = GuideRequest {
        variant: Some("connected_app".to_owned()),
        environment: Some("sandbox".to_owned()),
        callback_url: Some("https://app.example.com/oauth/callback".to_owned()),
        ..GuideRequest::default()
    };
    let mut service_cloud = render(sc, &all).expect("the Service Cloud guide renders");
    service_cloud.url = Some("https://docs.example.com/guides/salesforce?profile=salesforce-service-cloud".to_owned());
    vec![
        ("service cloud, all 34 actions", service_cloud),
        ("CRM, connected app", render(bundled_profile("salesforce"), &classic).expect("the CRM guide renders")),
    ]
}

/// Parses a standalone page and requires that html5ever reported no parse error.
fn parse_page(name: &str, html: &str) -> Html {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "{name}: parse errors {:?}", doc.errors);
    assert_eq!(format!("{:?}", doc.quirks_mode), "NoQuirks", "{name}: the doctype puts it in standards mode");
    doc
}

/// Parses a fragment (in a `<body>` context) and requires no parse error.
fn parse_fragment(name: &str, html: &str) -> Html {
    let doc = Html::parse_fragment(html);
    assert!(doc.errors.is_empty(), "{name}: parse errors {:?}", doc.errors);
    doc
}

fn first_element<'a>(el: &ElementRef<'a>) -> Option<ElementRef<'a>> {
    el.children().find_map(ElementRef::wrap)
}

/// What both forms must satisfy: the guide's structure, nothing that runs, nothing loaded from
/// elsewhere, unique ids.
fn check_article(name: &str, doc: &Html, guide: &Guide) {
    let articles: Vec<ElementRef> = doc.select(&sel("article.keyway-guide")).collect();
    assert_eq!(articles.len(), 1, "{name}: one article");
    assert_eq!(articles[0].value().attr("data-profile"), Some(guide.profile.as_ref()));

    let h1: Vec<String> = doc.select(&sel("h1")).map(|h| h.text().collect()).collect();
    assert_eq!(h1, [format!("{} setup guide", guide.title)], "{name}: exactly one h1");

    let sections: Vec<ElementRef> = doc.select(&sel("article > section")).collect();
    let expected = guide.sections.len() + usize::from(!guide.troubleshooting.is_empty());
    assert_eq!(sections.len(), expected, "{name}: one <section> per guide section, and troubleshooting");
    for section in &sections {
        let first = first_element(section).map(|e| e.value().name().to_owned());
        assert_eq!(first.as_deref(), Some("h2"), "{name}: section #{:?} opens with an h2", section.value().id());
    }
    for step in doc.select(&sel("ol.steps > li")) {
        let first = first_element(&step).map(|e| e.value().name().to_owned());
        assert_eq!(first.as_deref(), Some("h3"), "{name}: step #{:?} opens with an h3", step.value().id());
    }
    let steps: usize = guide.sections.iter().map(|s| s.steps.len()).sum();
    assert_eq!(doc.select(&sel("ol.steps > li")).count(), steps, "{name}: one <li> per step");
    let h2: Vec<String> = doc.select(&sel("h2")).map(|h| h.text().collect::<String>()).collect();
    for section in &guide.sections {
        assert!(h2.iter().any(|h| h.trim() == section.title.replace(['*', '`'], "")), "{name}: h2 {}", section.title);
    }

    // Nothing that runs.
    assert_eq!(doc.select(&sel("script, iframe, object, embed, form, base, noscript")).count(), 0, "{name}");
    // Nothing loaded from elsewhere: no element but <a> names a resource, and links are plain
    // web links or fragments.
    let mut ids = BTreeSet::new();
    for el in doc.root_element().descendants().filter_map(ElementRef::wrap) {
        let tag = el.value().name();
        for (attr, value) in el.value().attrs() {
            assert!(!attr.starts_with("on"), "{name}: <{tag} {attr}> runs script");
            let names_a_resource = matches!(
                attr,
                "src" | "srcset" | "href" | "poster" | "data" | "action" | "formaction" | "background" | "xlink:href"
            );
            if tag == "a" && attr == "href" {
                assert!(
                    value.starts_with("https://") || value.starts_with("http://") || value.starts_with('#'),
                    "{name}: <a href={value:?}>"
                );
            } else {
                assert!(!names_a_resource, "{name}: <{tag} {attr}={value:?}> refers to a resource");
            }
            if attr == "style" {
                assert!(!value.contains("url("), "{name}: inline style loads {value}");
            }
        }
        if let Some(id) = el.value().id() {
            assert!(ids.insert(id.to_owned()), "{name}: id {id} is used twice");
        }
        assert!(
            !matches!(tag, "img" | "link" | "video" | "audio" | "source" | "track" | "picture" | "svg"),
            "{name}: <{tag}>"
        );
    }
    for style in doc.select(&sel("style")) {
        let css: String = style.text().collect();
        assert!(!css.contains("url(") && !css.contains("@import"), "{name}: the style loads something");
    }
}

#[test]
fn the_standalone_pages_are_well_formed_self_contained_html() {
    for (name, guide) in guides() {
        let html = guide.to_html(true);
        let doc = parse_page(name, &html);
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        check_article(name, &doc, &guide);

        let root = doc.root_element();
        assert_eq!(root.value().name(), "html");
        assert_eq!(root.value().attr("lang"), Some("en"), "{name}: lang");
        let charset: Vec<ElementRef> = doc.select(&sel("head > meta[charset]")).collect();
        assert_eq!(charset.len(), 1, "{name}: one charset meta");
        assert_eq!(charset[0].value().attr("charset").map(str::to_ascii_lowercase).as_deref(), Some("utf-8"));
        assert!(
            html.find("<meta charset").is_some_and(|at| at < 1024),
            "{name}: the charset comes in the first 1024 bytes"
        );
        assert_eq!(doc.select(&sel("head > meta[name=viewport]")).count(), 1, "{name}: viewport");
        let title: Vec<String> = doc.select(&sel("head > title")).map(|t| t.text().collect()).collect();
        assert_eq!(title, [format!("{} setup guide", guide.title)], "{name}: title");
        assert_eq!(doc.select(&sel("head > style")).count(), 1, "{name}: the style is inline");
        assert_eq!(doc.select(&sel("body > article")).count(), 1, "{name}: the article is the body");
        // The page is the fragment in a document.
        assert!(html.contains(&guide.to_html(false)), "{name}: the page embeds the fragment as is");
    }
}

#[test]
fn the_fragments_are_well_formed_and_embeddable() {
    for (name, guide) in guides() {
        let html = guide.to_html(false);
        for tag in ["<!doctype", "<html", "<head", "<body", "<meta", "<title", "<style", "<link"] {
            assert!(!html.to_ascii_lowercase().contains(tag), "{name}: the fragment has {tag}");
        }
        assert!(html.starts_with("<article class=\"keyway-guide\"") && html.ends_with("</article>"), "{name}");
        let doc = parse_fragment(name, &html);
        // html5ever puts a fragment under a synthetic <html>; the fragment itself is one
        // <article> and nothing else.
        let top: Vec<&str> =
            doc.root_element().children().filter_map(ElementRef::wrap).map(|e| e.value().name()).collect();
        assert_eq!(top, ["article"], "{name}");
        assert_eq!(doc.select(&sel("head, body, title, meta")).count(), 0, "{name}");
        check_article(name, &doc, &guide);
    }
}

/// A small profile whose text tries to inject markup everywhere a profile writes text.
const HOSTILE: &str = r#"id: hostile
name: Evil <script>alert("name")</script> Corp
environments:
  production:
    label: Prod <b>bold</b>
    default: true
    vars: {host: login.example.com}
auth:
  grants: [authorization_code, refresh_token]
  endpoints:
    authorize: "https://{{ env.host }}/authorize"
    token: "https://{{ env.host }}/token"
  pkce: required
  default_scopes: [read, offline]
scopes:
  read: {label: Read}
  offline: {label: Offline, grants_refresh: true}
actions:
  list_things: {name: "List <i>Things</i>", method: GET, path: /things, scopes: [read]}
errors:
  bad:
    match: {error: "<script>err</script>"}
    kind: fix_configuration
    meaning: Meaning <script>alert(2)</script>
    fix: Fix <script>alert(3)</script> for {{ app_name }}
    troubleshooting: Trouble <script>alert(4)</script>
guide:
  sections:
    create_app:
      title: Create <script>alert(5)</script> the app
      intro: |-
        <script>alert(1)</script>

        <img src="https://evil.example/x.png" onerror="alert(6)">
      steps:
        sign_in:
          title: Sign in <iframe src="https://evil.example/"></iframe>
          text: |-
            Paste <script>alert(1)</script> here, as {{ app_name }}.

            <div onclick="alert(7)">block html</div>
          items:
            - Click <a href="https://evil.example/" onclick="alert(8)">here</a>.
            - text: A <style>body{background:url(https://evil.example/)}</style> note
              kind: note
"#;

#[test]
fn html_in_profile_text_is_escaped() {
    let loaded = keyway_manifest::load_str("hostile.yaml", HOSTILE);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let profile = &loaded.profiles.first().expect("the profile loads").profile;
    let request = GuideRequest {
        actions: vec!["list_things".to_owned()],
        app_name: Some("Acme <script>alert(9)</script>".to_owned()),
        callback_url: Some("https://app.example.com/oauth/callback".to_owned()),
        ..GuideRequest::default()
    };
    let guide = render(profile, &request).expect("renders");
    for standalone in [true, false] {
        let html = guide.to_html(standalone);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("Acme &lt;script&gt;alert(9)&lt;/script&gt;"), "the request's app name: {html}");
        assert!(html.contains("Evil &lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt; Corp setup guide"), "{html}");
        for n in 2..=9 {
            assert!(!html.contains(&format!("<script>alert({n})")), "alert({n}) is live: {html}");
        }
        let name = if standalone { "hostile page" } else { "hostile fragment" };
        let doc = if standalone { parse_page(name, &html) } else { parse_fragment(name, &html) };
        check_article(name, &doc, &guide);
        assert_eq!(
            doc.select(&sel("b, i, div, iframe, img, article style, a")).count(),
            0,
            "{name}: no markup from the profile"
        );
        let text: String = doc.root_element().text().collect();
        assert!(text.contains("<script>alert(1)</script>"), "{name}: the markup is shown as text");
        assert!(text.contains(r#"<img src="https://evil.example/x.png" onerror="alert(6)">"#), "{name}");
    }
}

/// Markdown links in profile text become `<a>` elements; a `javascript:` one would run when
/// clicked.
#[test]
fn javascript_links_in_profile_text_are_not_live() {
    let yaml = HOSTILE.replace(
        "Paste <script>alert(1)</script> here",
        "Click [here](javascript:alert(10)) or <javascript:alert(11)>, then paste <script>alert(1)</script> here",
    );
    let loaded = keyway_manifest::load_str("hostile.yaml", &yaml);
    let profile = &loaded.profiles.first().expect("the profile loads").profile;
    let guide = render(profile, &GuideRequest::default()).expect("renders");
    let doc = Html::parse_document(&guide.to_html(true));
    for a in doc.select(&sel("a")) {
        let href = a.value().attr("href").unwrap_or_default();
        assert!(href.starts_with("https://") || href.starts_with("http://") || href.starts_with('#'), "{href}");
    }
}
