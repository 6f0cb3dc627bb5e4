//! The provider's state and its one request handler.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::rest::{self, Admission, ApiCall, Limiter, Records};
use crate::util::{self, form_decode, parse_pairs};
use crate::{Counts, DEFAULT_USER, DENY_USER, Endpoint, Fault, ORG_ID, ProviderConfig, RecordedRequest};

pub(crate) const AUTHORIZE_PATH: &str = "/services/oauth2/authorize";
pub(crate) const TOKEN_PATH: &str = "/services/oauth2/token";
pub(crate) const REVOKE_PATH: &str = "/services/oauth2/revoke";
pub(crate) const INTROSPECT_PATH: &str = "/services/oauth2/introspect";
pub(crate) const USERINFO_PATH: &str = "/services/oauth2/userinfo";
const DEVICE_VERIFICATION_PATH: &str = "/setup/connect";
/// The standard device authorization endpoint (RFC 8628), beside Salesforce's variant (a
/// `response_type=device_code` post to the token endpoint).
pub(crate) const DEVICE_AUTHORIZATION_PATH: &str = "/services/oauth2/device_authorization";
const GRANT_DEVICE_STANDARD: &str = "urn:ietf:params:oauth:grant-type:device_code";

const GRANT_CODE: &str = "authorization_code";
const GRANT_REFRESH: &str = "refresh_token";
const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const GRANT_DEVICE: &str = "device";

const DEFAULT_SCOPE: &str = "api refresh_token";
const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);

const EXPIRED_TOKEN: &str = "expired access/refresh token";
const BAD_CLIENT: &str = "invalid client credentials";
const BAD_CLIENT_ID: &str = "client identifier invalid";

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Requests arrived and neither answered nor abandoned (a client gone mid-request).
    in_flight: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(config: ProviderConfig, base_url: String) -> Shared {
        let slow_down_remaining = config.device_slow_down_polls;
        Shared {
            state: Mutex::new(State {
                config,
                base_url,
                clock_offset: Duration::ZERO,
                counts: Counts::default(),
                requests: Vec::new(),
                faults: HashMap::new(),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                approvals: HashMap::new(),
                devices: HashMap::new(),
                next_seq: 0,
                slow_down_remaining,
                records: Records::default(),
                api_limiter: Limiter::default(),
                exchanged: HashMap::new(),
                next_exchange: 0,
            }),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Locks the state; a poisoned lock (a panic elsewhere) is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct AuthCode {
    user: String,
    scope: String,
    redirect_uri: String,
    challenge: Option<String>,
    /// The authorization request's `nonce` (OpenID Connect), repeated in the ID token.
    nonce: Option<String>,
    expires_at: Duration,
}

struct AccessToken {
    user: String,
    scope: String,
    family: Option<u64>,
    issued_at: Duration,
    expires_at: Duration,
    revoked: bool,
}

struct RefreshToken {
    family: u64,
    rotated: bool,
    issued_at: Duration,
}

/// One approval: a refresh token family.
struct Approval {
    user: String,
    scope: String,
    last_used: u64,
    revoked: bool,
}

enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
}

struct Device {
    user_code: String,
    scope: String,
    expires_at: Duration,
    last_poll: Option<Duration>,
    status: DeviceStatus,
}

pub(crate) struct State {
    pub(crate) config: ProviderConfig,
    base_url: String,
    pub(crate) clock_offset: Duration,
    pub(crate) counts: Counts,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) faults: HashMap<Endpoint, VecDeque<Fault>>,
    codes: HashMap<String, AuthCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    approvals: HashMap<u64, Approval>,
    /// By device code.
    devices: HashMap<String, Device>,
    next_seq: u64,
    slow_down_remaining: u32,
    /// The REST API's sObject records.
    pub(crate) records: Records,
    api_limiter: Limiter,
    /// Tokens the keyed token exchange issued, with when they expire (provider clock).
    pub(crate) exchanged: HashMap<String, Duration>,
    pub(crate) next_exchange: u64,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn classify(path: &str) -> Option<Endpoint> {
    match path {
        AUTHORIZE_PATH => Some(Endpoint::Authorize),
        TOKEN_PATH | DEVICE_AUTHORIZATION_PATH => Some(Endpoint::Token),
        REVOKE_PATH => Some(Endpoint::Revoke),
        INTROSPECT_PATH => Some(Endpoint::Introspect),
        USERINFO_PATH => Some(Endpoint::Userinfo),
        "/id/keys" => None,
        _ if path.starts_with("/id/") => Some(Endpoint::Userinfo),
        _ if path == "/services/data" || path.starts_with("/services/data/") => Some(Endpoint::Api),
        _ => None,
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &axum::http::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn record(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8], endpoint: Option<Endpoint>) -> RecordedRequest {
    let authorization = header_str(headers, &AUTHORIZATION).map(str::trim);
    let scheme_value = |scheme: &str| {
        authorization.and_then(|value| {
            let (name, rest) = value.split_once(' ')?;
            name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
        })
    };
    let basic_auth = scheme_value("basic").and_then(|encoded| {
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let decoded = String::from_utf8_lossy(&decoded);
        let (id, secret) = decoded.split_once(':')?;
        Some((form_decode(id), form_decode(secret)))
    });
    let cookie_user = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "testkit_user")
        .map(|(_, value)| form_decode(value.trim_matches('"')));
    // API bodies are JSON (up to megabytes): read as a form only when they say they are one.
    let form_body = endpoint != Some(Endpoint::Api)
        || header_str(headers, &CONTENT_TYPE).is_some_and(|value| {
            value.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
        });
    RecordedRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(parse_pairs).unwrap_or_default(),
        form: if form_body { parse_pairs(&String::from_utf8_lossy(body)) } else { Vec::new() },
        basic_auth,
        bearer: scheme_value("bearer").map(str::to_owned),
        user_agent: header_str(headers, &USER_AGENT).map(str::to_owned),
        cookie_user,
        received_at: Duration::ZERO,
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body_len: body.len(),
    }
}

