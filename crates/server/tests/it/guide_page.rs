//! The guide page (`GET /guide/{profile}`), its fragment and its export, over loopback HTTP
//! without an API key: what each answers, and that nothing a query supplies becomes markup or a
//! link. The browser test (crates/cli/tests/serve_guide_browser.rs) drives the page itself.

use crate::support::Harness;
use reqwest::StatusCode;

async fn get(hub: &Harness, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    // No API key: the guide is public.
    let response = reqwest::Client::new().get(format!("{}{path}", hub.base)).send().await.expect("answer");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guide_page_its_fragment_and_its_export() {
    let hub = Harness::start().await;
    let profile = "salesforce-local";

    let (status, headers, page) = get(&hub, &format!("/guide/{profile}?actions=list_accounts&env=production")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Select Actions to adjust the guide") && page.contains("Dynamic Guide URL"), "{page}");
    assert!(page.contains("id=\"action-list_accounts\" checked"), "the selection is ticked");
    assert!(page.contains("<script src=\"/assets/guide.js\"></script>"));
    let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("connect-src 'self'") && csp.contains("script-src 'self'"), "{csp}");

    // The fragment: the guide for the form's shape (repeated actions, empty fields).
    let (status, _, fragment) =
        get(&hub, &format!("/guide/{profile}/fragment?actions=list_accounts&actions=get_account&callback=&sep=comma"))
            .await;
    assert_eq!(status, StatusCode::OK, "{fragment}");
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(fragment.contains("actions=list_accounts%2Cget_account"), "the canonical URL: {fragment}");
    assert!(fragment.contains(">api,refresh_token,offline_access</pre>"), "the separator: {fragment}");

    // Refusals are shown with their codes; nothing supplied becomes markup or a link.
    let (status, _, refused) = get(&hub, &format!("/guide/{profile}/fragment?actions=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("KW0501"), "{refused}");
    let (status, _, refused) = get(&hub, &format!("/guide/{profile}/fragment?callback=javascript%3Aalert(1)")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("KW0507") && !refused.contains("href=\"javascript"), "{refused}");
    let (status, _, shown) =
        get(&hub, &format!("/guide/{profile}/fragment?app=%3Cscript%3Ealert(1)%3C%2Fscript%3E%5Bx%5D(javascript%3Ay)"))
            .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(!shown.contains("<script") && !shown.contains("href=\"javascript"), "{shown}");
    assert!(
        shown.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || shown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{shown}"
    );
    let long = "a".repeat(9_000);
    let (status, _, refused) = get(&hub, &format!("/guide/{profile}/fragment?app={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("KW0510"), "an overlong query is refused by its length");
    let (status, _, refused) = get(&hub, &format!("/guide/{profile}?profile=other")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("KW0510"), "another profile's guide URL");

    // An unknown profile, and the export.
    let (status, _, missing) = get(&hub, "/guide/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("guide_profile_unknown"), "{missing}");
    let (status, headers, file) = get(&hub, &format!("/guide/{profile}/export?actions=list_accounts")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(file.starts_with("<!DOCTYPE html>") && file.contains("<style>") && !file.contains("<script"));
    let disposition = headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(disposition, format!("attachment; filename=\"{profile}-guide.html\""));
    let (status, _, refused) = get(&hub, &format!("/guide/{profile}/export?actions=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("guide_request_invalid") && refused.contains("KW0501"), "{refused}");
}

/// Issue 26, section 5, item 6: the platform's choices come before the action rows, groups are
/// headed by the object's label, the change a platform needs is listed first and stands out,
/// a refused field's Markdown code is rendered (and escaped), and the page names the hub's own
/// callback URL.
#[tokio::test(flavor = "multi_thread")]
async fn the_guide_page_puts_the_platform_first_and_names_the_hubs_callback() {
    let hub = Harness::start().await;
    let profile = "salesforce-service-cloud";
    let callback = format!("{}/v1/connect/oauth2/{profile}/callback", hub.base);

    let (status, _, page) = get(&hub, &format!("/guide/{profile}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // The platform's choices first, then the 34 rows.
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("no {needle} in {page}"));
    assert!(at("id=\"pkce\"") < at("table class=\"actions\""));
    assert!(at("id=\"callback\"") < at("table class=\"actions\""));
    assert!(at("id=\"rotation\"") < at("table class=\"actions\""));
    assert!(at("id=\"refresh_secret\"") < at("table class=\"actions\""));
    // The hub's callback, prefilled and in the guide.
    assert!(page.contains(&format!("id=\"callback\" name=\"callback\" value=\"{}\"", escaped(&callback))), "{page}");
    assert!(page.contains(&format!("In <strong>Callback URL</strong>, enter <code>{callback}</code>")), "{page}");
    assert!(!page.contains(keyway_guide::CALLBACK_PLACEHOLDER));
    // Groups headed by label, each with its select-all box (not a form field).
    assert!(page.contains("<label for=\"group-Knowledge__kav\">Knowledge</label>"), "{page}");
    assert!(page.contains("<label for=\"group-CaseComment\">Case Comment</label>"), "{page}");
    assert!(!page.contains(">Knowledge__kav<"), "no group is headed by its API name");
    assert!(page.contains("class=\"select-group\" id=\"group-Case\""));
    assert!(!page.contains("name=\"select-group\""));
    // The defaults are named; nothing differs from them, so no change is listed.
    assert!(page.contains(">Sends PKCE (S256) (default)</option>"), "{page}");
    assert!(page.contains(">Keeps one refresh token (default)</option>"), "{page}");
    assert!(!page.contains("Change from the defaults") && !page.contains("li class=\"bullet change\""));
    assert!(page.contains("<select id=\"pkce\" name=\"pkce\" data-default=\"on\">"), "{page}");
    assert!(!page.contains("class=\"changed\""));
    // The page for such a platform marks the choice that departs from the default.
    let (_, _, page) = get(&hub, &format!("/guide/{profile}?pkce=off")).await;
    assert!(page.contains("<select id=\"pkce\" name=\"pkce\" data-default=\"on\" class=\"changed\">"), "{page}");
    assert_eq!(page.matches("class=\"changed\"").count(), 1);

    // A platform that sends no PKCE: the one change is listed first and stands out.
    let (status, _, fragment) = get(&hub, &format!("/guide/{profile}/fragment?pkce=off")).await;
    assert_eq!(status, StatusCode::OK, "{fragment}");
    let pkce = "Require Proof Key for Code Exchange (PKCE) Extension for Supported Authorization Flows";
    assert!(fragment.contains(&format!("<li><a href=\"#security-pkce\">Uncheck {pkce}</a></li>")), "{fragment}");
    assert!(fragment.find("Change from the defaults") < fragment.find("Dynamic Guide URL"));
    let marked: Vec<&str> =
        fragment.match_indices("li class=\"bullet change\"").map(|(i, _)| &fragment[i..i + 300]).collect();
    assert_eq!(marked.len(), 1, "exactly one change: {marked:#?}");
    assert!(marked[0].contains("Change from the default</span> <span class=\"state off\">Unchecked</span> Uncheck"));
    // The settings kept at their defaults are not marked.
    assert!(fragment.contains("<li class=\"bullet\" data-state=\"checked\">"));

    // A refused field: its code spans rendered, the rest escaped, no raw backticks.
    let (status, _, refused) =
        get(&hub, &format!("/guide/{profile}/fragment?param.my_domain=https%3A%2F%2Facme.my.salesforce.com")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let errors = &refused[refused.find("<ul>").unwrap_or(0)..refused.find("</ul>").unwrap_or(refused.len())];
    assert!(errors.contains("<code>https://</code>"), "{errors}");
    assert!(errors.contains("<code>acme.my.salesforce.com</code>"), "{errors}");
    assert!(!errors.contains('`'), "{errors}");
}

/// As the page's templates escape text (minijinja's HTML escaping).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('/', "&#x2f;")
}
