//! The hub's storage: one trait, portable SQL behind it. The store keeps what it is given:
//! secrets arrive already encrypted (`*_blob` fields) and are returned as stored; it never
//! sees a key or a plaintext secret.
//!
//! Every read-then-write is one conditional statement (`UPDATE ... WHERE ... RETURNING`,
//! `DELETE ... RETURNING`), so no transaction spans a round trip and a second instance
//! (PostgreSQL, later) needs no other protocol for these.

mod sql;

pub use sql::{Dialect, SqlStore};

use crate::domain::{
    Actor, AuditAction, ConnectionDiagnosis, ConnectionState, EndUser, IntegrationSettings, KeyScopes, Outcome,
    Parameters,
};
use async_trait::async_trait;

/// Why the store failed. The message names the operation and the database's complaint, or
/// the row and column that do not decode: never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the statement.
    #[error("database: {0}")]
    Database(String),
    /// A stored row does not decode into its record: which row, which column, and why.
    #[error("database row unreadable: {table} `{row}`, column `{column}`: {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's primary key (`?` when the key itself does not decode).
        row: String,
        /// The column.
        column: &'static str,
        /// What is wrong with it (its type, or where its JSON breaks).
        why: String,
    },
}

/// An integration: a tenant's connector configuration for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    /// `intg_...`.
    pub id: String,
    /// The profile id.
    pub profile: String,
    /// A display name.
    pub name: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret, encrypted.
    pub client_secret_blob: Option<Vec<u8>>,
    /// The staged client secret, encrypted.
    pub staged_client_secret_blob: Option<Vec<u8>>,
    /// The non-secret settings (environment, actions, scopes, parameters, choices).
    pub settings: IntegrationSettings,
    /// Bumped on every change.
    pub version: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// A connect session: an end user allowed to link accounts through the hosted page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// `cs_...`.
    pub id: String,
    /// SHA-256 of the session token, hex.
    pub token_hash: String,
    /// The end user.
    pub end_user: EndUser,
    /// The integration ids the session may link.
    pub integrations: Vec<String>,
    /// Where the done page sends the user.
    pub return_url: Option<String>,
    /// Origins `postMessage` may reach.
    pub allowed_origins: Vec<String>,
    /// Set when the session reconnects an existing connection.
    pub connection_id: Option<String>,
    /// Seconds since the epoch.
    pub expires_at: i64,
    /// When the token was exchanged for the browser's cookie (single use).
    pub opened_at: Option<i64>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// An authorization sent to the provider and not yet come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRecord {
    /// SHA-256 of `state`, hex.
    pub state_hash: String,
    /// The connect session it belongs to.
    pub session_id: String,
    /// The integration.
    pub integration_id: String,
    /// The connection parameters the user entered.
    pub parameters: Parameters,
    /// The PKCE verifier, encrypted.
    pub code_verifier_blob: Option<Vec<u8>>,
    /// The OpenID Connect `nonce` the request sent.
    pub nonce: Option<String>,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// A linked account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// `conn_...`.
    pub id: String,
    /// The integration.
    pub integration_id: String,
    /// The end user.
    pub end_user: EndUser,
    /// The connection parameters.
    pub parameters: Parameters,
    /// Where it stands.
    pub state: ConnectionState,
    /// The token set, encrypted.
    pub tokens_blob: Option<Vec<u8>>,
    /// The entered credential fields (kinds other than OAuth 2.0), encrypted.
    pub fields_blob: Option<Vec<u8>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The access token's expiry.
    pub expires_at: Option<i64>,
    /// The last diagnosis.
    pub diagnosis: Option<ConnectionDiagnosis>,
    /// When the connection test last passed.
    pub verified_at: Option<i64>,
    /// Since when refreshes have failed without a success in between (`degraded`).
    pub failing_since: Option<i64>,
    /// Bumped on every change.
    pub version: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