/// Counts a request in flight from arrival until its handler ends, answered or dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> InFlight<'a> {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::new(&shared);
    let endpoint = classify(uri.path());
    let mut request = record(&method, &uri, &headers, &body, endpoint);
    let (fault, inactive) = {
        let mut state = shared.lock();
        request.received_at = state.now();
        state.count(endpoint, &request);
        state.requests.push(request.clone());
        // Decided on arrival, so a delayed request keeps its place among "the first N".
        let inactive =
            endpoint == Some(Endpoint::Token) && state.counts.token <= u64::from(state.config.inactive_for_first);
        (endpoint.and_then(|endpoint| state.faults.get_mut(&endpoint).and_then(VecDeque::pop_front)), inactive)
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let description = format!("injected fault: HTTP {}", status.as_u16());
            return shared.lock().error(status, "server_error", &description);
        }
        Some(Fault::OAuthError { status, error }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return shared.lock().error(status, &error, "injected OAuth error");
        }
        Some(Fault::MalformedJson) => {
            return response(StatusCode::OK, Some("application/json"), r#"{"access_token": "tru"#.to_owned());
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DelayAnswer(delay)) => {
            let response = answer(&shared, endpoint, &method, &request, &body, inactive);
            tokio::time::sleep(delay).await;
            return response;
        }
        None => {}
    }
    answer(&shared, endpoint, &method, &request, &body, inactive)
}

fn answer(
    shared: &Shared,
    endpoint: Option<Endpoint>,
    method: &Method,
    request: &RecordedRequest,
    body: &[u8],
    inactive: bool,
) -> Response {
    let mut state = shared.lock();
    match endpoint {
        Some(Endpoint::Authorize) => state.authorize(request),
        Some(Endpoint::Token) if *method == Method::POST => state.token(request, inactive),
        Some(Endpoint::Revoke) if *method == Method::POST || *method == Method::GET => state.revoke(request),
        Some(Endpoint::Introspect) if *method == Method::POST => state.introspect(request),
        Some(Endpoint::Userinfo) if *method == Method::GET || *method == Method::POST => state.userinfo(request),
        Some(Endpoint::Api) => state.api(request, body),
        Some(_) => state.error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method not allowed"),
        None if request.path.starts_with(crate::keyed::KEYED_PREFIX) => state.keyed(request, body),
        None => state.other(request),
    }
}

/// The provider's consent page: the authorization request's parameters carried in hidden
/// fields, a username, and Allow / Deny (which submit back to the authorize endpoint).
fn consent_page(request: &RecordedRequest) -> Response {
    let escape = keyway_stdx::escape_html;
    let hidden: String = request
        .query
        .iter()
        .filter(|(k, _)| !k.starts_with("testkit_"))
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let scope = escape(request.query_value("scope").unwrap_or(DEFAULT_SCOPE));
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Allow Access?</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#181818}}\
h1{{font-size:1.4rem}}label{{display:block;margin:1rem 0}}input[type=text]{{width:100%;padding:.4rem}}\
button{{padding:.5rem 1.2rem;margin-right:.5rem;font-size:1rem}}code{{background:#f3f3f3;padding:0 .2rem}}</style></head>\
<body><h1>Allow Access?</h1><p>keyway-testkit (a local, Salesforce-like test provider) is asked to \
grant access with the scopes <code>{scope}</code>.</p>\
<form method=\"get\" action=\"{AUTHORIZE_PATH}\">{hidden}\
<label>Username <input type=\"text\" name=\"testkit_username\" value=\"{DEFAULT_USER}\"></label>\
<button type=\"submit\" name=\"testkit_consent\" value=\"allow\" id=\"allow\">Allow</button>\
<button type=\"submit\" name=\"testkit_consent\" value=\"deny\" id=\"deny\">Deny</button></form></body></html>"
    );
    response(StatusCode::OK, Some("text/html; charset=utf-8"), body)
}

fn response(status: StatusCode, content_type: Option<&'static str>, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = response(status, Some("application/json"), value.to_string());
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn invalid_session() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
    )
}

