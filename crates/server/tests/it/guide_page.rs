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
