//! Shared set-up: the test provider on 127.0.0.1, and the bundled Salesforce profile
//! pointed at it by a child profile that adds a `local` environment.
#![allow(dead_code)]

use keyway_runtime::{Connector, ConnectorConfig, HttpClient, HttpOptions, ManualClock, Registry};
use keyway_testkit::{ProviderConfig, TestProvider};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use keyway_testkit::scratch::TempDir;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled Salesforce profiles and the test provider's child profile, in a new directory.
pub fn profiles_dir(host: &str) -> TempDir {
    let dir = TempDir::new("profiles");
    keyway_testkit::profiles::write_profiles(dir.path(), host).expect("write profiles");
    dir
}

pub const REDIRECT: &str = "http://127.0.0.1:7777/oauth/callback";

/// The provider, a registry with the local profile, and a clock shared with the connector.
pub struct World {
    pub provider: TestProvider,
    pub registry: Registry,
    pub clock: Arc<ManualClock>,
    pub http: HttpClient,
    _dir: TempDir,
}

impl World {
    pub async fn start(config: ProviderConfig) -> World {
        World::start_with(config, HttpOptions { timeout: Duration::from_secs(5), ..HttpOptions::default() }).await
    }

    pub async fn start_with(config: ProviderConfig, options: HttpOptions) -> World {
        let provider = TestProvider::start(config).await.expect("test provider starts");
        let dir = profiles_dir(&provider.host());
        let registry = match Registry::load(dir.path()) {
            Ok(r) => r,
            Err(e) => panic!("profiles load: {e}: {:#?}", e.diagnostics),
        };
        let http = HttpClient::new(&options).expect("http client");
        World { provider, registry, clock: Arc::new(ManualClock::default()), http, _dir: dir }
    }

    /// A connection's configuration with the provider's credentials.
    pub fn config(&self) -> ConnectorConfig {
        ConnectorConfig {
            client_id: "3MVG9testkit".to_owned(),
            client_secret: Some("testkit-secret".to_owned().into()),
            selection: keyway_runtime::Selection {
                environment: Some("local".to_owned()),
                redirect_uri: Some(REDIRECT.to_owned()),
                ..Default::default()
            },
            ..ConnectorConfig::default()
        }
    }

    pub fn connector(&self, config: ConnectorConfig) -> Connector {
        let profile = self.registry.get("salesforce-local").expect("local profile");
        match Connector::new(profile, config, self.http.clone()) {
            Ok(c) => c.with_clock(self.clock.clone()),
            Err(e) => panic!("connector: {e}"),
        }
    }

    /// The connector's clock, in seconds.
    pub fn clock_now(&self) -> u64 {
        keyway_runtime::Clock::now(&*self.clock)
    }

    /// Moves the connector's and the provider's clocks together.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.provider.advance_clock(by);
    }

    /// Runs the authorization code flow as `user`, playing the browser.
    pub async fn authorize(
        &self,
        connector: &Connector,
        user: &str,
    ) -> Result<keyway_runtime::TokenSet, keyway_runtime::FlowError> {
        let session = format!("session-{user}");
        let url = connector.begin_authorization(&session).expect("authorization url");
        let location = self.provider.browse(&url, user).await.expect("provider redirects");
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        connector.complete_authorization(&session, &keyway_runtime::Callback::from_query(query)).await
    }
}
