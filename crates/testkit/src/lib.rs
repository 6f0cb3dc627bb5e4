//! A local, in-process OAuth 2.0 provider that behaves like Salesforce, for keyway's end-to-end tests.
//!
//! [`TestProvider::start`] binds an axum server to `127.0.0.1:0` and serves Salesforce's paths:
//!
//! | path | what |
//! |---|---|
//! | `GET /services/oauth2/authorize` | web server flow (code, PKCE S256, `state`) |
//! | `POST /services/oauth2/token` | `authorization_code`, `refresh_token`, `client_credentials`, JWT bearer, device flow start (`response_type=device_code`) and poll (`grant_type=device`) |
//! | `POST /services/oauth2/revoke` | `token=` (access or refresh; a refresh token takes its access tokens with it) |
//! | `POST /services/oauth2/introspect` | `active`, `scope`, `client_id`, `username`, `sub`, `token_type`, `exp`, `iat`, `nbf` |
//! | `GET /services/oauth2/userinfo`, `GET /id/ORG/USER` | the user, for a valid bearer token |
//! | `/services/data/vNN.N/...` | the REST API, for a valid bearer token (else 401 `INVALID_SESSION_ID`): see below |
//! | `GET /.well-known/openid-configuration` | discovery document |
//!
//! Like Salesforce, it sends **no `expires_in`** (unless [`ProviderConfig::expires_in`] is set), an
//! `issued_at` string of milliseconds, `instance_url`, `id` and `signature`; error bodies are
//! `{"error", "error_description"}` JSON sent **without a `Content-Type`** (switch:
//! [`ProviderConfig::errors_without_content_type`]).
//!
//! # Switches ([`ProviderConfig`])
//! - `require_pkce`: authorize without `code_challenge` redirects `invalid_request` "missing required code challenge".
//! - `require_secret_on_refresh`: refresh without a secret answers 401 `invalid_client`.
//! - `rotate_refresh_tokens`: each refresh returns a new refresh token; reusing a rotated-out one
//!   revokes the whole family (current refresh token and its access tokens).
//! - `approvals_per_user` (5): the sixth approval of a user silently revokes the least recently used one,
//!   whose refresh then fails with `invalid_grant` "expired access/refresh token".
//! - `inactive_for_first`: the app is "not active yet": the first N token requests answer `invalid_client_id`.
//! - `client_credentials_user`, `jwt_public_key_pem`/`jwt_audience`, `device_interval`/`device_slow_down_polls`.
//!
//! # The REST API
//! Under `/services/data/vNN.N` (any version), for a live access token of this provider:
//!
//! | call | answer |
//! |---|---|
//! | `GET /` | the resources by version (the profile's connection test) |
//! | `POST /sobjects/{Object}` | 201 `{"id", "success": true, "errors": []}`: a JSON object of fields, stored |
//! | `GET /sobjects/{Object}/{id}` | the record: `attributes: {type, url}`, `Id`, its fields |
//! | `PATCH /sobjects/{Object}/{id}` | 204, the fields merged (names case-insensitive) |
//! | `DELETE /sobjects/{Object}/{id}` | 204; again: 404 `ENTITY_IS_DELETED` |
//! | `GET /sobjects`, `/sobjects/{Object}`, `/sobjects/{Object}/describe` | describe global, the object's summary, its describe |
//! | `GET /sobjects/{Parent}/{id}/{Relationship}` | child records (`Case/{id}/CaseComments`, ...) |
//! | `GET /query?q=SELECT f1, f2 FROM Object [WHERE F = 'v' [AND F != 1]...] [LIMIT n]` | `{"totalSize", "done": true, "records"}` |
//! | `GET /search?q=FIND {text} [IN ALL FIELDS] [RETURNING Object, ...]` | `{"searchRecords"}` (text fields, any case) |
//! | `GET /parameterizedSearch?q=text[&sobject=Object...][&fields=F1,F2]` | `{"searchRecords"}` |
//! | `GET /chatter/users/me`, `POST /chatter/feed-elements` | the token's user; a post stored as a `FeedItem` |
//! | `POST /actions/standard/publishKnowledgeArticles` | the listed `Knowledge__kav` versions become `PublishStatus: Online` |
//!
//! The objects are those the bundled profiles' actions use (`Account`, `Contact`, `Lead`,
//! `Opportunity`, `Task`, `User`, `FeedItem`, `Case`, `CaseComment`, `Entitlement`,
//! `Knowledge__kav`, `ServiceContract`, `WorkOrder`), each with its Salesforce key prefix (ids
//! are 18 characters with the case checksum; the 15-character form is accepted too). Errors are
//! Salesforce's `[{"message", "errorCode"}]`: 404 `NOT_FOUND` (unknown object, record or
//! resource), 400 `JSON_PARSER_ERROR`, `INVALID_FIELD`, `MALFORMED_QUERY`, `INVALID_TYPE`,
//! `MALFORMED_SEARCH`, 405 `METHOD_NOT_ALLOWED`. The calling user exists as a `User` record.
//! [`ProviderConfig::api_rate_limit`] caps calls per window of the provider's clock, answered
//! Salesforce's way (403 `REQUEST_LIMIT_EXCEEDED`) or a generic provider's (429 `Retry-After`).
//! Records are read and seeded with [`TestProvider::records`], [`TestProvider::record`] and
//! [`TestProvider::create_record`]; calls are counted by method and path ([`Counts::api_call`]).
//!
//! # Test controls
//! The provider has its own clock ([`TestProvider::advance_clock`]) used for every expiry; it counts and
//! records every request ([`TestProvider::counts`], [`TestProvider::requests`]); it can inject faults
//! (500s, delays, malformed JSON: [`TestProvider::inject_faults`]); it plays the user's browser
//! ([`TestProvider::browse`]) and the user approving a device ([`TestProvider::approve_device`]).
//! Tests wait for what they expect through [`wait_until`] (or [`wait_until_blocking`]): a
//! condition polled up to a limit, never a fixed sleep or a measured duration.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use keyway_testkit::{ProviderConfig, TestProvider};
//! let provider = TestProvider::start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() }).await?;
//! let token_url = format!("{}/services/oauth2/token", provider.base_url());
//! # let _ = token_url;
//! assert_eq!(provider.counts().token, 0);
//! # Ok(()) }
//! ```
//!
//! It logs nothing. All state sits behind one mutex, never held across an `.await`.