/// The client's credentials, from HTTP Basic or the form.
fn client_credentials(request: &RecordedRequest) -> (Option<&str>, Option<&str>) {
    match &request.basic_auth {
        Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
        None => (request.form_value("client_id"), request.form_value("client_secret")),
    }
}

fn has_refresh_scope(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "refresh_token" || s == "offline_access")
}

/// Normalises a requested scope: whitespace-separated, duplicates removed, order kept; default when blank.
fn normalise_scope(requested: Option<&str>, default: &str) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for scope in requested.unwrap_or_default().split_whitespace() {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() { default.to_owned() } else { scopes.join(" ") }
}

#[derive(serde::Deserialize)]
struct JwtClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<f64>,
}

enum ClientCheck {
    Ok,
    UnknownClient,
    BadSecret,
}

impl State {
    pub(crate) fn now(&self) -> Duration {
        let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        system.saturating_add(self.clock_offset)
    }

    fn count(&mut self, endpoint: Option<Endpoint>, request: &RecordedRequest) {
        let counts = &mut self.counts;
        match endpoint {
            Some(Endpoint::Authorize) => counts.authorize += 1,
            Some(Endpoint::Token) => {
                counts.token += 1;
                let key = match request.form_value("grant_type") {
                    Some(grant) => Some(grant),
                    None if request.form_value("response_type") == Some("device_code") => Some("device_code"),
                    None => None,
                };
                if let Some(key) = key {
                    *counts.by_grant.entry(key.to_owned()).or_default() += 1;
                }
            }
            Some(Endpoint::Revoke) => counts.revoke += 1,
            Some(Endpoint::Introspect) => counts.introspect += 1,
            Some(Endpoint::Userinfo) => counts.userinfo += 1,
            Some(Endpoint::Api) => {
                counts.api += 1;
                *counts.api_calls.entry((request.method.clone(), request.path.clone())).or_default() += 1;
            }
            None => {}
        }
    }

