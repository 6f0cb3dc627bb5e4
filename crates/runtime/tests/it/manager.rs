//! The token manager against the test provider: refresh on time, single flight, retries,
//! rotation persisted before use, and reauthorization.

use crate::support;

use keyway_runtime::{
    DiagnosisKind, FileTokenStore, MemoryTokenStore, RefreshPolicy, StoreError, StoreFuture, TokenError, TokenManager,
    TokenSet, TokenStore,
};
use keyway_testkit::{Endpoint, Fault, ProviderConfig};
use secrecy::ExposeSecret;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::World;

fn policy() -> RefreshPolicy {
    RefreshPolicy {
        skew: Duration::from_secs(300),
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..RefreshPolicy::default()
    }
}

/// A store that remembers every refresh token it was asked to save, in order.
#[derive(Debug, Default)]
struct RecordingStore {
    inner: MemoryTokenStore,
    saved_refresh_tokens: Mutex<Vec<String>>,
    fail_next: Mutex<u32>,
}

impl TokenStore for RecordingStore {
    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>> {
        self.inner.load(connection)
    }

    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()> {
        {
            let mut fail = self.fail_next.lock().expect("lock");
            if *fail > 0 {
                *fail -= 1;
                return Box::pin(async { Err(StoreError("disk full".to_owned())) });
            }
        }
        if let Some(rt) = &tokens.refresh_token {
            self.saved_refresh_tokens.lock().expect("lock").push(rt.expose_secret().to_owned());
        }
        self.inner.save(connection, tokens)
    }

    fn remove<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, ()> {
        self.inner.remove(connection)
    }
}

async fn connected(world: &World, store: Arc<dyn TokenStore>) -> TokenManager {
    let connector = Arc::new(world.connector(world.config()));
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let manager = TokenManager::new(store, world.clock.clone(), policy());
    manager.insert("tenant-1", connector, tokens).await.expect("insert");
    manager
}

#[tokio::test]
async fn tokens_without_expires_in_are_refreshed_on_time() {
    let world = World::start(ProviderConfig::default()).await;
    let manager = connected(&world, Arc::new(MemoryTokenStore::default())).await;
    let first = manager.access_token("tenant-1").await.expect("token");
    // An hour in: still the same token, no refresh.
    world.advance(Duration::from_secs(3600));
    let same = manager.access_token("tenant-1").await.expect("token");
    assert_eq!(same.token.expose_secret(), first.token.expose_secret());
    assert_eq!(world.provider.counts().grant("refresh_token"), 0);
    // 1 h 56 min in: within the 5-minute skew of the 2-hour session, so it refreshes.
    world.advance(Duration::from_secs(56 * 60));
    let fresh = manager.access_token("tenant-1").await.expect("token");
    assert_ne!(fresh.token.expose_secret(), first.token.expose_secret());
    assert_eq!(world.provider.counts().grant("refresh_token"), 1);
    // The new token's expiry was learned by introspection again.
    assert!(fresh.expires_at.expect("expiry") >= world.clock_now() + 7000);
}

#[tokio::test]
async fn a_hundred_callers_on_an_expired_token_cause_one_refresh() {
    let world = World::start(ProviderConfig::default()).await;
    let manager = Arc::new(connected(&world, Arc::new(MemoryTokenStore::default())).await);
    world.advance(Duration::from_secs(3 * 3600));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(
                async move { manager.access_token("tenant-1").await.map(|t| t.token.expose_secret().to_owned()) },
            )
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.expect("task").expect("token"));
    }
    assert_eq!(world.provider.counts().grant("refresh_token"), 1, "exactly one refresh request");
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the refreshed token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_callers_on_two_threads_cause_one_refresh() {
    let world = World::start(ProviderConfig::default()).await;
    let manager = Arc::new(connected(&world, Arc::new(MemoryTokenStore::default())).await);
    world.advance(Duration::from_secs(3 * 3600));
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (manager, barrier) = (manager.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                manager.access_token("tenant-1").await.is_ok()
            })
        })
        .collect();
    for caller in callers {
        assert!(caller.await.expect("task"));
    }
    assert_eq!(world.provider.counts().grant("refresh_token"), 1);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_then_recover() {
    // A timeout that leaves every normal answer room on a loaded machine, and a delay fault
    // far longer than it: which request times out never depends on the machine's speed.
    let world = World::start_with(
        ProviderConfig::default(),
        keyway_runtime::HttpOptions { timeout: Duration::from_secs(2), ..Default::default() },
    )
    .await;
    let manager = connected(&world, Arc::new(MemoryTokenStore::default())).await;
    world.advance(Duration::from_secs(3 * 3600));
    world.provider.inject_faults(
        Endpoint::Token,
        [Fault::Status(500), Fault::Delay(Duration::from_secs(600)), Fault::Status(503)],
    );
    manager.access_token("tenant-1").await.expect("recovered after retries");
    assert_eq!(world.provider.counts().grant("refresh_token"), 4, "three failures, then success");
}

#[tokio::test]
async fn retries_give_up_after_max_attempts() {
    let world = World::start(ProviderConfig::default()).await;
    let manager = connected(&world, Arc::new(MemoryTokenStore::default())).await;
    world.advance(Duration::from_secs(3 * 3600));
    world.provider.inject_faults(Endpoint::Token, vec![Fault::Status(500); 6]);
    let err = manager.access_token("tenant-1").await.expect_err("gives up");
    assert!(matches!(err, TokenError::Flow(ref e) if e.is_transient()), "{err}");
    assert_eq!(world.provider.counts().grant("refresh_token"), 4);
}

