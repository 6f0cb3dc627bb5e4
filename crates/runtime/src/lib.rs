//! keyway's runtime: what a service embeds to connect its tenants.
//!
//! - [`Registry`] loads a directory of profiles once at startup, validates every one, and
//!   shares them as `Arc<Profile>`; a reload builds a new registry beside the one in use.
//! - [`Connector`] is one profile plus one tenant's [`ConnectorConfig`], checked with the
//!   validator's connection checks, with its endpoints rendered. It runs the flows:
//!   authorization URL (state bound to a session, PKCE S256), code exchange, refresh,
//!   revoke, introspect, client credentials, JWT bearer and the device flow.
//! - Every provider error is matched against the profile's error map, else against the
//!   standard OAuth codes (RFC 6749, 6750, 7009, 8628), into a [`Diagnosis`]: reauthorize,
//!   retry later, fix configuration, client bug, or unknown, with the fix.
//! - A callback's `iss` is checked (RFC 9207) by [`check_issuer`] before any code exchange.
//! - [`TokenManager`] hands out valid access tokens: refresh ahead of expiry, one refresh in
//!   flight per connection, transient failures retried, rotated tokens persisted through a
//!   [`TokenStore`] before use.
//!
//! Secrets are [`secrecy::SecretString`]s: `Debug` redacts them and no error or log line
//! contains one.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use keyway_runtime::{Connector, ConnectorConfig, HttpClient, HttpOptions, Registry};
//! let registry = Registry::load("profiles")?;
//! let profile = registry.get("salesforce").ok_or("no such profile")?;
//! let config = ConnectorConfig {
//!     client_id: "3MVG9...".into(),
//!     client_secret: Some(std::env::var("SF_SECRET")?.into()),
//!     selection: keyway_runtime::Selection {
//!         redirect_uri: Some("https://app.example.com/oauth/callback".into()),
//!         actions: vec!["list_accounts".into()],
//!         ..Default::default()
//!     },
//!     ..Default::default()
//! };
//! let connector = Connector::new(profile, config, HttpClient::new(&HttpOptions::default())?)?;
//! let url = connector.begin_authorization("session-123")?;
//! # let _ = url; Ok(()) }
//! ```

mod api_paths;
mod callback_state;
mod clock;
mod connector;
mod errors;
mod fields;
mod http;
mod issuer;
mod manager;
mod registry;
mod standard_errors;
mod tokens;

pub use api_paths::{ActionMatcher, MAX_API_PATH, PathError, caller_segments, fill_action_path, join_under};
pub use callback_state::{STATE_TTL, check_state, state_expiry};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connector::{
    AuthorizationRequest, Callback, Connector, ConnectorConfig, DeviceAuthorization, DevicePolling, Introspection,
    RequestCredential, TokenKind,
};
pub use errors::{ConfigError, Diagnosis, DiagnosisKind, FlowError, ProviderError, StateError};
pub use fields::CredentialFields;
pub use http::{Destinations, HttpClient, HttpOptions, TransportError};
pub use issuer::{IssuerError, IssuerPolicy, check_issuer, origin_of};
pub use keyway_validate::Selection;
pub use manager::{
    AccessToken, Backoff, Current, DEFAULT_CAPACITY, FileTokenStore, MemoryTokenStore, RefreshClaim, RefreshPolicy,
    Stamp, StoreError, StoreFuture, TokenError, TokenManager, TokenStore,
};
pub use registry::{LoadError, Registry, SharedRegistry};
pub use standard_errors::{StandardError, standard_codes, standard_error};
pub use tokens::{ExpirySource, GrantUsed, MAX_TOKEN_SET_BYTES, TokenOrigin, TokenSet};
