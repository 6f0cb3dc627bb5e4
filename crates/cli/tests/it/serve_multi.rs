//! Several `keyway serve` processes on one PostgreSQL database: one refresh per connection
//! across them. A connection whose provider rotates refresh tokens (reusing a rotated one
//! revokes the whole family) falls due; 1,000 concurrent token reads spread over three
//! instances cause exactly one refresh, every caller gets the same new token, and the family
//! stays alive, round after round. Needs the PostgreSQL of README's test command.
//!
//! Nothing here waits for a token to age: when the test wants a token due at once the provider
//! says it expires in 0 seconds, otherwise its tokens are fresh for a day (learned by
//! introspection, as from Salesforce), and the servers see each as issued.

use crate::process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server};
use reqwest::Method;
use std::time::{Duration, Instant};

const USER: &str = "herd@example.com";
const ROUNDS: u64 = 20;
const CALLERS: usize = 1000;
/// The provider's access token lifetime: fresh for the whole test unless the provider says
/// otherwise (`expires_in`).
const FRESH: Duration = Duration::from_secs(24 * 3600);
/// How long a wait for something the test expects may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);

/// A provider that rotates refresh tokens and issues fresh ones, and the profiles pointing at
/// it, written into `scratch`.
async fn rotating_provider(scratch: &Scratch) -> (TestProvider, std::path::PathBuf) {
    let provider = TestProvider::start(ProviderConfig {
        rotate_refresh_tokens: true,
        access_token_lifetime: FRESH,
        ..Default::default()
    })
    .await
    .expect("provider");
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    (provider, profiles)
}