mod keyed;
pub mod profiles;
mod rest;
pub mod scratch;
mod server;
mod soql;
mod util;
mod wait;

pub use wait::{Satisfied, wait_until, wait_until_blocking};

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The organisation id every token of the test provider belongs to.
pub const ORG_ID: &str = "00D5g000004TESTAAA";

/// The username `browse` treats as "the user clicks Deny".
pub const DENY_USER: &str = "deny";

/// The user the authorize endpoint assumes when no `testkit_user` cookie is sent.
pub const DEFAULT_USER: &str = "user@example.com";

/// A running test provider. Dropping it shuts the server down.
pub struct TestProvider {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProvider").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProvider {
    /// Starts a provider on `127.0.0.1` with an ephemeral port. Must be called inside a tokio runtime.
    pub async fn start(config: ProviderConfig) -> std::io::Result<TestProvider> {
        TestProvider::start_on(0, config).await
    }

    /// Starts a provider on `127.0.0.1:port` (0: an ephemeral port).
    pub async fn start_on(port: u16, config: ProviderConfig) -> std::io::Result<TestProvider> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(config, format!("http://{addr}")));
        let app = server::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // Errors only when the listener breaks; the tests then see connection errors.
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestProvider { shared, addr, task })
    }

    /// `http://127.0.0.1:PORT`: the login host and the `instance_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `base_url` + `/services/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}{}", self.base_url(), server::AUTHORIZE_PATH)
    }

    /// `base_url` + `/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base_url(), server::TOKEN_PATH)
    }

    /// `base_url` + `/services/oauth2/revoke`.
    pub fn revoke_url(&self) -> String {
        format!("{}{}", self.base_url(), server::REVOKE_PATH)
    }

    /// `base_url` + `/services/oauth2/introspect`.
    pub fn introspect_url(&self) -> String {
        format!("{}{}", self.base_url(), server::INTROSPECT_PATH)
    }

    /// `base_url` + `/services/oauth2/userinfo`.
    pub fn userinfo_url(&self) -> String {
        format!("{}{}", self.base_url(), server::USERINFO_PATH)
    }

    /// `base_url` + `/services/data/v62.0`: the profiles' `api.base_url` for this provider.
    pub fn api_base_url(&self) -> String {
        format!("{}/services/data/{API_VERSION}", self.base_url())
    }

    /// The records of `object` (any case; empty for an unknown object) in creation order, each
    /// as `GET sobjects/{object}/{id}` answers it: `attributes`, `Id`, then its fields.
    pub fn records(&self, object: &str) -> Vec<serde_json::Value> {
        self.shared.lock().records.list(object, API_VERSION)
    }

    /// One record of `object` by id (15 or 18 characters), as `GET sobjects/{object}/{id}`
    /// answers it; `None` if there is none.
    pub fn record(&self, object: &str, id: &str) -> Option<serde_json::Value> {
        let wanted = id.get(..15)?;
        self.records(object)
            .into_iter()
            .find(|record| record["Id"].as_str().and_then(|stored| stored.get(..15)) == Some(wanted))
    }

    /// Seeds a record without any HTTP request (nothing is counted or recorded), with the checks
    /// of `POST sobjects/{object}`: `fields` a JSON object of field names to scalar values.
    /// Returns the new id, or why it was refused (an unknown object, bad fields, a full store).
    pub fn create_record(&self, object: &str, fields: serde_json::Value) -> Result<String, String> {
        self.shared.lock().records.create_from_value(object, fields)
    }

    /// A snapshot of the request counters.
    pub fn counts(&self) -> Counts {
        self.shared.lock().counts.clone()
    }

    /// Every request received so far, in order of arrival (recorded before any fault applies).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests the provider is handling right now: arrived, and neither answered nor
    /// dropped (a client that goes away mid-request ends its request too). Wait for 0 to know
    /// a held request ([`Fault::Delay`], [`Fault::DelayAnswer`]) is over, whatever became of it.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }

    /// Queues faults for `endpoint`: each is consumed, in order, by the next request to that endpoint.
    pub fn inject_faults(&self, endpoint: Endpoint, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.entry(endpoint).or_default().extend(faults);
    }

    /// The user approves a pending device authorization as `username`. `false` if `user_code` is
    /// unknown, expired, or no longer pending.
    pub fn approve_device(&self, user_code: &str, username: &str) -> bool {
        self.shared.lock().decide_device(user_code, Some(username))
    }

    /// The user denies a pending device authorization. `false` if `user_code` is unknown, expired,
    /// or no longer pending.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.shared.lock().decide_device(user_code, None)
    }

    /// Moves the provider's clock forward: token, code and device-code expiry, `issued_at`, `exp`,
    /// `iat`, JWT `exp` checks and device polling intervals all use it.
    pub fn advance_clock(&self, by: Duration) {
        let mut state = self.shared.lock();
        state.clock_offset = state.clock_offset.saturating_add(by);
    }

    /// The provider's current time, as a duration since the Unix epoch (system time plus every
    /// [`advance_clock`](Self::advance_clock)).
    pub fn now(&self) -> Duration {
        self.shared.lock().now()
    }

    /// The current configuration.
    pub fn config(&self) -> ProviderConfig {
        self.shared.lock().config.clone()
    }

    /// Changes the configuration of the running provider, e.g. to turn rotation on, rotate the
    /// client secret or make the app inactive again mid-test. Issued tokens stay as they are.
    pub fn update_config(&self, change: impl FnOnce(&mut ProviderConfig)) {
        let mut state = self.shared.lock();
        let mut config = state.config.clone();
        change(&mut config);
        state.set_config(config);
    }

    /// Mints tokens for `username` without any HTTP request (nothing is counted or recorded), as a
    /// successful code exchange with `scope` would: returns the token endpoint's JSON answer, with a
    /// refresh token (and a new approval) when `scope` includes `refresh_token` or `offline_access`.
    pub fn issue_tokens(&self, username: &str, scope: &str) -> serde_json::Value {
        self.shared.lock().issue_approved_value(username, scope)
    }

    /// An administrator revokes everything `username` holds: every approval (refresh token family)
    /// and every access token. Returns how many approvals were live.
    pub fn revoke_user_tokens(&self, username: &str) -> usize {
        self.shared.lock().revoke_user(username)
    }

    /// How many live refresh tokens (approvals) `username` has.
    pub fn active_refresh_tokens(&self, username: &str) -> usize {
        self.shared.lock().live_approvals(username)
    }

    /// Plays the browser: GETs `authorize_url` (which must point at this provider, host `127.0.0.1:PORT`
    /// or `localhost:PORT`) without following redirects, as the logged-in `username` (sent as the cookie
    /// `testkit_user`; the username [`DENY_USER`] clicks Deny). Returns the `Location` of the redirect,
    /// or `Err("STATUS BODY")` for any other answer.
    pub async fn browse(&self, authorize_url: &str, username: &str) -> Result<String, String> {
        let rest =
            authorize_url.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {authorize_url}"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let localhost = format!("localhost:{}", self.addr.port());
        if authority != self.host() && authority != localhost {
            return Err(format!("{authority} is not this provider ({})", self.host()));
        }
        let target = if target.starts_with('?') { format!("/{target}") } else { target.to_owned() };
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {authority}\r\nCookie: testkit_user={}\r\nUser-Agent: keyway-testkit-browser\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            util::form_encode(username)
        );
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {head}"))?;
        let location = lines
            .filter_map(|line| line.split_once(':'))
            .find_map(|(name, value)| name.trim().eq_ignore_ascii_case("location").then(|| value.trim().to_owned()));
        match location {
            Some(location) if (300..400).contains(&status) => Ok(location),
            _ => Err(format!("{status} {body}")),
        }
    }
}

