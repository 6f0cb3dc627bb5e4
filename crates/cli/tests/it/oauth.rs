//! The OAuth commands against the test provider, with the test playing the browser.

use keyway_testkit::ProviderConfig;
use std::process::{Command, Output};

use crate::oauth_setup;

use oauth_setup::{Setup, http, text};

async fn setup(tag: &str, config: ProviderConfig) -> Setup {
    oauth_setup::setup("oauth", tag, config, &["--client-id", "3MVG9testkit", "--env", "local"]).await
}

/// Runs `keyway login`, plays the browser, and returns its output.
async fn login(setup: &Setup, extra: &[&str], user: &str, forged_first: bool) -> Output {
    let args = [&["login", "salesforce-local", "--port", "0", "--client-secret-env", "KEYWAY_TEST_SECRET"][..], extra]
        .concat();
    let run = setup.start_login(&args).await;
    let location = setup.provider.browse(&run.url, user).await.expect("provider redirects");
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    if forged_first {
        // Another page calls the loopback port with a made-up state: refused, and the wait goes on.
        let base = location.split_once('?').expect("query").0;
        let forged = http().get(format!("{base}?code=stolen&state=forged")).send().await.expect("forged callback");
        assert_eq!(forged.status().as_u16(), 400);
    }
    let page = http().get(&location).send().await.expect("callback delivered");
    let status = page.status().as_u16();
    let body = page.text().await.expect("page");
    let output = run.finish().await;
    if output.status.success() {
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Logged in"), "{body}");
    }
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_refresh_introspect_and_revoke() {
    let setup = setup("login", ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let output = login(&setup, &[], "ada@example.com", true).await;
    assert!(output.status.success(), "{}", text(&output.stdout));
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).expect("token set JSON");
    assert!(tokens["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(tokens["fields"]["instance_url"], setup.provider.base_url());
    assert_eq!(tokens["expiry_source"], "introspection");
    let exchange = setup.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert!(exchange.form_value("code_verifier").is_some(), "login sends PKCE");
    let tokens_file = setup.write("tokens.json", &output.stdout);
    let tokens_arg = tokens_file.to_str().expect("utf-8");

    // refresh, with the secret from stdin this time.
    let refreshed = setup
        .run(
            &["refresh", "salesforce-local", "--client-secret-stdin", "--tokens", tokens_arg],
            Some("testkit-secret\n"),
        )
        .await;
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    let fresh: serde_json::Value = serde_json::from_slice(&refreshed.stdout).expect("JSON");
    assert_ne!(fresh["access_token"], tokens["access_token"]);
    assert_eq!(fresh["refresh_token"], tokens["refresh_token"], "kept without rotation");
    assert_eq!(setup.provider.counts().grant("refresh_token"), 1);

    // introspect the access token, from stdin.
    let introspected = setup
        .run(
            &["introspect", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET"],
            Some(&text(&refreshed.stdout)),
        )
        .await;
    assert!(introspected.status.success(), "{}", text(&introspected.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&introspected.stdout).expect("JSON");
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "ada@example.com");

    // revoke the refresh token; refreshing then fails with the profile's diagnosis.
    let revoked = setup.run(&["revoke", "salesforce-local", "--tokens", tokens_arg], None).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(text(&revoked.stdout).contains("\"revoked\": \"refresh_token\""));
    let failed = setup
        .run(
            &["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET", "--tokens", tokens_arg],
            None,
        )
        .await;
    assert_eq!(failed.status.code(), Some(1));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains("expired access/refresh token") && stderr.contains("rule: refresh_token_expired"),
        "{stderr}"
    );
    for output in [&refreshed, &introspected, &revoked, &failed] {
        assert!(!text(&output.stderr).contains("testkit-secret"));
    }
}

/// With rotating refresh tokens, `refresh --write` keeps the file usable: each refresh saves
/// the rotated set over it (privately), so the next one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_write_saves_rotated_tokens_over_the_file() {
    let setup =
        setup("refresh-write", ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let output = login(&setup, &[], "ada@example.com", false).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tokens_file = setup.write("tokens.json", &output.stdout);
    let tokens_arg = tokens_file.to_str().expect("utf-8");
    let refresh = ["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET", "--tokens", tokens_arg];
    let mut previous: serde_json::Value = serde_json::from_slice(&output.stdout).expect("token set");
    for round in 1..=3 {
        let written = setup.run(&[&refresh[..], &["--write"]].concat(), None).await;
        assert!(written.status.success(), "round {round}: {}", text(&written.stderr));
        assert!(written.stdout.is_empty(), "round {round}: nothing secret on the terminal");
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&tokens_file).expect("read")).expect("saved token set");
        assert_ne!(saved["refresh_token"], previous["refresh_token"], "round {round}: rotated and saved");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&tokens_file).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "round {round}");
        }
        previous = saved;
    }
    assert_eq!(setup.provider.counts().grant("refresh_token"), 3);
    let from_stdin = setup
        .run(&["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET", "--write"], Some("{}"))
        .await;
    assert_eq!(from_stdin.status.code(), Some(2), "{}", text(&from_stdin.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reports_the_provider_refusal() {
    let setup = setup("deny", ProviderConfig::default()).await;
    let output = login(&setup, &[], "deny", false).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("access_denied") && stderr.contains("kind: reauthorize"), "{stderr}");
    assert_eq!(stderr.matches("keyway: ").count(), 1, "said once: {stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_times_out_without_a_callback() {
    let setup = setup("timeout", ProviderConfig::default()).await;
    let output = setup.run(&["login", "salesforce-local", "--port", "0", "--timeout", "1"], None).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no callback within 1 seconds"), "{}", text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_url_prints_url_state_and_verifier() {
    let setup = setup("url", ProviderConfig::default()).await;
    let args = [
        "authorize-url",
        "salesforce-local",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--actions",
        "list_accounts",
    ];
    let output = setup.run(&args, None).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let url = printed["url"].as_str().expect("url");
    let state = printed["state"].as_str().expect("state");
    assert!(url.starts_with(&format!("{}/services/oauth2/authorize?", setup.provider.base_url())), "{url}");
    assert!(url.contains(&format!("state={state}")) && url.contains("code_challenge_method=S256"), "{url}");
    assert!(printed["code_verifier"].as_str().is_some_and(|v| v.len() >= 43));

    let mut no_pkce = args.to_vec();
    no_pkce.push("--no-pkce");
    let output = setup.run(&no_pkce, None).await;
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(printed["code_verifier"].is_null());
    assert!(!printed["url"].as_str().expect("url").contains("code_challenge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_request() {
    let setup = setup("bad", ProviderConfig::default()).await;
    // A hostile My Domain value.
    let output = setup
        .run(
            &[
                "authorize-url",
                "salesforce-local",
                "--redirect-uri",
                "https://a.example/cb",
                "--param",
                "my_domain=evil.com/x",
            ],
            None,
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("error[KW0506]: `evil.com/x` is not accepted"), "{}", text(&output.stderr));
    // A secret on the command line is not an option.
    let output = setup.run(&["refresh", "salesforce-local", "--client-secret", "s3cret"], None).await;
    assert_eq!(output.status.code(), Some(2));
    // A secret variable that is not set.
    let output =
        setup.run(&["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_NOT_SET_ANYWHERE"], Some("{}")).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("KEYWAY_NOT_SET_ANYWHERE"));
    // A token set that is not JSON: the error does not quote it.
    let output = setup
        .run(
            &["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET"],
            Some("{\"access_token\": 00Dsecret"),
        )
        .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(!text(&output.stderr).contains("00Dsecret"), "{}", text(&output.stderr));
    assert_eq!(setup.provider.counts(), keyway_testkit::Counts::default());
}

/// A stray file with the same profile id, a token set issued for another connection, and a
/// token "file" that is a FIFO or huge: each is refused, and the provider sees no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowed_profiles_and_foreign_or_unreadable_token_sets_make_no_request() {
    let setup = setup("hostile", ProviderConfig::default()).await;
    let output = login(&setup, &[], "ada@example.com", false).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tokens_file = setup.write("tokens.json", &output.stdout);
    let tokens_arg = tokens_file.to_str().expect("utf-8");
    let refresh = |tokens: &str| {
        ["refresh", "salesforce-local", "--client-secret-env", "KEYWAY_TEST_SECRET", "--tokens", tokens]
            .map(str::to_owned)
    };
    let before = setup.provider.counts();

    // A second file declaring `salesforce-local`, pointing elsewhere: neither is used.
    let local = std::fs::read_to_string(setup.dir.join("profiles/salesforce-local.yaml")).expect("local profile");
    // Valid on its own (a loopback host, as test profiles may have), so only the shadowing is wrong.
    let shadow = local.replace(&setup.provider.host(), &setup.provider.host().replace("127.0.0.1", "localhost"));
    let shadow_path = setup.write("profiles/a-shadow.yaml", shadow.as_bytes());
    let args = refresh(tokens_arg);
    let refused = setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("KW0303") && stderr.contains("is not used"), "{stderr}");
    std::fs::remove_file(shadow_path).expect("remove the shadow");

    // The token set says it was issued in another environment.
    let mut set: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(set["origin"]["profile"], "salesforce-local");
    set["origin"]["environment"] = "production".into();
    let foreign = setup.write("foreign.json", set.to_string().as_bytes());
    for command in ["refresh", "revoke", "introspect"] {
        let mut args = refresh(foreign.to_str().expect("utf-8"));
        args[0] = command.to_owned();
        let refused = setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await;
        assert_eq!(refused.status.code(), Some(1), "{command}: {}", text(&refused.stderr));
        assert!(text(&refused.stderr).contains("nothing was sent"), "{command}: {}", text(&refused.stderr));
    }

    // A FIFO where the token file should be ends at once; a huge file names the limit.
    let fifo = setup.dir.join("tokens.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let args = refresh(fifo.to_str().expect("utf-8"));
    let refused = setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("not a regular file"), "{}", text(&refused.stderr));
    let huge = setup.write("huge.json", &vec![b' '; 2 * 1024 * 1024]);
    let args = refresh(huge.to_str().expect("utf-8"));
    let refused = setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("larger than the limit of 1048576 bytes"), "{}", text(&refused.stderr));
    let args = refresh("-");
    let refused =
        setup.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), Some(&" ".repeat(2 * 1024 * 1024))).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("from stdin: larger than the limit"), "{}", text(&refused.stderr));

    assert_eq!(setup.provider.counts(), before, "no request reached the provider");
}
