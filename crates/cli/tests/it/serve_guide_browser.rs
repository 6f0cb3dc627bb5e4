//! `keyway serve`'s guide page (`GET /guide/{profile}`) in a real browser: headless Chromium,
//! driven by `tests/browser/guide.mjs` (playwright-core), ticks Publish Knowledge Article and
//! sees the Knowledge prerequisite appear and the scopes panel update in place, copies the
//! Dynamic Guide URL and gets the same guide from it in a fresh page, switches to sandbox
//! (test.salesforce.com), turns PKCE off (the "uncheck Require PKCE" instruction, listed and
//! marked as the one change from the defaults), ticks an object group with its box, sees a
//! refused My Domain host's code rendered, finds the platform's choices (and the hub's own
//! callback URL) above the action rows at both widths, and uses the page with JavaScript off as
//! a plain form. Screenshots: `target/screenshots/guide-page.png`
//! (1280 px) and `guide-page-phone.png` (390 px).
//!
//! Needs node, playwright-core in `target/node` and Debian's chromium (`scripts/test-deps.sh`);
//! without them this test fails, it does not skip.

use crate::process;

use process::{Scratch, Server, root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long a wait for the server may take before the test fails.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_keyway"))
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root().join("target"))
}

#[test]
fn the_guide_page_updates_in_place_shares_its_url_and_works_without_javascript() {
    let hint = "run scripts/test-deps.sh to install what the browser test needs";
    let node = PathBuf::from(std::env::var_os("KEYWAY_NODE").unwrap_or_else(|| "node".into()));
    let node_dir = std::env::var_os("KEYWAY_NODE_DIR").map_or_else(|| root().join("target/node"), PathBuf::from);
    assert!(node_dir.join("node_modules/playwright-core/package.json").is_file(), "no playwright-core: {hint}");
    let chromium = PathBuf::from(std::env::var_os("KEYWAY_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    assert!(chromium.is_file(), "no Chromium at {}: {hint}", chromium.display());

    let scratch = Scratch::new("serve-guide-browser");
    let server = Server::start(
        &root().join("profiles"),
        &scratch.sqlite(),
        &["--dev", "--refresh-every", "0"],
        &scratch.path().join("serve.log"),
    );
    let page_url = format!("{}/guide/salesforce-service-cloud", server.url);
    let out = target_dir().join("screenshots");
    let output = Command::new(&node)
        .arg(root().join("crates/cli/tests/browser/guide.mjs"))
        .args(["--url", &page_url, "--timeout-ms", "20000", "--out"])
        .arg(&out)
        .arg("--chromium")
        .arg(&chromium)
        .env("KEYWAY_NODE_DIR", &node_dir)
        .stdin(Stdio::null())
        .output()
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed:\n{stderr}\n{stdout}\nserver log:\n{}", server.log_text());
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let seen: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}"));

    assert_eq!(seen["table_heading"], "Select Actions to adjust the guide");
    let columns: Vec<&str> = seen["columns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(columns[1..], ["ACTION", "SCOPE(S)"], "{columns:?}");
    let groups = seen["groups"].to_string();
    assert!(groups.contains("Case Comment") && groups.contains("\"Knowledge\""), "grouped by label: {groups}");
    assert!(!groups.contains("Knowledge__kav") && !groups.contains("CaseComment"), "not by API name: {groups}");
    assert_eq!(seen["callback"], format!("{}/v1/connect/oauth2/salesforce-service-cloud/callback", server.url));
    assert_eq!(seen["phone_platform_first"], true);
    let changes = seen["changes"].as_str().unwrap_or_default();
    assert!(changes.contains("Uncheck Require Proof Key for Code Exchange"), "{changes}");
    let refused = seen["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("without https://") && !refused.contains('`'), "{refused}");
    assert_eq!(seen["knowledge_step"], "Enable Lightning Knowledge and assign a Knowledge User licence");
    assert!(seen["scopes_after"].as_str().is_some_and(|s| s.contains("api")), "{seen}");
    let copied = seen["copied"].as_str().unwrap_or_default();
    assert!(copied.starts_with(&page_url) && copied.contains("actions=publish_knowledge_article"), "{copied}");
    assert_eq!(seen["same_guide"], true);
    assert!(seen["sign_in"].as_str().is_some_and(|s| s.contains("https://test.salesforce.com")), "{seen}");
    assert!(seen["pkce"].as_str().is_some_and(|s| s.contains("Uncheck Require Proof Key for Code Exchange")), "{seen}");
    assert_eq!(seen["phone_overflow"], 0, "the page fits a 390 px phone");
    assert!(seen["plain_url"].as_str().is_some_and(|u| u.contains("actions=publish_knowledge_article")), "{seen}");
    for shot in ["guide-page.png", "guide-page-phone.png"] {
        let len = std::fs::metadata(out.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{shot} is {len} bytes");
    }
    // The server logged the fragment requests the live page made (a line may follow its answer).
    keyway_testkit::wait_until_blocking("a fragment request in the server's log", LIMIT, || {
        server.log_text().contains("route=\"/guide/{profile}/fragment\"")
    });
}