impl ConnectionRecord {
    /// A new connection without tokens yet (`pending`): saving its first token set makes it
    /// `active` (and is its `connection.created` event).
    pub fn pending(id: String, integration_id: &str, end_user: EndUser, parameters: Parameters, now: i64) -> Self {
        ConnectionRecord {
            id,
            integration_id: integration_id.to_owned(),
            end_user,
            parameters,
            state: ConnectionState::Pending,
            tokens_blob: None,
            fields_blob: None,
            scopes: Vec::new(),
            expires_at: None,
            diagnosis: None,
            verified_at: None,
            failing_since: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// New tokens for a connection, and what is shown of them.
#[derive(Debug, Clone)]
pub struct TokensUpdate {
    /// The token set, encrypted.
    pub tokens_blob: Vec<u8>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The access token's expiry.
    pub expires_at: Option<i64>,
}

/// An API key of the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key.
    pub id: String,
    /// A label.
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
    /// What it may do (`scopes` NULL: a key from before scopes, which keeps every one).
    pub scopes: KeyScopes,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<i64>,
    /// Set when revoked.
    pub revoked_at: Option<i64>,
    /// When it was last accepted, to the minute (written at most once a minute per key and
    /// instance).
    pub last_used_at: Option<i64>,
}

/// One record of the audit trail: who did what to which, when, how it ended, in which
/// request. Never a secret, a token, a query string or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// `aud_...`.
    pub id: String,
    /// Order: milliseconds since the epoch times 1,024 plus a per-process counter.
    pub seq: i64,
    /// Seconds since the epoch.
    pub at: i64,
    /// Who.
    pub actor: Actor,
    /// The instance that wrote it (`inst_...`), when a hub did.
    pub instance: Option<String>,
    /// What.
    pub action: AuditAction,
    /// The connection it is about (a store change fills it from the row it changed).
    pub connection_id: Option<String>,
    /// The integration it is about.
    pub integration_id: Option<String>,
    /// Another thing it is about (an API key's id).
    pub target_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    pub problem_code: Option<String>,
    /// The request (`X-Request-Id`) or background pass it belongs to.
    pub request_id: Option<String>,
    /// A short note that is never a secret: a refresh's trigger, a key's scopes.
    pub detail: Option<String>,
}

/// Which audit records to read: each filter optional, oldest first, after a cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// About this connection.
    pub connection: Option<String>,
    /// By this actor (its id: an API key's, a session's, an instance's).
    pub actor: Option<String>,
    /// This action.
    pub action: Option<AuditAction>,
    /// At or after (seconds since the epoch).
    pub since: Option<i64>,
    /// Before.
    pub until: Option<i64>,
    /// After this record (its `seq` and `id`).
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: u32,
}

/// A connection's current version and state, and its integration's version: what the hub
/// compares its cached entry with before using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStamp {
    /// The connection.
    pub id: String,
    /// Where it stands.
    pub state: ConnectionState,
    /// The row's version.
    pub version: i64,
    /// Its integration's version.
    pub integration_version: i64,
}

/// What kind of row a change retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A connection: deleted, revoked, reconnected, or its state changed.
    Connection,
    /// An integration: its settings or secrets changed, or it was deleted.
    Integration,
    /// An API key: revoked or changed.
    ApiKey,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Connection, ChangeKind::Integration, ChangeKind::ApiKey];

    /// The kind as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Connection => "connection",
            ChangeKind::Integration => "integration",
            ChangeKind::ApiKey => "api_key",
        }
    }
}

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its place in the log.
    pub seq: i64,
    /// What it retired.
    pub kind: ChangeKind,
    /// The retired row's id.
    pub target: String,
}

/// The change log after a point: every change committed past it (up to a limit), the log's
/// head, and how far it was pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeed {
    /// The last change committed.
    pub head: i64,
    /// Changes at or below this are no longer kept.
    pub pruned_through: i64,
    /// The changes after the point asked for, in order; at most the limit asked for.
    pub changes: Vec<Change>,
}

/// Which connections to list.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Only this integration's.
    pub integration: Option<String>,
    /// Only in this state.
    pub state: Option<ConnectionState>,
    /// Ids after this one (paging).
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// An encrypted value somewhere in the store, for key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretCell {
    /// The table.
    pub table: &'static str,
    /// The row's primary key.
    pub row: String,
    /// The column.
    pub column: &'static str,
    /// The ciphertext.
    pub blob: Vec<u8>,
}

/// A webhook event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// `evt_...`: the receiver's idempotency key.
    pub id: String,
    /// Order among the connection's events.
    pub seq: i64,
    /// The connection it is about.
    pub connection_id: String,
    /// `connection.created`, ...
    pub kind: String,
    /// The JSON body, as delivered.
    pub payload: String,
    /// Deliveries tried so far.
    pub attempts: i64,
}

/// Milliseconds since the epoch, times 1,024, plus a per-process counter: increasing within a
/// process, and in time order across instances.
pub(crate) fn next_event_seq() -> i64 {
    static COUNTER: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    ms * 1024 + COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rem_euclid(1024)
}