#[tokio::test]
async fn invalid_grant_is_not_retried_and_marks_the_connection() {
    let world = World::start(ProviderConfig::default()).await;
    let manager = connected(&world, Arc::new(MemoryTokenStore::default())).await;
    // The user revokes access at the provider.
    let tokens = manager.tokens("tenant-1").expect("tokens");
    let connector = world.connector(world.config());
    connector
        .revoke(tokens.refresh_token.as_ref().expect("refresh token"), keyway_runtime::TokenKind::Refresh)
        .await
        .expect("revoke");
    world.advance(Duration::from_secs(3 * 3600));
    let err = manager.access_token("tenant-1").await.expect_err("reauthorize");
    let TokenError::NeedsReauthorization(Some(d)) = &err else { panic!("{err}") };
    assert_eq!(d.kind, DiagnosisKind::Reauthorize);
    assert_eq!(d.rule.as_deref(), Some("refresh_token_expired"));
    assert_eq!(world.provider.counts().grant("refresh_token"), 1, "not retried");
    // Later callers are told at once, without a request.
    assert!(matches!(manager.access_token("tenant-1").await, Err(TokenError::NeedsReauthorization(Some(_)))));
    assert_eq!(world.provider.counts().grant("refresh_token"), 1);
    assert!(manager.needs_reauthorization("tenant-1").is_some());
}

#[tokio::test]
async fn rotation_over_ten_refreshes_persists_every_token_before_it_is_used() {
    let world = World::start(ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let store = Arc::new(RecordingStore::default());
    let manager = connected(&world, store.clone()).await;
    for _ in 0..10 {
        world.advance(Duration::from_secs(3 * 3600));
        manager.access_token("tenant-1").await.expect("refresh");
    }
    let saved = store.saved_refresh_tokens.lock().expect("lock").clone();
    assert_eq!(saved.len(), 11, "the first token and ten rotated ones");
    let mut distinct = saved.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 11, "every refresh rotated the token");
    // Each refresh used the token saved before it: nothing the provider issued was lost.
    let used: Vec<String> = world
        .provider
        .requests()
        .into_iter()
        .filter(|r| r.form_value("grant_type") == Some("refresh_token"))
        .filter_map(|r| r.form_value("refresh_token").map(str::to_owned))
        .collect();
    assert_eq!(used, saved[..10]);
}

#[tokio::test]
async fn a_crash_after_rotation_loses_nothing_with_the_file_store() {
    let world = World::start(ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let dir = support::TempDir::new("store");
    {
        let manager = connected(&world, Arc::new(FileTokenStore::new(dir.path()).expect("store"))).await;
        for _ in 0..3 {
            world.advance(Duration::from_secs(3 * 3600));
            manager.access_token("tenant-1").await.expect("refresh");
        }
        // The process dies here: the manager is dropped without any shutdown step.
    }
    let manager =
        TokenManager::new(Arc::new(FileTokenStore::new(dir.path()).expect("store")), world.clock.clone(), policy());
    assert!(manager.open("tenant-1", Arc::new(world.connector(world.config()))).await.expect("open"));
    world.advance(Duration::from_secs(3 * 3600));
    manager.access_token("tenant-1").await.expect("the persisted rotated token still refreshes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let mode = entry.expect("entry").metadata().expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "token files are private");
        }
    }
}

#[tokio::test]
async fn tokens_that_could_not_be_saved_are_not_handed_out_and_not_refreshed_twice() {
    let world = World::start(ProviderConfig { rotate_refresh_tokens: true, ..ProviderConfig::default() }).await;
    let store = Arc::new(RecordingStore::default());
    let manager = connected(&world, store.clone()).await;
    world.advance(Duration::from_secs(3 * 3600));
    *store.fail_next.lock().expect("lock") = 1;
    let err = manager.access_token("tenant-1").await.expect_err("save fails");
    assert!(matches!(err, TokenError::Store(_)), "{err}");
    // The next call saves the refreshed set instead of refreshing with the dead token.
    manager.access_token("tenant-1").await.expect("saved now");
    assert_eq!(world.provider.counts().grant("refresh_token"), 1);
    assert_eq!(store.saved_refresh_tokens.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn client_credentials_connections_renew_by_running_the_grant_again() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = Arc::new(world.connector(world.config()));
    let tokens = connector.client_credentials().await.expect("tokens");
    let manager = TokenManager::new(Arc::new(MemoryTokenStore::default()), world.clock.clone(), policy());
    manager.insert("svc", connector, tokens).await.expect("insert");
    world.advance(Duration::from_secs(3 * 3600));
    manager.access_token("svc").await.expect("renewed");
    assert_eq!(world.provider.counts().grant("client_credentials"), 2);
}

#[test]
fn backoff_is_capped_and_jittered() {
    let policy = RefreshPolicy {
        skew: Duration::ZERO,
        max_attempts: 10,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        ..RefreshPolicy::default()
    };
    for attempt in 1..10 {
        let d = policy.backoff(attempt);
        let full = (Duration::from_millis(100) * 2u32.pow(attempt - 1)).min(Duration::from_secs(1));
        assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} vs {full:?}");
    }
    let samples: std::collections::HashSet<_> = (0..20).map(|_| policy.backoff(5)).collect();
    assert!(samples.len() > 1, "jittered");
}
