//! The guide fidelity test's platform renders, from the command line (issue 18): each platform
//! of the seeds (StackOne's CRM and Service Cloud guides, Apideck, Cyclr) is rendered by
//! `keyway guide` with the flags that state what that platform does, and
//!
//! - the output is exactly the library's render of the same request (the one the fidelity
//!   test in `tests/it/guide_fidelity.rs` checks against the seeds),
//! - each console setting is in the state that platform's seed documents,
//! - the guide's URL (`--url`) read back with `--from-url` renders the same guide.

use keyway_guide::{Guide, GuideRequest};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn keyway(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .current_dir(root())
        .env_remove("KEYWAY_PROFILES")
        .env("NO_COLOR", "1")
        .output()
        .expect("keyway runs");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Platform {
    name: &'static str,
    profile: &'static str,
    /// The flags that say what the platform does.
    flags: &'static [&'static str],
    /// Settings and the states the platform's seed asks for.
    settings: &'static [(&'static str, &'static str)],
    /// Scope values the platform requests.
    scopes: &'static str,
}

const PKCE: &str = "Require Proof Key for Code Exchange (PKCE) Extension for Supported Authorization Flows";
const REFRESH_SECRET: &str = "Require Secret for Refresh Token Flow";

const PLATFORMS: &[Platform] = &[
    // Seed 000: "keep Require secret for ... Refresh Token Flow checked", "uncheck Require Proof
    // Key for Code Exchange (PKCE)".
    Platform {
        name: "stackone-crm",
        profile: "salesforce",
        flags: &["--no-pkce", "--callback-url", "https://api.stackone.com/connect/oauth2/salesforce/callback"],
        settings: &[(REFRESH_SECRET, "checked"), (PKCE, "unchecked"), ("Distribution State", "Local")],
        scopes: "api refresh_token offline_access",
    },
    // Seed 001: the same settings, every Service Cloud action.
    Platform {
        name: "stackone-service-cloud",
        profile: "salesforce-service-cloud",
        flags: &["--no-pkce", "--all-actions"],
        settings: &[(REFRESH_SECRET, "checked"), (PKCE, "unchecked")],
        scopes: "api refresh_token offline_access",
    },
    // Seed 002: "Require secret for Refresh Token Flow: Uncheck this", PKCE "Leave checked",
    // the openid scope.
    Platform {
        name: "apideck",
        profile: "salesforce",
        flags: &[
            "--refresh-without-secret",
            "--scopes",
            "api,openid,refresh_token,offline_access",
            "--callback-url",
            "https://unify.apideck.com/vault/callback",
        ],
        settings: &[
            (REFRESH_SECRET, "unchecked"),
            (PKCE, "checked"),
            ("Require Secret for Web Server Flow", "checked"),
            ("Enable Refresh Token Rotation", "unchecked"),
            ("Issue JSON Web Token (JWT)-based access tokens", "unchecked"),
            ("Require user credentials in the POST body", "unchecked"),
            ("Enable OAuth", "checked"),
        ],
        scopes: "api openid refresh_token offline_access",
    },
    // Seed 004: a Connected App, "Require Secret for Refresh Token Flow: make sure to clear this
    // checkbox", Full access with the refresh scope.
    Platform {
        name: "cyclr",
        profile: "salesforce",
        flags: &[
            "--flavour",
            "connected-app",
            "--refresh-without-secret",
            "--scopes",
            "full,refresh_token,offline_access",
        ],
        settings: &[(REFRESH_SECRET, "unchecked"), ("Enable OAuth Settings", "checked")],
        scopes: "full refresh_token offline_access",
    },
];

fn states(guide: &serde_json::Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for section in guide["sections"].as_array().into_iter().flatten() {
        for step in section["steps"].as_array().into_iter().flatten() {
            for item in step["items"].as_array().into_iter().flatten() {
                if item["setting"]["name"] == name {
                    out.push(item["setting"]["state"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    out
}

/// The library's render of what the flags say, for the comparison.
fn library(platform: &Platform, actions: Vec<String>) -> serde_json::Value {
    let loaded = keyway_validate::validate_paths(&[root().join("profiles")]);
    let profile = &loaded.profile(platform.profile).expect("the profile loads").profile;
    let flag = |name: &str| platform.flags.contains(&name);
    let value = |name: &str| platform.flags.iter().position(|f| *f == name).map(|i| platform.flags[i + 1].to_owned());
    let request = GuideRequest {
        actions,
        variant: value("--flavour"),
        callback_url: value("--callback-url"),
        custom_scopes: value("--scopes").map(|s| s.split(',').map(str::to_owned).collect()),
        sends_pkce: flag("--no-pkce").then_some(false),
        refresh_sends_secret: flag("--refresh-without-secret").then_some(false),
        ..GuideRequest::default()
    };
    let guide: Guide = keyway_guide::render(profile, &request).expect("the library renders");
    serde_json::to_value(&guide).expect("JSON")
}

#[test]
fn each_platform_renders_from_the_cli_as_its_seed_documents() {
    for platform in PLATFORMS {
        let all_actions = platform.flags.contains(&"--all-actions");
        let actions: Vec<String> = if all_actions {
            let loaded = keyway_validate::validate_paths(&[root().join("profiles")]);
            loaded.profile(platform.profile).expect("loads").profile.actions.keys().cloned().collect()
        } else {
            Vec::new()
        };
        let joined = actions.join(",");
        let mut args = vec!["guide", platform.profile, "--format", "json"];
        args.extend(platform.flags.iter().copied().filter(|f| *f != "--all-actions"));
        if all_actions {
            args.extend(["--actions", joined.as_str()]);
        }
        let cli: serde_json::Value = serde_json::from_str(&keyway(&args)).expect("JSON");
        assert_eq!(cli, library(platform, actions), "{}: the CLI and the library differ", platform.name);
        assert_eq!(cli["scope_string"], platform.scopes, "{}", platform.name);
        for (name, state) in platform.settings {
            assert_eq!(states(&cli, name), [*state], "{}: {name}", platform.name);
        }

        // Its shareable URL renders the same guide.
        args.extend(["--url", "https://docs.example.com/guides/salesforce"]);
        let shared: serde_json::Value = serde_json::from_str(&keyway(&args)).expect("JSON");
        let url = shared["url"].as_str().expect("a guide URL").to_owned();
        let back: serde_json::Value =
            serde_json::from_str(&keyway(&["guide", "--from-url", &url, "--format", "json"])).expect("JSON");
        assert_eq!(back, shared, "{}: --from-url {url}", platform.name);
        let markdown = keyway(&["guide", "--from-url", &url]);
        assert!(markdown.contains(&format!("This guide: <{url}>")), "{}", platform.name);
    }
}
