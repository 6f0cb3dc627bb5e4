//! The API's resources: request and response bodies of the HTTP API, which the hub takes and
//! answers. Requests refuse unknown fields; secrets are write-only (`SecretString`, never
//! serialized back).

use indexmap::IndexMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use crate::domain::{ConnectionDiagnosis, ConnectionState, EndUser};

/// A new integration: a tenant's app registered with a provider (StackOne's "connector
/// profile"). Checked against the profile before it is stored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntegration {
    /// The profile id: `salesforce`.
    #[schema(min_length = 1, max_length = 200)]
    pub profile: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The client id (Salesforce: Consumer Key). Required for OAuth 2.0 profiles; profiles
    /// of other kinds (API keys, Basic, token exchange, none) take none.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub client_id: String,
    /// The client secret (Consumer Secret). Write-only.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub client_secret: Option<SecretString>,
    /// A second secret, tried when the provider refuses the first: set it before rotating
    /// the app's secret. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub staged_client_secret: Option<SecretString>,
    /// The environment (default: the profile's default).
    #[serde(default)]
    pub environment: Option<String>,
    /// The actions offered; the scopes requested follow from them.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Scopes to request instead of the computed ones.
    #[serde(default)]
    pub custom_scopes: Option<Vec<String>>,
    /// Connection parameters fixed for every connection (Salesforce: `my_domain`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: IndexMap<String, String>,
    /// Send PKCE (where the profile makes it optional).
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Whether refresh requests send the client secret (the app's setting).
    #[serde(default)]
    pub refresh_sends_secret: Option<bool>,
}

/// An integration as the API shows it: everything but the secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Integration {
    /// `intg_...`.
    pub id: String,
    /// The profile id.
    pub profile: String,
    /// A display name.
    pub name: Option<String>,
    /// The client id.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_client_secret: bool,
    /// Whether a staged client secret is stored.
    pub has_staged_client_secret: bool,
    /// The environment in use.
    pub environment: String,
    /// The actions.
    pub actions: Vec<String>,
    /// Custom scopes, when set.
    pub custom_scopes: Option<Vec<String>>,
    /// Fixed connection parameters.
    #[schema(value_type = Object)]
    pub parameters: IndexMap<String, String>,
    /// Whether authorizations send PKCE.
    pub pkce: bool,
    /// What this configuration gives up, in words (PKCE off, say).
    pub warnings: Vec<String>,
    /// Whether refreshes send the client secret.
    pub refresh_sends_secret: bool,
    /// The scopes each authorization requests.
    pub scopes: Vec<String>,
    /// The callback URL to register with the provider.
    pub callback_url: String,
    /// Bumped on every change.
    pub version: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// A page of integrations.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationList {
    /// The integrations, by id.
    pub data: Vec<Integration>,
}

/// A new connect session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// Who is connecting.
    pub end_user: EndUser,
    /// The integrations the user may link (default: every integration; a reconnect: the
    /// connection's).
    #[serde(default)]
    pub integrations: Option<Vec<String>>,
    /// Where the done page sends the user back (https, or http on loopback).
    #[serde(default)]
    pub return_url: Option<String>,
    /// Origins (`https://app.example.com`) the done page may `postMessage` the result to.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Reconnects this connection (keeps its id).
    #[serde(default)]
    pub connection_id: Option<String>,
}

/// A created connect session. The token is shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// `cs_...`.
    pub id: String,
    /// The session token: single use, 30 minutes.
    pub token: String,
    /// The hosted connect page, with the token: send the user there.
    pub connect_url: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// A linked account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Connection {
    /// `conn_...`.
    pub id: String,
    /// The integration.
    pub integration_id: String,
    /// The profile.
    pub profile: String,
    /// The end user.
    pub end_user: EndUser,
    /// Where it stands.
    pub state: ConnectionState,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The access token's expiry, seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The connection parameters.
    #[schema(value_type = Object)]
    pub parameters: IndexMap<String, String>,
    /// The last failure's diagnosis.
    pub diagnosis: Option<ConnectionDiagnosis>,
    /// When the connection test last passed.
    pub verified_at: Option<i64>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// A page of connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    /// The connections, by id.
    pub data: Vec<Connection>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A valid access token. The one response that carries a credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenView {
    /// The connection.
    pub connection_id: String,
    /// The access token.
    pub access_token: String,
    /// `Bearer`, usually.
    pub token_type: String,
    /// When it expires, seconds since the epoch.
    pub expires_at: Option<u64>,
    /// The API base URL, when the profile declares one (Salesforce: from `instance_url`).
    pub api_base_url: Option<String>,
    /// Token response fields the profile keeps (`instance_url`, `id`, ...).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// What to put on a request to the provider for a connection, whatever its kind of
/// credential. With `/token`, the one response that carries a credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsView {
    /// The connection.
    pub connection_id: String,
    /// The profile's kind of credential: `oauth2`, `api_key`, `basic`, `token_exchange`,
    /// `none`.
    pub kind: String,
    /// Headers to set on each request (`Authorization`, `X-Api-Key`, ...).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Query parameters to add to each request (only where the profile says the provider takes
    /// its secret nowhere else).
    pub query: std::collections::BTreeMap<String, String>,
    /// When they stop being good, seconds since the epoch; absent when nothing says (an API
    /// key).
    pub expires_at: Option<u64>,
    /// The API base URL, when the profile declares one.
    pub api_base_url: Option<String>,
    /// Token response fields the profile keeps.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Tokens a platform already holds, imported as a connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportedTokens {
    /// The access token.
    #[schema(value_type = String, write_only)]
    pub access_token: SecretString,
    /// The refresh token.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub refresh_token: Option<SecretString>,
    /// `Bearer` (default).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds the access token has left.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Granted scopes, separated as the profile separates them.
    #[serde(default)]
    pub scope: Option<String>,
    /// Other token response fields (`instance_url`, `issued_at`, ...); the profile keeps those
    /// it lists.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// A connection made from tokens the platform already holds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// The integration.
    pub integration_id: String,
    /// The end user.
    pub end_user: EndUser,
    /// Connection parameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: IndexMap<String, String>,
    /// The tokens (OAuth 2.0 profiles).
    #[serde(default)]
    pub tokens: Option<ImportedTokens>,
    /// The credential fields the end user gave (API keys, Basic, token exchange), by the
    /// profile's field names; checked, exchanged and tried (`api.verify`) before anything is
    /// stored. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<Object>, write_only)]
    pub fields: Option<IndexMap<String, SecretString>>,
}

