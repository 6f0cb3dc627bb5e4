//! Several `keyway serve` processes on one PostgreSQL database: one refresh per connection
//! across them. A connection whose provider rotates refresh tokens (reusing a rotated one
//! revokes the whole family) falls due; 1,000 concurrent token reads spread over three
//! instances cause exactly one refresh, every caller gets the same new token, and the family
//! stays alive, round after round. Needs the PostgreSQL of README's test command.

mod process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server};
use reqwest::Method;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USER: &str = "herd@example.com";
const ROUNDS: u64 = 20;
const CALLERS: usize = 1000;
/// The server refreshes a token due within this many seconds (`RefreshPolicy::skew`).
const MARGIN: u64 = 300;

/// A provider that rotates refresh tokens, whose new tokens are fresh for 2 s and then due,
/// and the profiles pointing at it, written into `scratch`.
async fn rotating_provider(scratch: &Scratch) -> (TestProvider, std::path::PathBuf) {
    let provider = TestProvider::start(ProviderConfig {
        rotate_refresh_tokens: true,
        access_token_lifetime: Duration::from_secs(MARGIN + 2),
        ..Default::default()
    })
    .await
    .expect("provider");
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    (provider, profiles)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_1000_callers_one_refresh_per_round_and_the_family_survives() {
    let scratch = Scratch::new("serve-multi");
    let db = process::postgres_database("multi").await;
    let (provider, profiles) = rotating_provider(&scratch).await;
    let keys = process::key_file(scratch.path());
    let keys_arg = keys.display().to_string();
    // The background refresher is off: each round's one refresh must be the herd's.
    let args = ["--keys-file", keys_arg.as_str(), "--refresh-every", "0"];
    let servers: Vec<Server> =
        (0..3).map(|i| Server::start(&profiles, &db, &args, &scratch.path().join(format!("serve-{i}.log")))).collect();
    let key = process::api_key(&db);
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(&s.url, &key)).collect();

    let integration = process::create_integration(&apis[0]).await;
    let connection = process::import_connection(&apis[1], &provider, &integration, USER).await;
    // Every instance has the connection cached before the herds.
    let first = apis[0].token(&connection).await["access_token"].clone();
    for api in &apis[1..] {
        assert_eq!(api.token(&connection).await["access_token"], first);
    }

    let mut herd_times = Vec::new();
    let mut previous = first;
    for round in 1..=ROUNDS {
        // Wait until the current token is due (its expiry is less than the margin away).
        let view = apis[0].expect(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
        let expires_at = view["expires_at"].as_u64().expect("expiry");
        let due_at = expires_at.saturating_sub(MARGIN) + 1;
        while now() < due_at {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = provider.counts().grant("refresh_token");
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..CALLERS {
            let api = apis[i % apis.len()].clone();
            let path = format!("/v1/connections/{connection}/token");
            calls.spawn(async move { api.call(Method::GET, &path, None).await });
        }
        let answers = calls.join_all().await;
        herd_times.push(started.elapsed());
        let tokens: std::collections::HashSet<String> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 200, "round {round}: {body}");
                body["access_token"].as_str().expect("token").to_owned()
            })
            .collect();
        assert_eq!(tokens.len(), 1, "round {round}: every caller got the same token");
        let token = tokens.into_iter().next().expect("a token");
        assert_ne!(serde_json::Value::String(token.clone()), previous, "round {round}: a new token");
        previous = serde_json::Value::String(token);
        assert_eq!(provider.counts().grant("refresh_token"), before + 1, "round {round}: exactly one refresh");
        assert_eq!(provider.active_refresh_tokens(USER), 1, "round {round}: the token family is alive");
    }
    assert_eq!(provider.counts().grant("refresh_token"), ROUNDS, "{ROUNDS} refreshes in all");
    let (_, state) = apis[2].call(Method::GET, &format!("/v1/connections/{connection}"), None).await;
    assert_eq!(state["state"], "active");
    herd_times.sort();
    eprintln!(
        "serve_multi: {ROUNDS} herds of {CALLERS} callers over 3 instances: median {:.0} ms, slowest {:.0} ms",
        herd_times[herd_times.len() / 2].as_secs_f64() * 1000.0,
        herd_times[herd_times.len() - 1].as_secs_f64() * 1000.0
    );
    drop(servers);
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Its own PostgreSQL cluster (this test stops and starts it), through scripts/pg.sh.
struct Cluster {
    dir: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn pg(&self, action: &str) -> String {
        let out = std::process::Command::new(process::root().join("scripts/pg.sh"))
            .arg(action)
            .env("KEYWAY_PG_DIR", &self.dir)
            .env("KEYWAY_PG_PORT", self.port.to_string())
            .output()
            .expect("scripts/pg.sh runs");
        assert!(out.status.success(), "pg.sh {action}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(process::root().join("scripts/pg.sh"))
            .arg("stop")
            .env("KEYWAY_PG_DIR", &self.dir)
            .env("KEYWAY_PG_PORT", self.port.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_under_load_means_503_problems_and_nothing_is_lost() {
    // Fails, never skips, without the PostgreSQL of README's test command.
    std::env::var("KEYWAY_TEST_POSTGRES_URL").expect("KEYWAY_TEST_POSTGRES_URL: run the tests through scripts/test.sh");
    let scratch = Scratch::new("serve-pg-down");
    let cluster = Cluster { dir: scratch.path().join("pg"), port: free_port() };
    let exports = cluster.pg("start");
    let url = exports
        .lines()
        .find_map(|l| l.strip_prefix("export KEYWAY_TEST_POSTGRES_URL="))
        .expect("the cluster's URL")
        .to_owned();
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    let keys = process::key_file(scratch.path());
    let keys = keys.display().to_string();
    // The background refresher is off: the test counts the refreshes it asks for.
    let args = ["--keys-file", keys.as_str(), "--refresh-every", "0"];
    let server = Server::start(&profiles, &url, &args, &scratch.path().join("serve.log"));
    let api = Api::new(&server.url, &process::api_key(&url));
    let integration = process::create_integration(&api).await;
    let connection = process::import_connection(&api, &provider, &integration, USER).await;
    let token = api.token(&connection).await["access_token"].clone();

    // Load throughout the outage: every answer is 200 or a 503 problem, never anything else.
    let load = {
        let api = api.clone();
        let paths = [format!("/v1/connections/{connection}"), format!("/v1/connections/{connection}/token")];
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<String, usize>::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                for path in &paths {
                    let (status, body) = api.call(Method::GET, path, None).await;
                    let code = body["code"].as_str().unwrap_or("").to_owned();
                    assert!(
                        status == 200 || (status == 503 && code == "store_unavailable"),
                        "{path} during the outage: {status} {body}"
                    );
                    *seen.entry(format!("{path} {status}")).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        });
        (stop, task)
    };
    cluster.pg("stop");
    // What needs the database answers 503 with a problem document; nothing answers 5xx otherwise.
    for (method, path) in [
        (Method::GET, format!("/v1/connections/{connection}")),
        (Method::GET, "/v1/integrations".to_owned()),
        (Method::GET, "/readyz".to_owned()),
        (Method::POST, format!("/v1/connections/{connection}/refresh")),
    ] {
        let (status, problem) = api.call(method.clone(), &path, None).await;
        assert_eq!(status, 503, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "store_unavailable", "{method} {path}: {problem}");
    }
    let (status, _) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, 200, "the process is alive");
    // A cached token is still handed out: it needs no database.
    assert_eq!(api.token(&connection).await["access_token"], token);
    assert_eq!(provider.counts().grant("refresh_token"), 0, "no refresh without the database to keep it");

    cluster.pg("start");
    let mut ready = 0;
    for _ in 0..100 {
        ready = api.call(Method::GET, "/readyz", None).await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "ready again once the database is back");
    load.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = load.1.await.expect("the load ran");
    assert!(seen.keys().any(|k| k.ends_with(" 503")), "the load saw the outage: {seen:?}");
    eprintln!("serve_multi: answers under load through the outage: {seen:?}");
    let view = api.expect(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    assert_eq!(view["state"], "active");
    let refreshed = api.expect(Method::POST, &format!("/v1/connections/{connection}/refresh"), None, 200).await;
    assert_ne!(refreshed["access_token"], token);
    assert_eq!(provider.counts().grant("refresh_token"), 1);
    drop(server);
}

/// What the provider did with the refresh of the instance that died.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Died {
    /// The request died with its instance: the provider never rotated.
    BeforeTheProvider,
    /// The provider rotated, and its answer died with the instance.
    AfterTheProviderRotated,
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_before_the_provider_answers_is_taken_over_after_its_lease() {
    killed_mid_refresh(Died::BeforeTheProvider).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_lost_with_a_killed_instance_is_a_needs_reauth_diagnosis_not_a_silent_loss() {
    killed_mid_refresh(Died::AfterTheProviderRotated).await;
}

/// Instance A's refresh reaches the provider and A is killed (SIGKILL) before it hears back;
/// B, asked for the token, waits for A's lease to lapse and takes over.
async fn killed_mid_refresh(died: Died) {
    let tag = if died == Died::BeforeTheProvider { "kill_before" } else { "kill_after" };
    let scratch = Scratch::new(&format!("serve-{tag}"));
    let db = process::postgres_database(tag).await;
    let (provider, profiles) = rotating_provider(&scratch).await;
    let keys = process::key_file(scratch.path()).display().to_string();
    // A 2 s provider timeout makes the refresh lease 2 s x 4 attempts + backoffs + 2 s: about 12 s.
    let args = ["--keys-file", keys.as_str(), "--provider-timeout", "2", "--refresh-every", "0"];
    let a = Server::start(&profiles, &db, &args, &scratch.path().join("a.log"));
    let b = Server::start(&profiles, &db, &args, &scratch.path().join("b.log"));
    let key = process::api_key(&db);
    let (api_a, api_b) = (Api::new(&a.url, &key), Api::new(&b.url, &key));
    let integration = process::create_integration(&api_a).await;
    let connection = process::import_connection(&api_a, &provider, &integration, USER).await;
    api_a.token(&connection).await;
    api_b.token(&connection).await;
    let view = api_a.expect(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    let due_at = view["expires_at"].as_u64().expect("expiry").saturating_sub(MARGIN) + 1;
    while now() < due_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A's refresh reaches the provider, which holds it (before or after rotating); A dies
    // meanwhile.
    let hold = Duration::from_secs(1);
    let fault = match died {
        Died::BeforeTheProvider => keyway_testkit::Fault::Delay(hold),
        Died::AfterTheProviderRotated => keyway_testkit::Fault::DelayAnswer(hold),
    };
    provider.inject_faults(keyway_testkit::Endpoint::Token, [fault]);
    let token_requests = provider.counts().token;
    let path = format!("/v1/connections/{connection}/token");
    let stuck = {
        let api_a = api_a.clone();
        let path = path.clone();
        tokio::spawn(
            async move { api_a.http.get(format!("{}{path}", api_a.base)).bearer_auth(&api_a.key).send().await },
        )
    };
    let arrived = Instant::now();
    while provider.counts().token == token_requests {
        assert!(arrived.elapsed() < Duration::from_secs(10), "A's refresh never reached the provider");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let _ = stuck.await;

    // B waits for A's lease to lapse, then takes over.
    let started = Instant::now();
    let (status, answer) = api_b.call(Method::GET, &path, None).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(5), "B waited for the lease: {waited:?}");
    // Give the provider time to finish A's held request, whatever became of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = api_b.expect(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    match died {
        Died::BeforeTheProvider => {
            // The provider never rotated for A: B refreshed, and the family lives.
            assert_eq!(status, 200, "{answer}");
            assert_eq!(view["state"], "active");
            assert_eq!(provider.active_refresh_tokens(USER), 1);
        }
        Died::AfterTheProviderRotated => {
            // The provider rotated for A, and the new tokens died with A: B's refresh presents
            // the rotated-out token and the provider revokes the family. Visible, not silent.
            assert_eq!(provider.active_refresh_tokens(USER), 0);
            assert_eq!((status, answer["code"].as_str()), (409, Some("needs_reauth")), "{answer}");
            assert_eq!(view["state"], "needs_reauth");
            assert_eq!(view["diagnosis"]["error"], "invalid_grant", "{view}");
            assert_eq!(view["diagnosis"]["kind"], "reauthorize", "{view}");
        }
    }
    eprintln!("serve_multi: {died:?}: B took over after {waited:?}: {status}");
    drop(b);
}
