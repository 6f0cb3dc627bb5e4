//! One truth across `keyway serve` processes: what one instance commits, another honours on
//! its next answer, though it holds the connection in memory. On one PostgreSQL database (the
//! one README's test command starts), and with two processes on one SQLite file.

use crate::process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server};
use reqwest::Method;
use std::time::Duration;

const USER: &str = "coherent@example.com";

/// `n` instances on `db` against `provider` (background refresher off), and their APIs.
async fn instances(scratch: &Scratch, db: &str, provider: &TestProvider, n: usize) -> (Vec<Server>, Vec<Api>) {
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    let keys = process::key_file(scratch.path()).display().to_string();
    let args = ["--keys-file", keys.as_str(), "--refresh-every", "0"];
    let servers: Vec<Server> =
        (0..n).map(|i| Server::start(&profiles, db, &args, &scratch.path().join(format!("serve-{i}.log")))).collect();
    let key = process::api_key(db);
    let apis = servers.iter().map(|s| Api::new(&s.url, &key)).collect();
    (servers, apis)
}

/// Two instances on `db` against `provider`, and their APIs.
async fn two_instances(scratch: &Scratch, db: &str, provider: &TestProvider) -> (Vec<Server>, Api, Api) {
    let (servers, mut apis) = instances(scratch, db, provider, 2).await;
    let b = apis.pop().expect("B");
    let a = apis.pop().expect("A");
    (servers, a, b)
}

