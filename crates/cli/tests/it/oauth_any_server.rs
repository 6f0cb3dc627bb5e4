//! Issue 19: the CLI against any standards-following server. A registered redirect path,
//! `exchange-code` after `authorize-url`, a command per grant, the RFC 9207 `iss` check,
//! `private_key_jwt`, a profile drafted by `import oidc` from the provider's own discovery
//! document used to log in, and closed pipes. All over loopback against keyway-testkit.

use keyway_testkit::ProviderConfig;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

const CLIENT_ID: &str = "3MVG9testkit";
/// How long a wait for the command may take before the test fails.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

use crate::oauth_setup;

use oauth_setup::{Setup, http, text};

async fn setup(tag: &str, config: ProviderConfig) -> Setup {
    oauth_setup::setup("any", tag, config, &[]).await
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs `keyway login` with `args`, plays the browser as `user`, and returns the output and
/// the callback page's status. `tamper` may change the callback URL the browser follows.
async fn login(setup: &Setup, args: &[&str], tamper: impl FnOnce(String) -> String) -> (Output, u16) {
    let run = setup.start_login(args).await;
    let location = setup.provider.browse(&run.url, "ada@example.com").await.expect("provider redirects");
    let page = http().get(tamper(location)).send().await.expect("callback delivered");
    let status = page.status().as_u16();
    (run.finish().await, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_listens_on_the_registered_redirect_path() {
    let port = free_port();
    let registered = format!("http://127.0.0.1:{port}/auth/callback/keyway");
    let config = ProviderConfig { callback_urls: vec![registered.clone()], ..ProviderConfig::default() };
    let setup = setup("path", config).await;
    let args = [
        "login",
        "salesforce-local",
        "--client-id",
        CLIENT_ID,
        "--env",
        "local",
        "--client-secret-env",
        "KEYWAY_TEST_SECRET",
        "--redirect-uri",
        &registered,
    ];
    let (output, status) = login(&setup, &args, |l| l).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(status, 200);
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).expect("token set");
    assert!(tokens["access_token"].is_string());
    let exchange = setup.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert_eq!(exchange.form_value("redirect_uri"), Some(registered.as_str()));

    // The provider refuses any other callback: the default path would not have worked.
    let refused = setup
        .run(
            &[
                "login",
                "salesforce-local",
                "--client-id",
                CLIENT_ID,
                "--env",
                "local",
                "--redirect-uri",
                "https://x.example/cb",
            ],
            None,
        )
        .await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("is not http"), "{}", text(&refused.stderr));
    let help = setup.run(&["login", "--help"], None).await;
    assert!(text(&help.stdout).contains("http://127.0.0.1:1717/OauthRedirect"), "{}", text(&help.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_code_finishes_a_flow_started_by_authorize_url() {
    let setup = setup("exchange", ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await;
    let redirect = "https://app.example.com/oauth/cb";
    let connection = ["salesforce-local", "--client-id", CLIENT_ID, "--env", "local"];
    let started = setup.run(&[&["authorize-url"][..], &connection, &["--redirect-uri", redirect]].concat(), None).await;
    assert!(started.status.success(), "{}", text(&started.stderr));
    let mut flow: serde_json::Value = serde_json::from_slice(&started.stdout).expect("flow JSON");
    let url = flow["url"].as_str().expect("url").to_owned();

    // The callback URL pasted on stdin after --flow FILE.
    let location = setup.provider.browse(&url, "ada@example.com").await.expect("redirect");
    assert!(location.starts_with(redirect), "{location}");
    let flow_file = setup.write("flow.json", &started.stdout);
    let args = [
        &["exchange-code"][..],
        &connection,
        &["--client-secret-env", "KEYWAY_TEST_SECRET", "--redirect-uri", redirect, "--flow"],
        &[flow_file.to_str().expect("utf-8")],
    ]
    .concat();
    let exchanged = setup.run(&args, Some(&format!("{location}\n"))).await;
    assert!(exchanged.status.success(), "{}", text(&exchanged.stderr));
    let tokens: serde_json::Value = serde_json::from_slice(&exchanged.stdout).expect("token set");
    assert!(tokens["refresh_token"].is_string());
    let exchange = setup.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert_eq!(exchange.form_value("code_verifier"), flow["code_verifier"].as_str(), "the flow's verifier");

    // The whole flow on stdin, the callback inside it; a replayed code is the provider's
    // invalid_grant, understood without the profile.
    flow["callback"] = serde_json::Value::String(location.clone());
    let args = [
        &["exchange-code"][..],
        &connection,
        &["--client-secret-env", "KEYWAY_TEST_SECRET", "--redirect-uri", redirect],
    ]
    .concat();
    let replayed = setup.run(&args, Some(&flow.to_string())).await;
    assert_eq!(replayed.status.code(), Some(1));
    assert!(text(&replayed.stderr).contains("kind: reauthorize"), "{}", text(&replayed.stderr));

    // Someone else's answer (another state) is refused before any token request.
    let before = setup.provider.counts().token;
    flow["callback"] = serde_json::Value::String(location.replace("state=", "state=x"));
    let forged = setup.run(&args, Some(&flow.to_string())).await;
    assert_eq!(forged.status.code(), Some(1));
    assert!(text(&forged.stderr).contains("state"), "{}", text(&forged.stderr));
    assert_eq!(setup.provider.counts().token, before);
    for output in [&exchanged, &replayed, &forged] {
        assert!(!text(&output.stderr).contains("testkit-secret"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_has_a_command() {
    let (private, public) = keyway_testkit::rsa_key_pair();
    let config =
        ProviderConfig { jwt_public_key_pem: Some(public.clone()), device_interval: 1, ..ProviderConfig::default() };
    let setup = setup("grants", config).await;
    let connection = ["salesforce-local", "--client-id", CLIENT_ID, "--env", "local"];

    let cc = setup
        .run(&[&["client-credentials"][..], &connection, &["--client-secret-env", "KEYWAY_TEST_SECRET"]].concat(), None)
        .await;
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let tokens: serde_json::Value = serde_json::from_slice(&cc.stdout).expect("token set");
    assert_eq!(tokens["grant"], "client_credentials");
    assert_eq!(setup.provider.counts().grant("client_credentials"), 1);
    // The grant never returns a refresh token: custom scopes need no refresh scope (KW0503
    // is for grants that refresh), and none is added to the request.
    let scoped = setup
        .run(
            &[
                &["client-credentials"][..],
                &connection,
                &["--scopes", "api", "--client-secret-env", "KEYWAY_TEST_SECRET"],
            ]
            .concat(),
            None,
        )
        .await;
    assert!(scoped.status.success(), "{}", text(&scoped.stderr));
    let request = setup
        .provider
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.form_value("grant_type").is_some())
        .expect("token request");
    assert_eq!(request.form_value("scope"), Some("api"));

    let jwt = setup
        .run(
            &[
                &["jwt-bearer"][..],
                &connection,
                &["--subject", "ada@example.com", "--private-key-env", "KEYWAY_TEST_KEY"],
            ]
            .concat(),
            None,
        )
        .await;
    assert!(jwt.status.success(), "{}", text(&jwt.stderr));
    assert_eq!(setup.provider.counts().grant("urn:ietf:params:oauth:grant-type:jwt-bearer"), 1);
    // From a file as well; the key never shows in any output.
    let key_file = setup.write("key.pem", private.as_bytes());
    let from_file = setup
        .run(
            &[
                &["jwt-bearer"][..],
                &connection,
                &["--subject", "ada@example.com", "--private-key-file", key_file.to_str().expect("utf-8")],
            ]
            .concat(),
            None,
        )
        .await;
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));

    // The device flow: the code is shown, polling waits for the user's approval.
    let mut command = setup.command(&[&["device"][..], &connection, &["--timeout", "60"]].concat());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("keyway device runs");
    let stderr = child.stderr.take().expect("stderr");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).find(|l| l.contains("enter the code"))
    })
    .await
    .expect("join")
    .expect("the user code is shown");
    let user_code = line.rsplit(' ').next().expect("code").to_owned();
    assert!(line.contains("http://"), "{line}");
    // The user approves only once the command has polled and heard "pending".
    keyway_testkit::wait_until("a device poll before the approval", LIMIT, || async {
        setup.provider.counts().grant("device") > 0
    })
    .await;
    assert!(setup.provider.approve_device(&user_code, "ada@example.com"));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("ends")).await.expect("join");
    assert!(output.status.success());
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).expect("token set");
    assert_eq!(tokens["grant"], "device_code");
    let polls = setup
        .provider
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/token") && r.form_value("grant_type").is_some_and(|g| g.contains("device")))
        .count();
    assert!(polls >= 2, "polled until approved: {polls}");

    for output in [&cc, &jwt, &from_file] {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains("testkit-secret") && !all.contains("PRIVATE KEY"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_authenticates_the_client_without_a_secret() {
    let (_, public) = keyway_testkit::rsa_key_pair();
    let setup =
        setup("pkjwt", ProviderConfig { jwt_public_key_pem: Some(public.clone()), ..ProviderConfig::default() }).await;
    setup.child("salesforce-signed", "  client_auth: private_key_jwt\n");
    let connection = ["salesforce-signed", "--client-id", CLIENT_ID, "--env", "local"];
    let output = setup
        .run(
            &[
                &["client-credentials"][..],
                &connection,
                &["--private-key-env", "KEYWAY_TEST_KEY", "--private-key-id", "k1"],
            ]
            .concat(),
            None,
        )
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let request = setup.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("token request");
    assert_eq!(request.form_value("client_secret"), None);
    assert_eq!(
        request.form_value("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert!(request.form_value("client_assertion").is_some_and(|a| a.split('.').count() == 3));

    // Without a key, the connection is refused before any request, with its own code.
    let before = setup.provider.counts().token;
    let missing = setup.run(&[&["client-credentials"][..], &connection].concat(), None).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("KW0603"), "{}", text(&missing.stderr));
    assert_eq!(setup.provider.counts().token, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_iss_is_refused_before_any_token_request() {
    let setup = setup("iss", ProviderConfig::default()).await;
    let issuer = setup.provider.base_url();
    setup.child("salesforce-issuer", &format!("  issuer: '{issuer}'\n  callback_iss_required: true\n"));
    let args = [
        "login",
        "salesforce-issuer",
        "--client-id",
        CLIENT_ID,
        "--env",
        "local",
        "--port",
        "0",
        "--client-secret-env",
        "KEYWAY_TEST_SECRET",
    ];

    // The provider (or an attacker's) answer names another issuer.
    setup.provider.update_config(|c| c.callback_iss = Some("https://evil.example".to_owned()));
    let (forged, status) = login(&setup, &args, |l| l).await;
    assert_eq!(forged.status.code(), Some(1));
    assert_eq!(status, 400);
    let stderr = text(&forged.stderr);
    assert!(stderr.contains("another issuer"), "{stderr}");
    assert_eq!(stderr.matches("another issuer").count(), 1, "said once: {stderr}");
    assert_eq!(setup.provider.counts().token, 0, "no code exchange");

    // No `iss` where the profile says the provider always sends one.
    setup.provider.update_config(|c| c.callback_iss = None);
    let (missing, _) = login(&setup, &args, |l| l).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no `iss`"), "{}", text(&missing.stderr));
    assert_eq!(setup.provider.counts().token, 0);

    // The right issuer passes.
    setup.provider.update_config(|c| c.callback_iss = Some(issuer.clone()));
    let (ok, status) = login(&setup, &args, |l| l).await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(status, 200);

    // The local profile (salesforce-local) declares the issuer but does not require `iss`: a
    // foreign one is still refused.
    setup.provider.update_config(|c| c.callback_iss = Some("https://evil.example".to_owned()));
    let before = setup.provider.counts().token;
    let plain = ["login", "salesforce-local", "--client-id", CLIENT_ID, "--env", "local", "--port", "0"];
    let (refused, _) = login(&setup, &plain, |l| l).await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(setup.provider.counts().token, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_state_is_reported_at_once_and_the_wait_goes_on() {
    let setup = setup("forged", ProviderConfig::default()).await;
    let args =
        ["login", "salesforce-local", "--client-id", CLIENT_ID, "--env", "local", "--port", "0", "--timeout", "30"];
    // A forged callback alone: the terminal says so while the wait goes on.
    let mut command = setup.command(&args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("runs");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let rx = &rx;
    let waiting = keyway_testkit::wait_until("the waiting line", LIMIT, || async { rx.try_recv().ok() }).await;
    let callback = waiting.rsplit(' ').next().expect("uri").to_owned();
    let forged = http().get(format!("{callback}?code=stolen&state=forged")).send().await.expect("forged");
    assert_eq!(forged.status().as_u16(), 400);
    let refused = keyway_testkit::wait_until("a line about the refusal", LIMIT, || async {
        rx.try_iter().find(|line| line.contains("refused"))
    })
    .await;
    assert!(refused.contains("still waiting"), "{refused}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_drafted_from_discovery_logs_in() {
    // The newcomer's path: the provider's discovery document, a draft, a login.
    let setup =
        setup("discovery", ProviderConfig { callback_iss: None, device_interval: 1, ..ProviderConfig::default() })
            .await;
    let drafts = setup.dir.join("drafts");
    let issuer = setup.provider.base_url();
    let imported = setup
        .run(&["import", "oidc", &issuer, "--id", "testkit-oidc", "--out", drafts.to_str().expect("utf-8")], None)
        .await;
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let stderr = text(&imported.stderr);
    assert!(stderr.contains("Still to fill in") && stderr.contains("auth.refresh.rotation"), "{stderr}");
    let draft = std::fs::read_to_string(drafts.join("testkit-oidc.yaml")).expect("draft written");
    assert!(draft.contains("pkce: required") && draft.contains(&format!("issuer: {issuer}")), "{draft}");

    let validated = setup.run(&["validate", drafts.to_str().expect("utf-8")], None).await;
    assert!(validated.status.success(), "{}", text(&validated.stdout));
    let draft_path = drafts.join("testkit-oidc.yaml");
    let args = [
        "login",
        draft_path.to_str().expect("utf-8"),
        "--client-id",
        CLIENT_ID,
        "--port",
        "0",
        "--client-secret-env",
        "KEYWAY_TEST_SECRET",
    ];
    let (output, status) = login(&setup, &args, |l| l).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(status, 200);
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).expect("token set");
    assert!(tokens["refresh_token"].is_string(), "offline_access requested by default: {tokens}");
    let exchange = setup.provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert!(exchange.basic_auth.is_some(), "client_secret_basic, as the metadata offers it first");

    // The draft's device grant is the standard one (RFC 8628: the device authorization
    // endpoint, then polls with the standard grant type).
    assert!(draft.contains("- device_code") && draft.contains("device_authorization:"), "{draft}");
    let mut command = setup.command(&[
        "device",
        draft_path.to_str().expect("utf-8"),
        "--client-id",
        CLIENT_ID,
        "--client-secret-env",
        "KEYWAY_TEST_SECRET",
    ]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("keyway device runs");
    let stderr = child.stderr.take().expect("stderr");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).find(|l| l.contains("enter the code"))
    })
    .await
    .expect("join")
    .expect("the user code is shown");
    let user_code = line.rsplit(' ').next().expect("code").to_owned();
    assert!(setup.provider.approve_device(&user_code, "ada@example.com"));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("ends")).await.expect("join");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let requests = setup.provider.requests();
    assert!(requests.iter().any(|r| r.path.ends_with("/device_authorization")));
    assert!(
        requests.iter().any(|r| r.form_value("grant_type") == Some("urn:ietf:params:oauth:grant-type:device_code"))
    );

    // An issuer without metadata at either well-known location is an error naming both
    // (a document naming another issuer is refused too: tests/it/oidc.rs in keyway-import).
    let wrong = setup.run(&["import", "oidc", &format!("{issuer}/other")], None).await;
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = text(&wrong.stderr);
    assert!(stderr.contains("openid-configuration") && stderr.contains("oauth-authorization-server"), "{stderr}");
    // Metadata is never fetched over plain http from another host.
    let plain = setup.run(&["import", "oidc", "http://id.example.com"], None).await;
    assert_eq!(plain.status.code(), Some(2));
    assert!(text(&plain.stderr).contains("not https"), "{}", text(&plain.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_or_stderr_ends_quietly() {
    let setup = setup("pipe", ProviderConfig::default()).await;
    // stdout closed before keyway writes (`keyway inspect salesforce | head -0`).
    let output = tokio::task::spawn_blocking({
        let mut command = setup.command(&["inspect", "salesforce"]);
        move || {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().expect("runs");
            drop(child.stdout.take());
            child.wait_with_output().expect("ends")
        }
    })
    .await
    .expect("join");
    assert!(!text(&output.stderr).contains("panicked"), "{}", text(&output.stderr));
    assert_ne!(output.status.code(), Some(101));

    // stderr closed: a command that only complains (an unknown profile) ends with its status.
    let output = tokio::task::spawn_blocking({
        let mut command = setup.command(&["scopes", "no-such-profile"]);
        move || {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().expect("runs");
            drop(child.stderr.take());
            child.wait_with_output().expect("ends")
        }
    })
    .await
    .expect("join");
    assert_eq!(output.status.code(), Some(2), "the usage status, not a panic (101)");

    // Both closed, on an OAuth failure path.
    let output = tokio::task::spawn_blocking({
        let mut command =
            setup.command(&["refresh", "salesforce-local", "--client-id", CLIENT_ID, "--tokens", "/nonexistent"]);
        move || {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().expect("runs");
            drop(child.stdout.take());
            drop(child.stderr.take());
            child.wait().expect("ends")
        }
    })
    .await
    .expect("join");
    assert_eq!(output.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pkce_where_the_profile_requires_it_has_its_own_code() {
    let setup = setup("nopkce", ProviderConfig::default()).await;
    setup.child("salesforce-pkce", "  pkce: required\n");
    let args = [
        "authorize-url",
        "salesforce-pkce",
        "--client-id",
        CLIENT_ID,
        "--env",
        "local",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--no-pkce",
    ];
    let output = setup.run(&args, None).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("error[KW0601]") && stderr.contains("requires PKCE"), "{stderr}");
    assert_eq!(setup.provider.counts().authorize, 0);
}

/// The `keyway ...` command lines of README's OAuth section, joined across `\` and without
/// comments and redirections.
fn readme_oauth_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let section = readme.split("## OAuth from the command line").nth(1).expect("the section");
    let section = section.split("\n## ").next().expect("until the next section");
    let mut commands = Vec::new();
    for block in section.split("```sh\n").skip(1) {
        let block = block.split("\n```").next().unwrap_or_default();
        let mut joined = String::new();
        for line in block.lines() {
            let line = line.split("  #").next().unwrap_or_default().trim_end();
            if let Some(start) = line.strip_suffix('\\') {
                joined.push_str(start);
                continue;
            }
            joined.push_str(line);
            let command = std::mem::take(&mut joined);
            let command = command.trim();
            if !command.starts_with("keyway ") {
                continue;
            }
            let mut words = Vec::new();
            let mut skip_next = false;
            for word in command.split_whitespace().skip(1) {
                if skip_next {
                    skip_next = false;
                    continue;
                }
                match word {
                    ">" | "<" | "&" => skip_next = word != "&",
                    _ => words.push(word.trim_matches('"').to_owned()),
                }
            }
            commands.push(words);
        }
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_oauth_commands_are_valid_command_lines() {
    let setup = setup("readme", ProviderConfig::default()).await;
    let commands = readme_oauth_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for words in &commands {
        // Every flag and argument is one the command accepts: clap refuses anything else
        // before it gets to `--help`.
        let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
        args.push("--help");
        let output = setup.run(&args, None).await;
        assert!(output.status.success(), "{words:?}: {}", text(&output.stderr));
    }
    let subcommands: Vec<&str> = commands.iter().filter_map(|w| w.first().map(String::as_str)).collect();
    for grant in ["login", "exchange-code", "client-credentials", "jwt-bearer", "device", "import"] {
        assert!(subcommands.contains(&grant), "README shows `keyway {grant}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_speaks_profile_vocabulary() {
    let setup = setup("inspect", ProviderConfig::default()).await;
    let output = setup.run(&["inspect", "salesforce"], None).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    for word in
        ["authorization_code, refresh_token", "client_auth:     client_secret_post", "pkce:            optional"]
    {
        assert!(shown.contains(word), "{word}: {shown}");
    }
    for rust in ["AuthorizationCode", "Optional", "RequestBody", "Get "] {
        assert!(!shown.contains(rust), "{rust}: {shown}");
    }
    // Columns line up however long the names are.
    let actions: Vec<&str> =
        shown.lines().skip_while(|l| !l.starts_with("actions")).skip(1).take_while(|l| l.starts_with("  ")).collect();
    assert!(actions.len() > 10);
    // The method and the path start in the same column on every line.
    let column = |line: &str, what: &str| line.find(what);
    for what in [" GET ", " /"] {
        let columns: std::collections::BTreeSet<Option<usize>> =
            actions.iter().filter(|l| what != " GET " || l.contains(" GET ")).map(|l| column(l, what)).collect();
        assert_eq!(columns.len(), 1, "{what}: {actions:#?}");
    }
}