/// The hub's storage.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Whether the database answers (`/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new integration.
    async fn insert_integration(&self, record: &IntegrationRecord, audit: &AuditRecord) -> Result<(), StoreError>;
    /// One integration.
    async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>, StoreError>;
    /// Every integration, by id.
    async fn integrations(&self) -> Result<Vec<IntegrationRecord>, StoreError>;
    /// Replaces an integration if its version is still `expected_version`; `false` otherwise.
    async fn update_integration(
        &self,
        record: &IntegrationRecord,
        expected_version: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Deletes an integration that has no connections: `Ok(None)` when it does not exist,
    /// `Ok(Some(false))` when connections still use it.
    async fn delete_integration(&self, id: &str, audit: &AuditRecord) -> Result<Option<bool>, StoreError>;

    /// Stores a new connect session.
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError>;
    /// Marks a session opened by its token (once, before it expires) and returns it.
    async fn open_session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRecord>, StoreError>;
    /// One session.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores a pending authorization.
    async fn insert_authorization(&self, record: &AuthorizationRecord) -> Result<(), StoreError>;
    /// A pending authorization, left in place.
    async fn authorization(&self, state_hash: &str) -> Result<Option<AuthorizationRecord>, StoreError>;
    /// Removes and returns a pending authorization of `session_id` (single use).
    async fn take_authorization(
        &self,
        state_hash: &str,
        session_id: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError>;
    /// Drops authorizations and sessions that expired before `now`; the number removed.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// Stores a new connection.
    async fn insert_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError>;
    /// One connection.
    async fn connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;
    /// The change log after `after`: at most `limit` changes, with the head and the prune
    /// point, in one statement.
    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StoreError>;
    /// The current stamps of these connections (those that exist), in one statement.
    async fn connection_stamps(&self, ids: &[String]) -> Result<Vec<ConnectionStamp>, StoreError>;
    /// Connections by id, filtered.
    async fn connections(&self, filter: &ConnectionFilter) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// The number of connections in each state.
    async fn connection_counts(&self) -> Result<Vec<(ConnectionState, i64)>, StoreError>;
    /// Writes new tokens (after a refresh or a reauthorization): state `active`, no
    /// diagnosis. `false` when the connection is gone.
    async fn save_tokens(
        &self,
        id: &str,
        tokens: &TokensUpdate,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Writes a connection's entered credential fields (and, for a token exchange, its first
    /// token set; without one the row holds no tokens): state `active`, no diagnosis, in the
    /// change log like a new grant. `false` when the connection is gone.
    async fn save_credentials(
        &self,
        id: &str,
        fields_blob: &[u8],
        tokens: Option<&TokensUpdate>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Claims connections for the background refresher, soonest first: `active` or
    /// `degraded` ones whose access token expires before `expiring_before` or that were last
    /// written before `stale_before`, and whose lease is free. Each gets `owner`'s lease until
    /// `until` (PostgreSQL picks them `FOR UPDATE SKIP LOCKED`, so instances claiming at once
    /// take different rows). Answers their ids.
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        expiring_before: i64,
        stale_before: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Takes the connection's refresh lease for `owner` until `until`, when it is free, has
    /// lapsed (`lease_until < now`) or is `owner`'s already: one conditional `UPDATE`, so of
    /// several instances exactly one gets it. Answers the row's version and token set, or
    /// `None` when another owner holds the lease or the connection is gone.
    async fn take_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError>;
    /// Gives `owner`'s lease back.
    async fn release_lease(&self, id: &str, owner: &str) -> Result<(), StoreError>;
    /// Writes refreshed tokens if the row is still at `version` (compare-and-swap) and ends
    /// the lease; `false` when another write came first.
    async fn save_tokens_if(
        &self,
        id: &str,
        tokens: &TokensUpdate,
        version: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Sets a connection's state and diagnosis. `false` when the connection is gone.
    async fn set_state(
        &self,
        id: &str,
        state: ConnectionState,
        diagnosis: Option<&ConnectionDiagnosis>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Marks a connection revoked and drops its tokens. `false` when the connection is gone.
    async fn mark_revoked(&self, id: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError>;
    /// Records a passed connection test.
    async fn set_verified(&self, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Deletes a connection; `false` when it did not exist.
    async fn delete_connection(&self, id: &str, audit: &AuditRecord) -> Result<bool, StoreError>;

    /// Webhook events ready to deliver, oldest first: undelivered, due, not claimed by a
    /// delivery in progress, and with no earlier undelivered event of the same connection
    /// (events reach the receiver in order per connection).
    async fn pending_events(&self, now: i64, limit: u32) -> Result<Vec<EventRecord>, StoreError>;
    /// Claims an event for delivery until `until`; `false` when another delivery holds it.
    async fn claim_event(&self, id: &str, now: i64, until: i64) -> Result<bool, StoreError>;
    /// Records a delivery.
    async fn event_delivered(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Records a failed delivery and when to try again.
    async fn event_failed(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<(), StoreError>;

    /// Stores a new API key.
    async fn insert_api_key(&self, record: &ApiKeyRecord, audit: &AuditRecord) -> Result<(), StoreError>;
    /// One API key.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// These API keys (those that exist), in one statement.
    async fn api_keys(&self, ids: &[String]) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Every API key, revoked ones included, by creation time.
    async fn all_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes an API key (the first revocation's time stays; logged, so every instance
    /// refuses it on its next request); the key as stored after, or `None` when there is none.
    async fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditRecord)
    -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Appends audit records (reads and refusals, which change nothing else), in one transaction.
    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// Audit records, oldest first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes up to `limit` audit records older than `before`, oldest first; how many.
    async fn prune_audit(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
    /// Records that keys were accepted at these times (only ever moves `last_used_at` later).
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError>;

    /// Up to `limit` encrypted values not under key `key_id` (for rotation), in a stable order.
    async fn cells_not_under(&self, key_id: &str, limit: u32) -> Result<Vec<SecretCell>, StoreError>;
    /// Replaces a cell's blob if it still holds `old` (rotation never overwrites a newer write).
    async fn replace_cell(&self, cell: &SecretCell, new_blob: &[u8]) -> Result<bool, StoreError>;
}