/// How the provider behaves. Start from [`ProviderConfig::default`] and change what a test needs.
#[derive(Clone)]
pub struct ProviderConfig {
    /// The consumer key. Default `3MVG9testkit`.
    pub client_id: String,
    /// The consumer secret. Default `testkit-secret`.
    pub client_secret: String,
    /// A second (staged) secret, accepted as well as the main one. Default `None`.
    pub staged_client_secret: Option<String>,
    /// Allowed callback URLs, exact match; empty (the default) accepts any `redirect_uri`.
    pub callback_urls: Vec<String>,
    /// Authorize requests without a `code_challenge` are refused. Default `false`.
    pub require_pkce: bool,
    /// The refresh grant needs the client secret. Default `true`.
    pub require_secret_on_refresh: bool,
    /// Each refresh issues a new refresh token; reusing a rotated-out one revokes the family. Default `false`.
    pub rotate_refresh_tokens: bool,
    /// Live approvals (refresh token families) per user; one more revokes the least recently used.
    /// Default 5; 0 means no limit.
    pub approvals_per_user: usize,
    /// `expires_in` sent in token responses. Default `None`: Salesforce sends none.
    pub expires_in: Option<u64>,
    /// Server-side access token lifetime (introspection `exp`, 401 after it). Default 2 hours.
    pub access_token_lifetime: Duration,
    /// The first N token-endpoint requests (of any kind, faulted ones included, in order of arrival)
    /// answer 400 `invalid_client_id` "client identifier invalid" ("app not active yet"). Default 0.
    pub inactive_for_first: u32,
    /// Error bodies are sent without a `Content-Type` header (as Salesforce does). Default `true`;
    /// `false` sends `application/json`.
    pub errors_without_content_type: bool,
    /// The public key (SPKI PEM) verifying JWT bearer assertions. `None` (default): that grant fails.
    pub jwt_public_key_pem: Option<String>,
    /// The required JWT `aud`. `None` (default): the base URL, `https://login.salesforce.com` or
    /// `https://test.salesforce.com`.
    pub jwt_audience: Option<String>,
    /// The client credentials "Run As" user. Default `Some("integration@example.com")`; `None`: that grant fails.
    pub client_credentials_user: Option<String>,
    /// Device flow polling interval in seconds (provider clock). Default 5; 0 allowed.
    pub device_interval: u64,
    /// The first N device polls answer `slow_down` whatever their timing. Default 0.
    pub device_slow_down_polls: u32,
    /// A browser without the `testkit_user` cookie sees a consent page (username, Allow, Deny)
    /// instead of being approved as the default user. Default `false`.
    pub consent_page: bool,
    /// Sent as `iss` on every authorization response (RFC 9207), and discovery then says
    /// `authorization_response_iss_parameter_supported`. Default `None`: no `iss`, as
    /// Salesforce. A test impersonating a mix-up sets another server's issuer here.
    pub callback_iss: Option<String>,
    /// The `instance_url` token answers carry. Default `None`: the provider's own base URL. A
    /// test impersonating a provider that steers the API elsewhere sets another here.
    pub instance_url: Option<String>,
    /// A budget of authenticated REST API calls per window of the provider's clock, and how an
    /// exhausted budget is answered. Default `None`: no limit.
    pub api_rate_limit: Option<ApiRateLimit>,
    /// The key `GET /keyed/api-key/me` takes in `X-Api-Key`. Default `testkit-api-key-0123456789`.
    pub api_key: String,
    /// The user of `GET /keyed/basic/me` and of the token exchange. Default `testkit-user`.
    pub basic_user: String,
    /// The password of `GET /keyed/basic/me` and of the token exchange. Default `testkit-password`.
    pub basic_password: String,
    /// How long a token of `POST /keyed/exchange/token` lives (its `expires_in`). Default 60 s.
    pub exchange_lifetime: Duration,
    /// The HS256 secret `GET /keyed/jwt/me` verifies JWTs with. Default `testkit-jwt-secret-0123456789`.
    pub jwt_secret: String,
}