    pub(crate) fn error(&self, status: StatusCode, error: &str, description: &str) -> Response {
        let body = json!({"error": error, "error_description": description}).to_string();
        let content_type = (!self.config.errors_without_content_type).then_some("application/json");
        let mut response = response(status, content_type, body);
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn bad_request(&self, error: &str, description: &str) -> Response {
        self.error(StatusCode::BAD_REQUEST, error, description)
    }

    fn invalid_client(&self) -> Response {
        self.error(StatusCode::UNAUTHORIZED, "invalid_client", BAD_CLIENT)
    }

    fn invalid_client_id(&self) -> Response {
        self.bad_request("invalid_client_id", BAD_CLIENT_ID)
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn user_id(user: &str) -> String {
        util::stable_id("005", user)
    }

    fn id_url(&self, user: &str) -> String {
        format!("{}/id/{ORG_ID}/{}", self.base_url, Self::user_id(user))
    }

    fn secret_ok(&self, secret: &str) -> bool {
        secret == self.config.client_secret || self.config.staged_client_secret.as_deref() == Some(secret)
    }

    fn check_client(&self, request: &RecordedRequest, secret_required: bool) -> ClientCheck {
        let (id, secret) = client_credentials(request);
        if id != Some(self.config.client_id.as_str()) {
            return ClientCheck::UnknownClient;
        }
        if request.form_value("client_assertion_type").is_some() || request.form_value("client_assertion").is_some() {
            // private_key_jwt (RFC 7523 section 2.2): the signed assertion stands for the secret.
            return if secret.is_none() && self.client_assertion_ok(request) {
                ClientCheck::Ok
            } else {
                ClientCheck::BadSecret
            };
        }
        match secret {
            Some(secret) if self.secret_ok(secret) => ClientCheck::Ok,
            Some(_) => ClientCheck::BadSecret,
            None if secret_required => ClientCheck::BadSecret,
            None => ClientCheck::Ok,
        }
    }

    /// Token endpoint client check: unknown client → 400 `invalid_client_id`, bad secret → 401 `invalid_client`.
    /// `Some(rejection)` when the client fails.
    fn reject_client(&self, request: &RecordedRequest, secret_required: bool) -> Option<Response> {
        match self.check_client(request, secret_required) {
            ClientCheck::Ok => None,
            ClientCheck::UnknownClient => Some(self.invalid_client_id()),
            ClientCheck::BadSecret => Some(self.invalid_client()),
        }
    }

    pub(crate) fn live_approvals(&self, user: &str) -> usize {
        self.approvals.values().filter(|a| !a.revoked && a.user == user).count()
    }

    fn family_live(&self, family: Option<u64>) -> bool {
        family.is_none_or(|family| self.approvals.get(&family).is_some_and(|a| !a.revoked))
    }

    fn live_access_token(&self, token: &str) -> Option<&AccessToken> {
        let now = self.now();
        self.access_tokens.get(token).filter(|t| !t.revoked && now < t.expires_at && self.family_live(t.family))
    }

    fn revoke_family(&mut self, family: u64) {
        if let Some(approval) = self.approvals.get_mut(&family) {
            approval.revoked = true;
        }
    }

    /// A new approval (refresh token family) for `user`; evicts the least recently used beyond the limit.
    fn new_approval(&mut self, user: &str, scope: &str) -> (u64, String) {
        let family = self.next_seq();
        self.approvals.insert(
            family,
            Approval { user: user.to_owned(), scope: scope.to_owned(), last_used: family, revoked: false },
        );
        let limit = self.config.approvals_per_user;
        if limit > 0 && self.live_approvals(user) > limit {
            let oldest = self
                .approvals
                .iter()
                .filter(|(_, a)| !a.revoked && a.user == user)
                .min_by_key(|(_, a)| a.last_used)
                .map(|(family, _)| *family);
            if let Some(oldest) = oldest {
                self.revoke_family(oldest);
            }
        }
        (family, self.new_refresh_token(family))
    }

    fn new_refresh_token(&mut self, family: u64) -> String {
        let token = format!("5Aep861TEST{}", util::random_alnum(76));
        let issued_at = self.now();
        self.refresh_tokens.insert(token.clone(), RefreshToken { family, rotated: false, issued_at });
        token
    }

    /// Issues an access token (and the given refresh token) and builds the Salesforce-shaped response.
    fn issue(&mut self, user: &str, scope: &str, family: Option<u64>, refresh_token: Option<String>) -> Response {
        json_response(StatusCode::OK, &self.issue_value(user, scope, family, refresh_token))
    }

    /// Issues an access token (and the given refresh token); the token endpoint's JSON answer.
    fn issue_value(&mut self, user: &str, scope: &str, family: Option<u64>, refresh_token: Option<String>) -> Value {
        let now = self.now();
        let access_token = format!("{ORG_ID}!AQ{}", util::random_alnum(96));
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                user: user.to_owned(),
                scope: scope.to_owned(),
                family,
                issued_at: now,
                expires_at: now.saturating_add(self.config.access_token_lifetime),
                revoked: false,
            },
        );
        let id = self.id_url(user);
        let issued_at = now.as_millis().to_string();
        let mut body = serde_json::Map::new();
        body.insert("access_token".into(), json!(access_token));
        if let Some(refresh_token) = refresh_token {
            body.insert("refresh_token".into(), json!(refresh_token));
        }
        body.insert("signature".into(), json!(util::signature(&[&id, &issued_at, &access_token])));
        body.insert("scope".into(), json!(scope));
        body.insert("instance_url".into(), json!(self.config.instance_url.as_deref().unwrap_or(&self.base_url)));
        body.insert("id".into(), json!(id));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("issued_at".into(), json!(issued_at));
        if let Some(expires_in) = self.config.expires_in {
            body.insert("expires_in".into(), json!(expires_in));
        }
        Value::Object(body)
    }

    /// Issues tokens for a user-approved grant (code or device): a refresh token and an approval when
    /// the scope asks for one.
    fn issue_approved(&mut self, user: &str, scope: &str) -> Response {
        json_response(StatusCode::OK, &self.issue_approved_value(user, scope))
    }

    pub(crate) fn issue_approved_value(&mut self, user: &str, scope: &str) -> Value {
        let scope = normalise_scope(Some(scope), DEFAULT_SCOPE);
        if has_refresh_scope(&scope) {
            let (family, refresh_token) = self.new_approval(user, &scope);
            self.issue_value(user, &scope, Some(family), Some(refresh_token))
        } else {
            self.issue_value(user, &scope, None, None)
        }
    }

    /// Revokes every approval of `user`; how many were live.
    pub(crate) fn revoke_user(&mut self, user: &str) -> usize {
        let mut revoked = 0;
        for approval in self.approvals.values_mut().filter(|a| !a.revoked && a.user == user) {
            approval.revoked = true;
            revoked += 1;
        }
        for token in self.access_tokens.values_mut().filter(|t| t.user == user) {
            token.revoked = true;
        }
        revoked
    }

    /// Replaces the configuration (the device slow-down budget restarts when it changes).
    pub(crate) fn set_config(&mut self, config: ProviderConfig) {
        if config.device_slow_down_polls != self.config.device_slow_down_polls {
            self.slow_down_remaining = config.device_slow_down_polls;
        }
        self.config = config;
    }

    // ---- authorize ----

