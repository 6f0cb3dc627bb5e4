//! The runtime's hot paths:
//! - building an authorization URL (fresh state and PKCE pair, scopes, extra parameters);
//! - a cached access-token lookup in a manager holding 10,000 connections;
//! - the same lookup from many tasks at once.
//!
//!   cargo bench -p keyway-runtime --bench tokens
//!
//! No network: the profile is the bundled Salesforce profile, tokens are installed directly.

use divan::{Bencher, black_box};
use keyway_runtime::{
    Connector, ConnectorConfig, HttpClient, HttpOptions, MemoryTokenStore, RefreshPolicy, Registry, SystemClock,
    TokenManager, TokenSet,
};
use std::future::Future as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn main() {
    divan::main();
}

const CONNECTIONS: usize = 10_000;

struct Fixture {
    connector: Arc<Connector>,
    manager: Arc<TokenManager>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let registry = match Registry::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let profile = registry.get("salesforce-service-cloud").expect("bundled profile");
        let config = ConnectorConfig {
            client_id: "3MVG9bench".into(),
            client_secret: Some("bench-secret".to_owned().into()),
            selection: keyway_runtime::Selection {
                redirect_uri: Some("https://app.example.com/oauth/callback".into()),
                actions: ["create_case", "list_cases", "publish_knowledge_article"].map(str::to_owned).to_vec(),
                parameters: [("my_domain".to_owned(), "acme.my.salesforce.com".to_owned())].into_iter().collect(),
                ..Default::default()
            },
            ..ConnectorConfig::default()
        };
        let http = HttpClient::new(&HttpOptions::default()).expect("client");
        let connector = Arc::new(Connector::new(profile, config, http).expect("connector"));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let manager = Arc::new(TokenManager::new(
            Arc::new(MemoryTokenStore::default()),
            Arc::new(SystemClock),
            RefreshPolicy::default(),
        ));
        let far = keyway_runtime::Clock::now(&SystemClock) + 86_400;
        runtime.block_on(async {
            for i in 0..CONNECTIONS {
                let tokens: TokenSet = serde_json::from_value(serde_json::json!({
                    "access_token": format!("00D!access-{i}"),
                    "refresh_token": format!("refresh-{i}"),
                    "token_type": "Bearer",
                    "scopes": ["api", "refresh_token"],
                    "expires_at": far,
                    "expiry_source": "introspection",
                    "grant": "authorization_code",
                }))
                .expect("token set");
                manager.insert(&format!("tenant-{i}"), connector.clone(), tokens).await.expect("insert");
            }
        });
        Fixture { connector, manager, runtime }
    })
}

#[divan::bench]
fn authorization_url(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| black_box(f.connector.authorization_request().expect("url")));
}

#[divan::bench]
fn begin_authorization_with_state(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| black_box(f.connector.begin_authorization("session").expect("url")));
}

/// One cached lookup, driven by a current-thread executor (a poll of a ready future).
#[divan::bench]
fn cached_access_token(bencher: Bencher) {
    let f = fixture();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut i = 0usize;
    bencher.bench_local(|| {
        i = (i + 7919) % CONNECTIONS;
        let id = format!("tenant-{i}");
        let mut lookup = std::pin::pin!(f.manager.access_token(&id));
        match lookup.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(token) => black_box(token.expect("fresh")),
            std::task::Poll::Pending => panic!("a cached token never waits"),
        }
    });
}

/// 1,000 lookups spread over 100 tasks on two worker threads.
#[divan::bench(sample_count = 30)]
fn cached_access_token_100_tasks(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| {
        f.runtime.block_on(async {
            let tasks: Vec<_> = (0..100)
                .map(|t| {
                    let manager = f.manager.clone();
                    tokio::spawn(async move {
                        for k in 0..10 {
                            let id = format!("tenant-{}", (t * 97 + k * 13) % CONNECTIONS);
                            black_box(manager.access_token(&id).await.expect("fresh"));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        })
    });
}