/// The REST API version the profiles' `api.base_url` names.
pub const API_VERSION: &str = "v62.0";

/// A REST API call budget ([`ProviderConfig::api_rate_limit`]).
///
/// A window opens at the first authenticated call after the previous window closed and lasts
/// `window` on the provider's clock ([`TestProvider::advance_clock`] past it to start afresh).
/// The first `requests` calls of a window are answered; the rest are refused as `answer` says,
/// without touching any record. Calls refused for their token (401) or by an injected fault do
/// not use the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRateLimit {
    /// Calls answered per window (0: every call is refused).
    pub requests: u32,
    /// The window's length (zero: every call opens a new window, so nothing is refused).
    pub window: Duration,
    /// How calls over the budget are answered.
    pub answer: RateLimitAnswer,
}

/// How the provider refuses a call over its [`ApiRateLimit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitAnswer {
    /// Salesforce's: 403 `[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests
    /// Limit exceeded."}]`, no `Retry-After`; every answer carries `Sforce-Limit-Info:
    /// api-usage=USED/MAX`.
    SalesforceRequestLimit,
    /// A generic provider's: 429 with `Retry-After` (whole seconds until the window closes,
    /// at least 1); every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (the window's end, Unix seconds on the provider's clock).
    TooManyRequests,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            client_id: "3MVG9testkit".to_owned(),
            client_secret: "testkit-secret".to_owned(),
            staged_client_secret: None,
            callback_urls: Vec::new(),
            require_pkce: false,
            require_secret_on_refresh: true,
            rotate_refresh_tokens: false,
            approvals_per_user: 5,
            expires_in: None,
            access_token_lifetime: Duration::from_secs(2 * 60 * 60),
            inactive_for_first: 0,
            errors_without_content_type: true,
            jwt_public_key_pem: None,
            jwt_audience: None,
            client_credentials_user: Some("integration@example.com".to_owned()),
            device_interval: 5,
            device_slow_down_polls: 0,
            consent_page: false,
            instance_url: None,
            callback_iss: None,
            api_rate_limit: None,
            api_key: "testkit-api-key-0123456789".to_owned(),
            basic_user: "testkit-user".to_owned(),
            basic_password: "testkit-password".to_owned(),
            exchange_lifetime: keyed::DEFAULT_EXCHANGE_LIFETIME,
            jwt_secret: "testkit-jwt-secret-0123456789".to_owned(),
        }
    }
}