/// Deleted, revoked or reconfigured on B: A follows on its next answer.
async fn b_commits_a_follows(db: &str, tag: &str) {
    let scratch = Scratch::new(tag);
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let (_servers, a, b) = two_instances(&scratch, db, &provider).await;
    let integration = process::create_integration(&a).await;

    let deleted = process::import_connection(&a, &provider, &integration, USER).await;
    assert_eq!(a.call(Method::GET, &format!("/v1/connections/{deleted}/token"), None).await.0, 200, "A caches it");
    b.expect(Method::DELETE, &format!("/v1/connections/{deleted}"), None, 200).await;
    let (status, problem) = a.call(Method::GET, &format!("/v1/connections/{deleted}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")), "deleted on B: {problem}");

    let revoked = process::import_connection(&a, &provider, &integration, USER).await;
    assert_eq!(a.call(Method::GET, &format!("/v1/connections/{revoked}/token"), None).await.0, 200);
    b.expect(Method::POST, &format!("/v1/connections/{revoked}/revoke"), None, 200).await;
    let (status, problem) = a.call(Method::GET, &format!("/v1/connections/{revoked}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("connection_revoked")), "revoked on B: {problem}");

    // Reconnected through B's connect page: A hands out the new grant's token at once.
    let relinked = process::link_through_connect_page(&a, &provider, &integration, USER, None).await;
    let old = a.token(&relinked).await["access_token"].clone();
    let again = process::link_through_connect_page(&b, &provider, &integration, USER, Some(&relinked)).await;
    assert_eq!(again, relinked, "a reconnect keeps the id");
    let new = b.token(&relinked).await["access_token"].clone();
    assert_ne!(new, old, "the reconnect is a new grant");
    assert_eq!(a.token(&relinked).await["access_token"], new, "A hands out the new grant's token");

    // The app's secret changes on B and at the provider: A's next refresh sends the new one.
    let kept = process::import_connection(&a, &provider, &integration, USER).await;
    assert_eq!(a.call(Method::GET, &format!("/v1/connections/{kept}/token"), None).await.0, 200);
    b.expect(
        Method::PATCH,
        &format!("/v1/integrations/{integration}"),
        Some(serde_json::json!({"client_secret": "rotated-secret"})),
        200,
    )
    .await;
    provider.update_config(|c| c.client_secret = "rotated-secret".into());
    let (status, body) = a.call(Method::POST, &format!("/v1/connections/{kept}/refresh"), None).await;
    assert_eq!(status, 200, "A refreshed with the secret B stored: {body}");

    // A token-exchange connection, read (and so cached) on A: reconnected through B with
    // another user's credentials, A hands out the token of the new ones; deleted on B, A
    // answers 404.
    let exchange =
        b.expect(Method::POST, "/v1/integrations", Some(serde_json::json!({"profile": "testkit-exchange"})), 201).await;
    let config = provider.config();
    let fields = serde_json::json!({"username": config.basic_user, "password": config.basic_password});
    let linked = a
        .expect(
            Method::POST,
            "/v1/connections",
            Some(serde_json::json!({"integration_id": exchange["id"], "end_user": {"id": "u"}, "fields": fields})),
            201,
        )
        .await;
    let id = linked["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/connections/{id}/credentials");
    let before = a.expect(Method::GET, &path, None, 200).await["headers"]["authorization"].clone();
    let session = b
        .expect(
            Method::POST,
            "/v1/connect/sessions",
            Some(serde_json::json!({"end_user": {"id": "u"}, "connection_id": id})),
            201,
        )
        .await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser");
    let opened = browser.get(session["connect_url"].as_str().expect("connect_url")).send().await.expect("open");
    assert_eq!(opened.status().as_u16(), 303, "the token is traded for a cookie");
    let form = [("field.username", config.basic_user.as_str()), ("field.password", config.basic_password.as_str())];
    let integration_id = exchange["id"].as_str().expect("integration");
    let done = browser.post(format!("{}/connect/{integration_id}", b.base)).form(&form).send().await.expect("form");
    assert_eq!(done.status().as_u16(), 200, "the done page");
    assert!(done.text().await.expect("page").contains(&id), "reconnected on B, same id");
    let after = a.expect(Method::GET, &path, None, 200).await["headers"]["authorization"].clone();
    assert_ne!(after, before, "A hands out the reconnect's token, not the one it held");
    assert_eq!(after, b.expect(Method::GET, &path, None, 200).await["headers"]["authorization"]);
    b.expect(Method::DELETE, &format!("/v1/connections/{id}"), None, 200).await;
    let (status, problem) = a.call(Method::GET, &path, None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")), "deleted on B: {problem}");

    // A worker's key, used on A, revoked by `keyway keys api revoke` (a third process): A and
    // B refuse it on its next request.
    let worker_key = process::api_key_with(db, &["--name", "worker", "--scope", "credentials:read"]);
    let worker = Api::new(&a.base, &worker_key);
    assert_eq!(worker.call(Method::GET, &format!("/v1/connections/{kept}/token"), None).await.0, 200);
    let id = worker_key.strip_prefix("kwk_").and_then(|k| k.split('_').next()).expect("key id");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["keys", "api", "revoke", "--db", db, id])
        .output()
        .expect("keys api revoke");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for hub in [&a.base, &b.base] {
        let (status, problem) =
            Api::new(hub, &worker_key).call(Method::GET, &format!("/v1/connections/{kept}/token"), None).await;
        assert_eq!(status, 401, "revoked by the CLI, refused by {hub}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_postgresql_follow_each_others_commits() {
    let db = process::postgres_database("coherence").await;
    b_commits_a_follows(&db, "serve-coherence-pg").await;
}

/// Two processes on one SQLite file work correctly too (each checks the file before every
/// answer, and refreshes take the row's lease).
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_sqlite_file_follow_each_others_commits() {
    let scratch = Scratch::new("serve-coherence-sqlite-db");
    let db = scratch.sqlite();
    b_commits_a_follows(&db, "serve-coherence-sqlite").await;
}

/// PostgreSQL restarts while A holds connections in memory: once it is back, a delete
/// committed through B is honoured by A on its next answer (A's memory is never trusted over
/// the database, whether or not its connections to it survived).
#[tokio::test(flavor = "multi_thread")]
async fn after_postgresql_restarts_an_instance_with_cached_connections_honours_a_delete() {
    let scratch = Scratch::new("serve-coherence-pg-restart");
    let pg = process::PrivatePostgres::start(&scratch);
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let (_servers, a, b) = two_instances(&scratch, &pg.url, &provider).await;
    let integration = process::create_integration(&a).await;
    let deleted = process::import_connection(&a, &provider, &integration, USER).await;
    let kept = process::import_connection(&a, &provider, &integration, USER).await;
    for id in [&deleted, &kept] {
        a.token(id).await;
    }

    pg.restart();
    for api in [&a, &b] {
        let ready = format!("{}/readyz", api.base);
        keyway_testkit::wait_until("the instance reaches the restarted database", Duration::from_secs(60), || async {
            api.http.get(&ready).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
    }
    // The first statement on a pool whose sessions were cut may fail once; a delete that did
    // not happen is not one to test.
    keyway_testkit::wait_until("B deletes the connection", Duration::from_secs(30), || async {
        b.call(Method::DELETE, &format!("/v1/connections/{deleted}"), None).await.0 == 200
    })
    .await;
    let (status, problem) = a.call(Method::GET, &format!("/v1/connections/{deleted}/token"), None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")), "deleted on B: {problem}");
    assert_eq!(a.token(&kept).await["connection_id"], kept.as_str(), "the other connection is served");
}

/// Three processes on one PostgreSQL, 10-second access tokens whose refresh tokens rotate,
/// readers on all three for 50 seconds: about one refresh per lifetime (5 ± 1), every answer
/// a token that has not expired, and the refresh-token family alive throughout. (The
/// in-process suite runs the same herd over five simulated minutes of 60-second tokens.)
#[tokio::test(flavor = "multi_thread")]
async fn three_processes_refresh_once_per_token_lifetime_under_a_herd() {
    const LIFETIME: u64 = 10;
    let scratch = Scratch::new("serve-coherence-herd");
    let db = process::postgres_database("herd").await;
    let provider = TestProvider::start(ProviderConfig {
        rotate_refresh_tokens: true,
        expires_in: Some(LIFETIME),
        access_token_lifetime: Duration::from_secs(LIFETIME),
        ..ProviderConfig::default()
    })
    .await
    .expect("provider");
    let (_servers, apis) = instances(&scratch, &db, &provider, 3).await;
    let integration = process::create_integration(&apis[0]).await;
    let id = process::link_through_connect_page(&apis[0], &provider, &integration, USER, None).await;
    let before = provider.counts().grant("refresh_token");
    let started = std::time::Instant::now();
    let mut waves = 0;
    while started.elapsed() < Duration::from_secs(5 * LIFETIME) {
        let mut reads = tokio::task::JoinSet::new();
        for i in 0..150 {
            let api = apis[i % apis.len()].clone();
            let id = id.clone();
            reads.spawn(async move { api.call(Method::GET, &format!("/v1/connections/{id}/token"), None).await });
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        for (status, body) in reads.join_all().await {
            assert_eq!(status, 200, "wave {waves}: {body}");
            let expires_at = body["expires_at"].as_u64().expect("expires_at");
            assert!(expires_at >= now, "wave {waves}: an expired token was handed out");
        }
        assert_eq!(provider.active_refresh_tokens(USER), 1, "wave {waves}: the family is alive");
        waves += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refreshes = provider.counts().grant("refresh_token") - before;
    assert!(waves > 100, "readers kept reading: {waves} waves");
    assert!((4..=6).contains(&refreshes), "50 s of 10-second tokens: {refreshes} refreshes, not 5 ± 1");
}