/// Makes `connection` due on every instance of `apis`: each forces a refresh while the
/// provider says its tokens expire in 0 seconds, so each holds a due token (the last one's is
/// stored); the provider then issues fresh tokens again.
async fn due_everywhere(provider: &TestProvider, apis: &[Api], connection: &str) {
    provider.update_config(|c| c.expires_in = Some(0));
    for api in apis {
        api.expect(Method::POST, &format!("/v1/connections/{connection}/refresh"), None, 200).await;
    }
    provider.update_config(|c| c.expires_in = None);
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
    assert_eq!(provider.counts().grant("refresh_token"), 0, "a fresh token is read without a refresh");

    // Measured for docs/serve-bench.md, never asserted on.
    let mut herd_times = Vec::new();
    let mut previous = first;
    for round in 1..=ROUNDS {
        due_everywhere(&provider, &apis, &connection).await;
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
    let forced = ROUNDS * apis.len() as u64;
    assert_eq!(provider.counts().grant("refresh_token"), forced + ROUNDS, "one refresh per herd in all");
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

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_under_load_means_503_problems_and_nothing_is_lost() {
    // Fails, never skips, without the PostgreSQL of README's test command.
    std::env::var("KEYWAY_TEST_POSTGRES_URL").expect("KEYWAY_TEST_POSTGRES_URL: run the tests through scripts/test.sh");
    let scratch = Scratch::new("serve-pg-down");
    let cluster = process::PrivatePostgres::start(&scratch);
    let url = cluster.url.clone();
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
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
    let seen_503 = || seen.lock().expect("seen").keys().any(|k| k.ends_with(" 503"));
    let load = {
        let api = api.clone();
        let paths = [format!("/v1/connections/{connection}"), format!("/v1/connections/{connection}/token")];
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let seen = seen.clone();
        let task = tokio::spawn(async move {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                for path in &paths {
                    let (status, body) = api.call(Method::GET, path, None).await;
                    let code = body["code"].as_str().unwrap_or("").to_owned();
                    assert!(
                        status == 200 || (status == 503 && code == "store_unavailable"),
                        "{path} during the outage: {status} {body}"
                    );
                    *seen.lock().expect("seen").entry(format!("{path} {status}")).or_default() += 1;
                }
                // Paces the load; nothing waits on it.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        (stop, task)
    };
    cluster.stop();
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
    // A token read checks its row's current version in the database first (one truth across
    // instances), so without the database it is a 503 too, and nothing is refreshed.
    let (status, problem) = api.call(Method::GET, &format!("/v1/connections/{connection}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (503, Some("store_unavailable")), "{problem}");
    assert_eq!(provider.counts().grant("refresh_token"), 0, "no refresh without the database to keep it");

    // The load meets the outage before it ends (or has stopped on a wrong answer, shown below).
    keyway_testkit::wait_until("the load to meet the outage", LIMIT, || async { seen_503() || load.1.is_finished() })
        .await;

    cluster.start_again();
    keyway_testkit::wait_until("ready again once the database is back", LIMIT, || async {
        api.call(Method::GET, "/readyz", None).await.0 == 200
    })
    .await;
    load.0.store(true, std::sync::atomic::Ordering::SeqCst);
    load.1.await.expect("the load ran");
    assert!(seen_503(), "the load saw the outage");
    eprintln!("serve_multi: answers under load through the outage: {:?}", seen.lock().expect("seen"));
    let view = api.expect(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    assert_eq!(view["state"], "active");
    let refreshed = api.expect(Method::POST, &format!("/v1/connections/{connection}/refresh"), None, 200).await;
    assert_ne!(refreshed["access_token"], token);
    assert_eq!(provider.counts().grant("refresh_token"), 1);
    // A holds the connection in memory from before the restart; a delete on another instance
    // now is still honoured by A on its next answer.
    let other = Server::start(&profiles, &url, &args, &scratch.path().join("serve-b.log"));
    let b = Api::new(&other.url, &api.key);
    b.expect(Method::DELETE, &format!("/v1/connections/{connection}"), None, 200).await;
    let (status, problem) = api.call(Method::GET, &format!("/v1/connections/{connection}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")), "{problem}");
    drop(other);
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
    // Due on both; A's is the stored token, the one the provider will see refreshed.
    due_everywhere(&provider, &[api_b.clone(), api_a.clone()], &connection).await;

    // A's refresh reaches the provider, which holds it (before or after rotating) far longer
    // than the test; A dies meanwhile.
    let hold = Duration::from_secs(600);
    let fault = match died {
        Died::BeforeTheProvider => keyway_testkit::Fault::Delay(hold),
        Died::AfterTheProviderRotated => keyway_testkit::Fault::DelayAnswer(hold),
    };
    provider.inject_faults(keyway_testkit::Endpoint::Token, [fault]);
    let token_requests = provider.counts().token;
    let earlier_requests = provider.requests().len();
    let path = format!("/v1/connections/{connection}/token");
    let stuck = {
        let api_a = api_a.clone();
        let path = path.clone();
        tokio::spawn(
            async move { api_a.http.get(format!("{}{path}", api_a.base)).bearer_auth(&api_a.key).send().await },
        )
    };
    keyway_testkit::wait_until("A's refresh to reach the provider", LIMIT, || async {
        provider.counts().token > token_requests
    })
    .await;
    // A holds the lease: B may take over only once it has lapsed.
    let (owner, lease_until) = lease(&db, &connection);
    assert!(owner.is_some(), "A's refresh holds the lease");
    a.kill();
    keyway_testkit::wait_until("A's call to fail with A", LIMIT, || async { stuck.is_finished() }).await;
    // Whatever became of A's held request, the provider is done with it (A's connection is gone).
    keyway_testkit::wait_until("the provider to drop A's request", LIMIT, || async { provider.in_flight() == 0 }).await;

    // B waits for A's lease to lapse, then takes over.
    let (status, answer) = api_b.call(Method::GET, &path, None).await;
    // The refreshes since the fault: A's, then B's.
    let takeover = provider
        .requests()
        .into_iter()
        .skip(earlier_requests)
        .filter(|r| r.form_value("grant_type") == Some("refresh_token"))
        .nth(1)
        .unwrap_or_else(|| panic!("B's refresh never reached the provider: {status} {answer}"));
    assert!(
        takeover.received_at.as_secs() > lease_until,
        "B refreshed at {:?}, before A's lease ended at {lease_until}",
        takeover.received_at
    );
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
    eprintln!(
        "serve_multi: {died:?}: B refreshed at {} s, after A's lease ended at {lease_until} s: {status}",
        takeover.received_at.as_secs()
    );
    drop(b);
}

/// The refresh lease on `connection` in `db`: its owner and the second it ends.
fn lease(db: &str, connection: &str) -> (Option<String>, u64) {
    let sql = format!(
        "SELECT coalesce(lease_owner, ''), coalesce(lease_until, 0) FROM connections WHERE id = '{connection}'"
    );
    let out = std::process::Command::new("psql")
        .args([db, "-v", "ON_ERROR_STOP=1", "-qAtF", " ", "-c", &sql])
        .output()
        .expect("psql runs (Debian's postgresql-client)");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let (owner, until) = text.trim().rsplit_once(' ').unwrap_or_else(|| panic!("a lease row: {text:?}"));
    let until = until.parse().unwrap_or_else(|e| panic!("lease_until {until:?}: {e}"));
    ((!owner.is_empty()).then(|| owner.to_owned()), until)
}