/// The outcome of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// The connection.
    pub connection_id: String,
    /// Whether the test call passed; for a profile that declares no test, that the connection
    /// holds a usable access token.
    pub ok: bool,
    /// Whether a test call was made: the profile declares a connection test (`api.verify`).
    pub tested: bool,
    /// The state after the test.
    pub state: ConnectionState,
    /// Why it failed.
    pub diagnosis: Option<ConnectionDiagnosis>,
}

/// The outcome of a deletion or a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationResult {
    /// The connection.
    pub connection_id: String,
    /// Whether the provider confirmed the revocation.
    pub revoked_at_provider: bool,
    /// Why revocation failed or was not attempted.
    pub revocation_error: Option<String>,
    /// Whether the record was deleted (`DELETE`) or kept as `revoked` (`POST .../revoke`).
    pub deleted: bool,
}

/// A reload's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// Profiles loaded.
    pub profiles: usize,
    /// Warnings.
    pub warnings: usize,
}

/// Liveness and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A label: which backend holds it.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// What it may do: at least one of `integrations:read`, `integrations:write`,
    /// `connect_sessions:write`, `connections:read`, `connections:write`,
    /// `credentials:read`, `admin`.
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    /// Seconds until it stops being accepted (at most ten years); without it, it is accepted
    /// until revoked.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub expires_in: Option<u64>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// The key's public part (`kwk_ID_...`).
    pub id: String,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// A key created before keys had scopes: it keeps every scope, and says so here.
    pub every_scope: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it stops being accepted.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it was last accepted, to the minute.
    pub last_used_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// A new API key, with its secret: the only answer that ever carries it.
#[derive(Clone, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    /// The key as listed.
    #[serde(flatten)]
    pub key: ApiKey,
    /// `kwk_ID_SECRET`: send it as `Authorization: Bearer ...`. Shown once.
    pub secret: String,
}

/// Every API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, oldest first.
    pub data: Vec<ApiKey>,
}

impl std::fmt::Debug for ApiKeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreated").field("key", &self.key).field("secret", &"[REDACTED]").finish()
    }
}

/// Who did something, as an audit record names them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditActor {
    /// `api_key`, `connect_session`, `refresher` or `operator` (the `keyway` command).
    pub kind: String,
    /// The API key's id, the connect session's, or the refreshing instance's.
    pub id: Option<String>,
    /// The API key's name.
    pub name: Option<String>,
}

/// One record of the audit trail. Never a secret, a token, a query string or a body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `aud_...`.
    pub id: String,
    /// Seconds since the epoch.
    pub at: i64,
    /// Who.
    pub actor: AuditActor,
    /// The instance that wrote it (`inst_...`).
    pub instance: Option<String>,
    /// What: `credential.read`, `connection.refreshed`, ... (docs/server.md lists them).
    pub action: String,
    /// The connection it is about.
    pub connection_id: Option<String>,
    /// The integration it is about.
    pub integration_id: Option<String>,
    /// Another thing it is about (an API key's id).
    pub target_id: Option<String>,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    /// Why it was refused or failed.
    pub problem_code: Option<String>,
    /// The request's `X-Request-Id` (or the background pass's id).
    pub request_id: Option<String>,
    /// A short note: a refresh's trigger, a key's scopes, a revocation's outcome.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// A stored record as the API shows it.
    pub fn of(r: &crate::store::AuditRecord) -> AuditEntry {
        AuditEntry {
            id: r.id.clone(),
            at: r.at,
            actor: AuditActor {
                kind: r.actor.kind().to_owned(),
                id: r.actor.id().map(str::to_owned),
                name: r.actor.name().map(str::to_owned),
            },
            instance: r.instance.clone(),
            action: r.action.as_str().to_owned(),
            connection_id: r.connection_id.clone(),
            integration_id: r.integration_id.clone(),
            target_id: r.target_id.clone(),
            outcome: r.outcome.as_str().to_owned(),
            problem_code: r.problem_code.clone(),
            request_id: r.request_id.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// A page of the audit trail, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// The records.
    pub data: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}