/// Secrets are redacted.
impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("staged_client_secret", &self.staged_client_secret.as_ref().map(|_| "<redacted>"))
            .field("callback_urls", &self.callback_urls)
            .field("require_pkce", &self.require_pkce)
            .field("require_secret_on_refresh", &self.require_secret_on_refresh)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("approvals_per_user", &self.approvals_per_user)
            .field("expires_in", &self.expires_in)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("inactive_for_first", &self.inactive_for_first)
            .field("errors_without_content_type", &self.errors_without_content_type)
            .field("jwt_public_key_pem", &self.jwt_public_key_pem.as_ref().map(|_| "<pem>"))
            .field("jwt_audience", &self.jwt_audience)
            .field("client_credentials_user", &self.client_credentials_user)
            .field("device_interval", &self.device_interval)
            .field("device_slow_down_polls", &self.device_slow_down_polls)
            .field("consent_page", &self.consent_page)
            .field("callback_iss", &self.callback_iss)
            .field("instance_url", &self.instance_url)
            .field("api_rate_limit", &self.api_rate_limit)
            .field("api_key", &"<redacted>")
            .field("basic_user", &self.basic_user)
            .field("basic_password", &"<redacted>")
            .field("exchange_lifetime", &self.exchange_lifetime)
            .field("jwt_secret", &"<redacted>")
            .finish()
    }
}