    fn authorize(&mut self, request: &RecordedRequest) -> Response {
        let client_id = request.query_value("client_id");
        if client_id != Some(self.config.client_id.as_str()) {
            return self.invalid_client_id();
        }
        let redirect_uri = match request.query_value("redirect_uri") {
            Some(uri)
                if !uri.is_empty()
                    && (self.config.callback_urls.is_empty() || self.config.callback_urls.iter().any(|c| c == uri)) =>
            {
                uri
            }
            _ => return self.bad_request("redirect_uri_mismatch", "redirect_uri must match configuration"),
        };
        let state = request.query_value("state");
        let redirect_error = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(state) = state {
                params.push(("state", state));
            }
            if let Some(iss) = &self.config.callback_iss {
                params.push(("iss", iss.as_str()));
            }
            self.redirect(redirect_uri, &params)
        };
        if request.query_value("response_type") != Some("code") {
            return redirect_error("unsupported_response_type", "response type not supported");
        }
        let consent = request.query_value("testkit_consent");
        if self.config.consent_page && request.cookie_user.is_none() && consent.is_none() {
            return consent_page(request);
        }
        let user = match consent {
            Some("deny") => DENY_USER,
            Some(_) => request.query_value("testkit_username").filter(|u| !u.is_empty()).unwrap_or(DEFAULT_USER),
            None => request.cookie_user.as_deref().filter(|u| !u.is_empty()).unwrap_or(DEFAULT_USER),
        };
        let challenge = request.query_value("code_challenge").filter(|c| !c.is_empty());
        match challenge {
            None if self.config.require_pkce => {
                return redirect_error("invalid_request", "missing required code challenge");
            }
            Some(_) if request.query_value("code_challenge_method").unwrap_or("S256") != "S256" => {
                return redirect_error("invalid_request", "invalid code challenge method");
            }
            _ => {}
        }
        if user == DENY_USER {
            return redirect_error("access_denied", "end-user denied authorization");
        }
        let code = format!("aPrx{}==", util::random_alnum(60));
        let scope = normalise_scope(request.query_value("scope"), DEFAULT_SCOPE);
        let expires_at = self.now().saturating_add(CODE_LIFETIME);
        let entry = AuthCode {
            user: user.to_owned(),
            scope,
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.map(str::to_owned),
            nonce: request.query_value("nonce").map(str::to_owned),
            expires_at,
        };
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = state {
            params.push(("state", state));
        }
        if let Some(iss) = &self.config.callback_iss {
            params.push(("iss", iss.as_str()));
        }
        let response = self.redirect(redirect_uri, &params);
        if response.status() == StatusCode::FOUND {
            self.codes.insert(code, entry);
        }
        response
    }

    fn redirect(&self, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
        let (base, fragment) = match redirect_uri.split_once('#') {
            Some((base, fragment)) => (base, Some(fragment)),
            None => (redirect_uri, None),
        };
        let query: Vec<String> =
            params.iter().map(|(name, value)| format!("{name}={}", util::form_encode(value))).collect();
        let mut location = base.to_owned();
        if !(base.ends_with('?') || base.ends_with('&')) {
            location.push(if base.contains('?') { '&' } else { '?' });
        }
        location.push_str(&query.join("&"));
        if let Some(fragment) = fragment {
            location.push('#');
            location.push_str(fragment);
        }
        match HeaderValue::from_str(&location) {
            Ok(value) => {
                let mut response = response(StatusCode::FOUND, None, String::new());
                response.headers_mut().insert(LOCATION, value);
                response
            }
            Err(_) => self.bad_request("invalid_request", "invalid redirect_uri"),
        }
    }

    // ---- token ----

    fn token(&mut self, request: &RecordedRequest, inactive: bool) -> Response {
        if inactive {
            return self.invalid_client_id();
        }
        if request.path == DEVICE_AUTHORIZATION_PATH {
            return self.device_start(request);
        }
        if request.form_value("grant_type").is_none() && request.form_value("response_type") == Some("device_code") {
            return self.device_start(request);
        }
        match request.form_value("grant_type") {
            Some(GRANT_CODE) => self.grant_code(request),
            Some(GRANT_REFRESH) => self.grant_refresh(request),
            Some(GRANT_CLIENT_CREDENTIALS) => self.grant_client_credentials(request),
            Some(GRANT_JWT) => self.grant_jwt(request),
            Some(GRANT_DEVICE | GRANT_DEVICE_STANDARD) => self.grant_device(request),
            Some(_) => self.bad_request("unsupported_grant_type", "grant type not supported"),
            None => self.bad_request("unsupported_grant_type", "grant type not supported"),
        }
    }

    fn grant_code(&mut self, request: &RecordedRequest) -> Response {
        if let Some(response) = self.reject_client(request, true) {
            return response;
        }
        let now = self.now();
        let Some(code) = request.form_value("code").and_then(|code| self.codes.remove(code)) else {
            return self.bad_request("invalid_grant", "expired authorization code");
        };
        if now >= code.expires_at {
            return self.bad_request("invalid_grant", "expired authorization code");
        }
        if request.form_value("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return self.bad_request("invalid_grant", "redirect_uri mismatch");
        }
        if let Some(challenge) = &code.challenge {
            match request.form_value("code_verifier") {
                Some(verifier) if util::s256(verifier) == *challenge => {}
                _ => return self.bad_request("invalid_grant", "invalid code verifier"),
            }
        }
        let mut body = self.issue_approved_value(&code.user, &code.scope);
        // OpenID Connect: an ID token when `openid` was granted, repeating the request's nonce.
        if code.scope.split(' ').any(|s| s == "openid") {
            match self.id_token(&code.user, code.nonce.as_deref()) {
                Some(id_token) => {
                    if let Some(map) = body.as_object_mut() {
                        map.insert("id_token".into(), json!(id_token));
                    }
                }
                None => return self.bad_request("server_error", "the ID token could not be signed"),
            }
        }
        json_response(StatusCode::OK, &body)
    }

    /// An ID token (HS256 with the client secret, as OpenID Connect allows confidential
    /// clients): `iss`, `sub`, `aud`, `iat`, `exp` and the authorization request's `nonce`.
    fn id_token(&self, user: &str, nonce: Option<&str>) -> Option<String> {
        let now = self.now().as_secs();
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), json!(self.base_url));
        claims.insert("sub".into(), json!(self.id_url(user)));
        claims.insert("aud".into(), json!(self.config.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        let key = jsonwebtoken::EncodingKey::from_secret(self.config.client_secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).ok()
    }

    fn grant_refresh(&mut self, request: &RecordedRequest) -> Response {
        if let Some(response) = self.reject_client(request, self.config.require_secret_on_refresh) {
            return response;
        }
        let Some(token) = request.form_value("refresh_token") else {
            return self.bad_request("invalid_grant", EXPIRED_TOKEN);
        };
        let Some(&RefreshToken { family, rotated, .. }) = self.refresh_tokens.get(token) else {
            return self.bad_request("invalid_grant", EXPIRED_TOKEN);
        };
        if !self.family_live(Some(family)) {
            return self.bad_request("invalid_grant", EXPIRED_TOKEN);
        }
        if rotated {
            // Reuse of a rotated-out token: the whole family dies.
            self.revoke_family(family);
            return self.bad_request("invalid_grant", EXPIRED_TOKEN);
        }
        let seq = self.next_seq();
        let Some(approval) = self.approvals.get_mut(&family) else {
            return self.bad_request("invalid_grant", EXPIRED_TOKEN);
        };
        approval.last_used = seq;
        let (user, scope) = (approval.user.clone(), approval.scope.clone());
        let new_refresh = if self.config.rotate_refresh_tokens {
            if let Some(old) = self.refresh_tokens.get_mut(token) {
                old.rotated = true;
            }
            Some(self.new_refresh_token(family))
        } else {
            None
        };
        self.issue(&user, &scope, Some(family), new_refresh)
    }

    fn grant_client_credentials(&mut self, request: &RecordedRequest) -> Response {
        if let Some(response) = self.reject_client(request, true) {
            return response;
        }
        let Some(user) = self.config.client_credentials_user.clone() else {
            return self.bad_request("invalid_grant", "no client credentials user enabled");
        };
        let scope = normalise_scope(request.form_value("scope"), "api");
        self.issue(&user, &scope, None, None)
    }

    fn grant_jwt(&mut self, request: &RecordedRequest) -> Response {
        match self.verify_assertion(request.form_value("assertion")) {
            Ok(user) => self.issue(&user, "api", None, None),
            Err(description) => self.bad_request("invalid_grant", description),
        }
    }

    /// A `private_key_jwt` client assertion: the right type, signed with the configured key,
    /// `iss` and `sub` the client id, `aud` the token endpoint, not expired.
    fn client_assertion_ok(&self, request: &RecordedRequest) -> bool {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        if request.form_value("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return false;
        }
        let (Some(assertion), Some(pem)) = (request.form_value("client_assertion"), &self.config.jwt_public_key_pem)
        else {
            return false;
        };
        let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) else { return false };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let Ok(data) = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation) else { return false };
        let claims = data.claims;
        let client = Some(self.config.client_id.as_str());
        let token_url = format!("{}{TOKEN_PATH}", self.base_url);
        let aud_ok = match &claims.aud {
            Some(Value::String(aud)) => *aud == token_url,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(token_url.as_str())),
            _ => false,
        };
        claims.iss.as_deref() == client
            && claims.sub.as_deref() == client
            && aud_ok
            && claims.exp.is_some_and(|exp| exp.is_finite() && exp > self.now().as_secs_f64())
    }

    fn verify_assertion(&self, assertion: Option<&str>) -> Result<String, &'static str> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        const INVALID: &str = "invalid assertion";
        let assertion = assertion.filter(|a| !a.is_empty()).ok_or(INVALID)?;
        let pem = self.config.jwt_public_key_pem.as_deref().ok_or(INVALID)?;
        let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| INVALID)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation).map_err(|_| INVALID)?.claims;
        if claims.iss.as_deref() != Some(self.config.client_id.as_str()) {
            return Err(INVALID);
        }
        let audiences: Vec<&str> = match &claims.aud {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let accepted: Vec<&str> = match &self.config.jwt_audience {
            Some(aud) => vec![aud.as_str()],
            None => vec![self.base_url.as_str(), "https://login.salesforce.com", "https://test.salesforce.com"],
        };
        if !audiences.iter().any(|aud| accepted.contains(&aud.trim_end_matches('/'))) {
            return Err("audience is invalid");
        }
        let exp = claims.exp.filter(|exp| exp.is_finite()).ok_or(INVALID)?;
        if exp <= self.now().as_secs_f64() {
            return Err("expired assertion");
        }
        claims.sub.filter(|sub| !sub.is_empty()).ok_or(INVALID)
    }

    // ---- device flow ----

    fn device_start(&mut self, request: &RecordedRequest) -> Response {
        if client_credentials(request).0 != Some(self.config.client_id.as_str()) {
            return self.invalid_client_id();
        }
        let device_code = format!("DEV{}", util::random_alnum(40));
        let user_code = loop {
            let candidate = util::random_user_code();
            if !self.devices.values().any(|d| d.user_code == candidate) {
                break candidate;
            }
        };
        let scope = normalise_scope(request.form_value("scope"), DEFAULT_SCOPE);
        let expires_at = self.now().saturating_add(DEVICE_CODE_LIFETIME);
        self.devices.insert(
            device_code.clone(),
            Device { user_code: user_code.clone(), scope, expires_at, last_poll: None, status: DeviceStatus::Pending },
        );
        json_response(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": format!("{}{DEVICE_VERIFICATION_PATH}", self.base_url),
                "interval": self.config.device_interval,
            }),
        )
    }

    fn grant_device(&mut self, request: &RecordedRequest) -> Response {
        if let Some(response) = self.reject_client(request, false) {
            return response;
        }
        let now = self.now();
        let code = request.form_value("code").or_else(|| request.form_value("device_code")).unwrap_or_default();
        let interval = Duration::from_secs(self.config.device_interval);
        let forced_slow_down = self.slow_down_remaining > 0;
        let Some(device) = self.devices.get_mut(code) else {
            return self.bad_request("invalid_grant", "invalid device code");
        };
        if now >= device.expires_at {
            return self.bad_request("expired_token", "device code expired");
        }
        let too_soon = device.last_poll.is_some_and(|last| now.saturating_sub(last) < interval);
        device.last_poll = Some(now);
        if forced_slow_down || too_soon {
            self.slow_down_remaining = self.slow_down_remaining.saturating_sub(1);
            return self.bad_request("slow_down", "polling too frequently");
        }
        match &device.status {
            DeviceStatus::Pending => self.bad_request("authorization_pending", "authorization pending"),
            DeviceStatus::Denied => {
                self.devices.remove(code);
                self.bad_request("access_denied", "end-user denied authorization")
            }
            DeviceStatus::Approved(user) => {
                let (user, scope) = (user.clone(), device.scope.clone());
                self.devices.remove(code);
                self.issue_approved(&user, &scope)
            }
        }
    }

    pub(crate) fn decide_device(&mut self, user_code: &str, user: Option<&str>) -> bool {
        let now = self.now();
        let wanted = user_code.trim();
        let device = self.devices.values_mut().find(|d| d.user_code.eq_ignore_ascii_case(wanted));
        match device {
            Some(device) if matches!(device.status, DeviceStatus::Pending) && now < device.expires_at => {
                device.status = match user {
                    Some(user) => DeviceStatus::Approved(user.to_owned()),
                    None => DeviceStatus::Denied,
                };
                true
            }
            _ => false,
        }
    }

    // ---- revoke, introspect, userinfo, api ----

    fn revoke(&mut self, request: &RecordedRequest) -> Response {
        let (id, secret) = client_credentials(request);
        if secret.is_some() && !matches!(self.check_client(request, true), ClientCheck::Ok) {
            return self.invalid_client();
        }
        if id.is_some_and(|id| id != self.config.client_id) {
            return self.invalid_client_id();
        }
        let Some(token) = request.form_value("token").or_else(|| request.query_value("token")) else {
            return self.bad_request("unsupported_token_type", "missing token");
        };
        if let Some(&RefreshToken { family, .. }) = self.refresh_tokens.get(token) {
            if self.family_live(Some(family)) {
                self.revoke_family(family);
                return response(StatusCode::OK, None, String::new());
            }
        } else if let Some(access) = self.access_tokens.get(token) {
            if !access.revoked && self.family_live(access.family) {
                if let Some(access) = self.access_tokens.get_mut(token) {
                    access.revoked = true;
                }
                return response(StatusCode::OK, None, String::new());
            }
        }
        self.bad_request("invalid_token", "invalid token")
    }

    fn introspect(&mut self, request: &RecordedRequest) -> Response {
        if !matches!(self.check_client(request, true), ClientCheck::Ok) {
            return self.invalid_client();
        }
        let token = request.form_value("token").unwrap_or_default();
        let client_id = self.config.client_id.clone();
        if let Some(access) = self.live_access_token(token) {
            return json_response(
                StatusCode::OK,
                &json!({
                    "active": true,
                    "scope": access.scope,
                    "client_id": client_id,
                    "username": access.user,
                    "sub": self.id_url(&access.user),
                    "token_type": "access_token",
                    "exp": access.expires_at.as_secs(),
                    "iat": access.issued_at.as_secs(),
                    "nbf": access.issued_at.as_secs(),
                }),
            );
        }
        let refresh = self.refresh_tokens.get(token).filter(|r| !r.rotated && self.family_live(Some(r.family)));
        if let Some((refresh, approval)) = refresh.and_then(|r| Some((r, self.approvals.get(&r.family)?))) {
            return json_response(
                StatusCode::OK,
                &json!({
                    "active": true,
                    "scope": approval.scope,
                    "client_id": client_id,
                    "username": approval.user,
                    "sub": self.id_url(&approval.user),
                    "token_type": "refresh_token",
                    "iat": refresh.issued_at.as_secs(),
                    "nbf": refresh.issued_at.as_secs(),
                }),
            );
        }
        json_response(StatusCode::OK, &json!({"active": false}))
    }

    fn bearer_user(&self, request: &RecordedRequest) -> Option<String> {
        let token = request.bearer.as_deref()?;
        self.live_access_token(token).map(|t| t.user.clone())
    }

    fn userinfo(&mut self, request: &RecordedRequest) -> Response {
        let Some(user) = self.bearer_user(request) else {
            return invalid_session();
        };
        let email = if user.contains('@') { user.clone() } else { format!("{user}@example.com") };
        let name = user.split('@').next().unwrap_or_default().to_owned();
        json_response(
            StatusCode::OK,
            &json!({
                "sub": self.id_url(&user),
                "user_id": Self::user_id(&user),
                "organization_id": ORG_ID,
                "preferred_username": user,
                "email": email,
                "name": name,
                "zoneinfo": "Europe/London",
                "locale": "en_GB",
                "urls": {"rest": format!("{}/services/data/v{{version}}/", self.base_url)},
            }),
        )
    }

    /// The REST API ([`rest`]): the token first (401 `INVALID_SESSION_ID`, as every API
    /// endpoint answers), then the rate limit, then the resource.
    fn api(&mut self, request: &RecordedRequest, body: &[u8]) -> Response {
        let Some(username) = self.bearer_user(request) else {
            return invalid_session();
        };
        let now = self.now();
        let usage_headers = match self.api_limiter.admit(self.config.api_rate_limit.as_ref(), now) {
            Admission::Admitted(headers) => headers,
            Admission::Refused(response) => return response,
        };
        let user_id = Self::user_id(&username);
        self.records.ensure_user(&user_id, &username);
        let call = ApiCall {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            body,
            username: &username,
            user_id: &user_id,
        };
        let mut response = rest::answer(&mut self.records, &call);
        response.headers_mut().extend(usage_headers);
        response
    }

    fn other(&mut self, request: &RecordedRequest) -> Response {
        let base = &self.base_url;
        match request.path.as_str() {
            "/.well-known/openid-configuration" => json_response(
                StatusCode::OK,
                &json!({
                    "issuer": base,
                    "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
                    "token_endpoint": format!("{base}{TOKEN_PATH}"),
                    "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
                    "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
                    "userinfo_endpoint": format!("{base}{USERINFO_PATH}"),
                    "device_authorization_endpoint": format!("{base}{DEVICE_AUTHORIZATION_PATH}"),
                    "jwks_uri": format!("{base}/id/keys"),
                    "response_types_supported": ["code"],
                    "grant_types_supported": [GRANT_CODE, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS, GRANT_JWT, GRANT_DEVICE, GRANT_DEVICE_STANDARD],
                    "code_challenge_methods_supported": ["S256"],
                    "scopes_supported": ["api", "refresh_token", "offline_access", "full", "web", "openid", "id", "profile", "email"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt"],
                    "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
                    "authorization_response_iss_parameter_supported": self.config.callback_iss.is_some(),
                    "subject_types_supported": ["public"],
                }),
            ),
            "/id/keys" => json_response(StatusCode::OK, &json!({"keys": []})),
            DEVICE_VERIFICATION_PATH => response(
                StatusCode::OK,
                Some("text/html; charset=utf-8"),
                "<html><body><h1>Connect your device</h1><p>Enter the code shown on your device.</p></body></html>"
                    .to_owned(),
            ),
            _ => self.error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }
}
