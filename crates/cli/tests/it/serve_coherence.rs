//! One truth across `keyway serve` processes: what one instance commits, another honours on
//! its next answer, though it holds the connection in memory. On one PostgreSQL database (the
//! one README's test command starts), and with two processes on one SQLite file.

use crate::process;

use keyway_testkit::{ProviderConfig, TestProvider};
use process::{Api, Scratch, Server};
use reqwest::Method;

const USER: &str = "coherent@example.com";

/// Two instances on `db` against `provider`, and their APIs.
async fn two_instances(scratch: &Scratch, db: &str, provider: &TestProvider) -> (Vec<Server>, Api, Api) {
    let profiles = scratch.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, &provider.host()).expect("profiles");
    let keys = process::key_file(scratch.path()).display().to_string();
    let args = ["--keys-file", keys.as_str(), "--refresh-every", "0"];
    let servers: Vec<Server> =
        (0..2).map(|i| Server::start(&profiles, db, &args, &scratch.path().join(format!("serve-{i}.log")))).collect();
    let key = process::api_key(db);
    let (a, b) = (Api::new(&servers[0].url, &key), Api::new(&servers[1].url, &key));
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