/// The provider's endpoints, for counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/services/oauth2/authorize`.
    Authorize,
    /// `/services/oauth2/token` (also the device flow) and `/services/oauth2/device_authorization`.
    Token,
    /// `/services/oauth2/revoke`.
    Revoke,
    /// `/services/oauth2/introspect`.
    Introspect,
    /// `/services/oauth2/userinfo` and the identity URL `/id/...`.
    Userinfo,
    /// Anything under `/services/data/`.
    Api,
}

/// A fault to inject; each is consumed by one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this HTTP status (an invalid code becomes 500) with a short JSON error body.
    Status(u16),
    /// Sleep, then answer normally: a client with a shorter timeout sees a timeout.
    Delay(Duration),
    /// Answer this HTTP status with the OAuth error body `{"error": ERROR, "error_description": ...}`
    /// (RFC 6749 section 5.2): any error code, standard or not.
    OAuthError {
        /// The HTTP status (an invalid one becomes 400).
        status: u16,
        /// The `error` code.
        error: String,
    },
    /// Answer 200 `application/json` with a truncated body: `{"access_token": "tru`.
    MalformedJson,
    /// Process the request (issue, rotate, revoke: the provider's state changes), then hold
    /// the answer this long: a client that dies meanwhile never learns what happened.
    DelayAnswer(Duration),
}

/// Request counters. Every request is counted on arrival, before faults apply. Requests to other paths
/// (discovery, `/setup/connect`, unknown paths) are recorded but not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests to the authorize endpoint.
    pub authorize: u64,
    /// Requests to the token endpoint (all grants, device starts and polls).
    pub token: u64,
    /// Requests to the revoke endpoint.
    pub revoke: u64,
    /// Requests to the introspect endpoint.
    pub introspect: u64,
    /// Requests to the userinfo endpoint (and the identity URL).
    pub userinfo: u64,
    /// Requests under `/services/data/`.
    pub api: u64,
    /// Token exchanges (`POST /keyed/exchange/token`), refused ones included.
    pub exchange: u64,
    /// Token requests by `grant_type` (`authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`, `device`, or anything else sent), and
    /// `device_code` for device flow starts (`response_type=device_code`).
    pub by_grant: BTreeMap<String, u64>,
    /// Requests under `/services/data/` by (method, path without the query), e.g.
    /// `("POST", "/services/data/v62.0/sobjects/Case")`.
    pub api_calls: BTreeMap<(String, String), u64>,
}

