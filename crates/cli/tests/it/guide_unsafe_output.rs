//! Issue 20, item 5: unsafe output. Two classes, each run through `keyway guide` as a user runs
//! it, at several sizes (up to far past every limit), each case with its expected outcome (a
//! code, or a guide) and an insta snapshot of what keyway printed:
//!
//! - links: a base URL (`--url`) or a guide URL (`--from-url`) that is not an absolute
//!   http(s) URL is refused with KW0510 before anything is rendered, in every format;
//! - supplied text: the app name (and the callback URL, shown in a code span) lands in
//!   Markdown, HTML and JSON as text, never as markup or a link; a name that cannot be shown
//!   on one line, or is too long, is refused with KW0509.
//!
//! Whatever the case, no output holds a link other than http(s), mailto or a fragment, and
//! the HTML holds no element the input supplied.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn keyway(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .current_dir(root())
        .env_remove("KEYWAY_PROFILES")
        .env("NO_COLOR", "1")
        .output()
        .expect("keyway runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The codes in keyway's diagnostics (`error[KW0510]`).
fn codes(stderr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"error\[(KW\d{4})\]").expect("pattern");
    re.captures_iter(stderr).map(|c| c[1].to_owned()).collect()
}

/// Long lines are cut for the snapshot: the point is what was refused and why.
fn cut(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.chars().count() > 200 {
                format!("{}… ({} chars)", l.chars().take(200).collect::<String>(), l.chars().count())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every link target in HTML output (`href`, `src`, `action`) is http(s), mailto or a
/// fragment, and no element outside keyway's own vocabulary appears.
fn assert_html_safe(html: &str, case: &str) {
    let attr = regex::Regex::new(r#"(?i)\b(href|src|action|formaction)\s*=\s*"([^"]*)""#).expect("pattern");
    for c in attr.captures_iter(html) {
        let target = c[2].to_ascii_lowercase();
        assert!(
            ["https://", "http://", "mailto:", "#"].iter().any(|p| target.starts_with(p)),
            "{case}: unsafe link target {target}"
        );
    }
    let tag = regex::Regex::new(r"<([a-zA-Z][a-zA-Z0-9]*)").expect("pattern");
    const ALLOWED: &[&str] = &[
        "html", "head", "meta", "title", "style", "body", "article", "h1", "h2", "h3", "p", "br", "strong", "em",
        "code", "a", "section", "ol", "ul", "li", "span", "pre",
    ];
    for c in tag.captures_iter(html) {
        assert!(ALLOWED.contains(&c[1].to_ascii_lowercase().as_str()), "{case}: element <{}> in the HTML", &c[1]);
    }
}

/// Markdown and JSON carry no link but http(s), mailto and fragments: inline links, autolinks
/// and reference definitions are all read by pulldown-cmark's parser from the Markdown (JSON's
/// text fields are Markdown).
fn assert_markdown_safe(markdown: &str, case: &str) {
    use pulldown_cmark::{Event, Parser, Tag};
    for event in Parser::new(markdown) {
        if let Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) = event {
            let target = dest_url.to_ascii_lowercase();
            assert!(
                ["https://", "http://", "mailto:", "#"].iter().any(|p| target.starts_with(p)),
                "{case}: unsafe Markdown link {target}"
            );
        }
    }
}

fn guide(args: &[&str], extra: &[String]) -> Vec<String> {
    let mut all: Vec<String> = ["guide", "salesforce-service-cloud", "--actions", "create_case"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    all.extend(extra.iter().cloned());
    all
}

// ---------------------------------------------------------------------------------------------
// Links

struct LinkCase {
    name: &'static str,
    url: String,
    /// `--from-url` instead of `--url`.
    from_url: bool,
    /// The code expected, or `None` for a guide whose link is the URL given (canonical).
    code: Option<&'static str>,
}

fn link_cases() -> Vec<LinkCase> {
    let case = |name, url: &str, from_url, code| LinkCase { name, url: url.to_owned(), from_url, code };
    vec![
        case("javascript", "javascript:alert(document.cookie)//", false, Some("KW0510")),
        case("javascript_mixed_case", "JaVaScRiPt:alert(1)", false, Some("KW0510")),
        case("javascript_leading_space", " \tjavascript:alert(1)", false, Some("KW0510")),
        case("data", "data:text/html,<script>alert(1)</script>", false, Some("KW0510")),
        case("vbscript", "vbscript:msgbox(1)", false, Some("KW0510")),
        case("file", "file:///etc/passwd", false, Some("KW0510")),
        case("relative", "//evil.example/guide", false, Some("KW0510")),
        case("no_host", "https://", false, Some("KW0510")),
        case("from_url_javascript", "javascript:x?profile=salesforce", true, Some("KW0510")),
        case("from_url_data", "data:,?profile=salesforce&actions=list_accounts", true, Some("KW0510")),
        // Several sizes: 8 KiB is the limit; just under it is a guide, far past it is refused
        // by its length before it is parsed.
        case("https_ok", "https://docs.example.com/guides/salesforce?lang=en", false, None),
        LinkCase {
            name: "https_just_under_the_limit",
            url: format!("https://docs.example.com/{}", "a".repeat(7_000)),
            from_url: false,
            code: None,
        },
        LinkCase {
            name: "https_past_the_limit",
            url: format!("https://docs.example.com/{}", "a".repeat(9_000)),
            from_url: false,
            code: Some("KW0510"),
        },
        LinkCase {
            name: "javascript_far_past_the_limit",
            url: format!("javascript:{}", "a".repeat(120_000)),
            from_url: false,
            code: Some("KW0510"),
        },
        LinkCase {
            name: "from_url_far_past_the_limit",
            url: format!("https://d.example/g?profile=salesforce&app={}", "x".repeat(120_000)),
            from_url: true,
            code: Some("KW0510"),
        },
    ]
}

#[test]
fn non_http_links_are_refused_in_every_format() {
    for case in link_cases() {
        for format in ["md", "html", "json"] {
            let args = if case.from_url {
                vec![
                    "guide".to_owned(),
                    "--from-url".to_owned(),
                    case.url.clone(),
                    "--format".to_owned(),
                    format.to_owned(),
                ]
            } else {
                guide(&["--format", format, "--url"], std::slice::from_ref(&case.url))
            };
            let out = keyway(&args);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let label = format!("{} ({format})", case.name);
            match case.code {
                Some(code) => {
                    assert_ne!(out.status.code(), Some(0), "{label}: accepted");
                    assert_eq!(codes(&stderr), [code], "{label}: {stderr}");
                    assert!(stdout.is_empty(), "{label}: printed a guide");
                    if format == "md" {
                        insta::assert_snapshot!(format!("link_{}", case.name), cut(&stderr));
                    }
                }
                None => {
                    assert_eq!(out.status.code(), Some(0), "{label}: {stderr}");
                    match format {
                        "html" => assert_html_safe(&stdout, &label),
                        "md" => {
                            assert_markdown_safe(&stdout, &label);
                            let link = stdout.lines().find(|l| l.starts_with("This guide: ")).unwrap_or_default();
                            insta::assert_snapshot!(format!("link_{}", case.name), cut(link));
                        }
                        _ => {
                            let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
                            let url = json["url"].as_str().unwrap_or_default();
                            assert!(url.starts_with("https://docs.example.com/"), "{label}: {url}");
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Supplied text

struct TextCase {
    name: &'static str,
    app_name: String,
    code: Option<&'static str>,
}

fn text_cases() -> Vec<TextCase> {
    let case = |name, app_name: &str, code| TextCase { name, app_name: app_name.to_owned(), code };
    vec![
        case("script_element", "<script>alert(1)</script>", None),
        case("markdown_link", "[Open](javascript:alert(1))", None),
        case("autolink", "<javascript:alert(1)>", None),
        case("image", "![x](https://evil.example/pixel.png)", None),
        case("emphasis_and_code", "**Acme** _Co_ `tick` ~~gone~~", None),
        case("entity", "Acme &lt;b&gt; &amp; Co", None),
        case("backslashes", "Acme \\ \\* \\", None),
        case("heading_marker", "# Acme", None),
        case("line_break", "Acme\n# Injected heading", Some("KW0509")),
        case("escape_sequence", "Acme \u{1b}[31mred", Some("KW0509")),
        case("empty", "   ", Some("KW0509")),
        // Sizes: 255 characters (the limit) of pure syntax is shown; 256 and far more are not.
        TextCase { name: "syntax_at_the_limit", app_name: "*[<".repeat(85), code: None },
        TextCase { name: "one_past_the_limit", app_name: "a".repeat(256), code: Some("KW0509") },
        TextCase { name: "far_past_the_limit", app_name: "<b>".repeat(40_000), code: Some("KW0509") },
    ]
}

/// The app name's bullet in Markdown, its `<li>` in HTML, its text in JSON: the three places
/// the name lands, for the snapshot.
fn landing(format: &str, output: &str) -> String {
    match format {
        "json" => {
            let json: serde_json::Value = serde_json::from_str(output).expect("JSON");
            json["sections"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["steps"].as_array().into_iter().flatten())
                .flat_map(|t| t["items"].as_array().into_iter().flatten())
                .filter_map(|i| i["text"].as_str())
                .find(|t| t.contains("App Name"))
                .map(|t| serde_json::to_string(t).unwrap_or_default())
                .unwrap_or_default()
        }
        _ => {
            output.lines().flat_map(|l| l.split("<li")).find(|l| l.contains("App Name")).unwrap_or_default().to_owned()
        }
    }
}

#[test]
fn supplied_text_stays_text_in_every_format() {
    for case in text_cases() {
        let mut outputs = Vec::new();
        for format in ["md", "html", "json"] {
            let args = guide(&["--format", format, "--app-name"], std::slice::from_ref(&case.app_name));
            let out = keyway(&args);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let label = format!("{} ({format})", case.name);
            match case.code {
                Some(code) => {
                    assert_ne!(out.status.code(), Some(0), "{label}: accepted");
                    assert_eq!(codes(&stderr), [code], "{label}: {stderr}");
                    if format == "md" {
                        outputs.push(cut(&stderr));
                    }
                }
                None => {
                    assert_eq!(out.status.code(), Some(0), "{label}: {stderr}");
                    match format {
                        "html" => {
                            assert_html_safe(&stdout, &label);
                            // The name reads as typed once the browser decodes the entities.
                            let shown = landing("html", &stdout);
                            let decoded = shown
                                .replace("&lt;", "<")
                                .replace("&gt;", ">")
                                .replace("&quot;", "\"")
                                .replace("&#39;", "'")
                                .replace("&amp;", "&");
                            assert!(decoded.contains(&case.app_name), "{label}: {shown}");
                        }
                        "md" => assert_markdown_safe(&stdout, &label),
                        _ => {
                            let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
                            for section in json["sections"].as_array().into_iter().flatten() {
                                for step in section["steps"].as_array().into_iter().flatten() {
                                    for item in step["items"].as_array().into_iter().flatten() {
                                        assert_markdown_safe(item["text"].as_str().unwrap_or_default(), &label);
                                    }
                                }
                            }
                        }
                    }
                    outputs.push(format!("{format}: {}", cut(&landing(format, &stdout))));
                }
            }
        }
        insta::assert_snapshot!(format!("app_name_{}", case.name), outputs.join("\n"));
    }
}

/// The callback URL is shown in a Markdown code span, which a backtick would end: refused
/// (KW0507) rather than shown wrongly; other URL syntax is shown exactly.
#[test]
fn a_callback_url_that_would_break_its_code_span_is_refused() {
    let out = keyway(&guide(&["--callback-url", "https://app.example.com/cb?x=`<b>`"], &[]));
    assert_eq!(codes(&text(&out.stderr)), ["KW0507"], "{}", text(&out.stderr));
    let out = keyway(&guide(&["--callback-url", "https://app.example.com/cb?x=<b>*y*", "--format", "html"], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_html_safe(&text(&out.stdout), "callback with markup");
    assert!(text(&out.stdout).contains("<code>https://app.example.com/cb?x=&lt;b&gt;*y*</code>"));
}