impl Counts {
    /// Token requests with that `grant_type` (or `device_code` for device starts); 0 if none.
    pub fn grant(&self, grant_type: &str) -> u64 {
        self.by_grant.get(grant_type).copied().unwrap_or(0)
    }

    /// Requests under `/services/data/` with this method and path (without the query); 0 if none.
    pub fn api_call(&self, method: &str, path: &str) -> u64 {
        self.api_calls.get(&(method.to_owned(), path.to_owned())).copied().unwrap_or(0)
    }
}

/// One request as the provider received it. `Debug` redacts secrets.
#[derive(Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Decoded form body parameters, in order (empty when there is no body).
    pub form: Vec<(String, String)>,
    /// Client id and secret from an HTTP Basic `Authorization` header (percent-decoded).
    pub basic_auth: Option<(String, String)>,
    /// The token of a `Bearer` `Authorization` header.
    pub bearer: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `testkit_user` cookie (the logged-in browser user).
    pub cookie_user: Option<String>,
    /// When it arrived, on the provider's clock ([`TestProvider::now`]).
    pub received_at: Duration,
    /// Every header as received, names in lower case, in order (values not valid UTF-8 are
    /// replaced). `Debug` redacts `Authorization` and `Cookie`.
    pub headers: Vec<(String, String)>,
    /// The body's length in bytes (the body itself is not kept: some tests send megabytes).
    pub body_len: usize,
}

impl RecordedRequest {
    /// The first form value named `name`.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first query value named `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

const SECRET_NAMES: &[&str] =
    &["client_secret", "code", "code_verifier", "refresh_token", "access_token", "token", "assertion", "device_code"];

fn redact(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), if SECRET_NAMES.contains(&k.as_str()) { "<redacted>" } else { v.as_str() }))
        .collect()
}

fn redact_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| {
            (k.as_str(), if matches!(k.as_str(), "authorization" | "cookie") { "<redacted>" } else { v.as_str() })
        })
        .collect()
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &redact(&self.query))
            .field("form", &redact(&self.form))
            .field("basic_auth", &self.basic_auth.as_ref().map(|(id, _)| (id, "<redacted>")))
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("user_agent", &self.user_agent)
            .field("cookie_user", &self.cookie_user)
            .field("received_at", &self.received_at)
            .field("headers", &redact_headers(&self.headers))
            .field("body_len", &self.body_len)
            .finish()
    }
}

/// A 2048-bit RSA key pair for JWT bearer tests, generated once per process:
/// (private key as PKCS#8 PEM `BEGIN PRIVATE KEY`, public key as SPKI PEM `BEGIN PUBLIC KEY`).
///
/// # Panics
/// If key generation or PEM encoding fails (they do not, short of a broken random source).
pub fn rsa_key_pair() -> &'static (String, String) {
    static PAIR: OnceLock<(String, String)> = OnceLock::new();
    PAIR.get_or_init(generate_rsa_key_pair)
}

/// Generates a fresh 2048-bit RSA key pair (private PKCS#8 PEM, public SPKI PEM); slow-ish, prefer
/// [`rsa_key_pair`] unless a second, different key is needed (e.g. a "wrong key" test).
///
/// # Panics
/// If key generation or PEM encoding fails.
pub fn generate_rsa_key_pair() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM encoding").to_string();
    let public_pem = rsa::RsaPublicKey::from(&private).to_public_key_pem(LineEnding::LF).expect("SPKI PEM encoding");
    (private_pem, public_pem)
}
