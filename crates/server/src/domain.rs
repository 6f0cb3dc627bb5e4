//! The hub's own vocabulary, below every other module: a connection's states and the events
//! their changes mean, the end user, a stored diagnosis, an integration's settings. The
//! store, the hub and the HTTP layer all speak in these types; SQL, the OpenAPI document and
//! `docs/server.md` take their names from here (a test keeps the docs equal).

use indexmap::IndexMap;
use keyway_runtime::DiagnosisKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! connection_states {
    ($( $name:ident = $text:literal, $meaning:literal; )*) => {
        /// Where a connection stands. Last known: a refresh or a test may change it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ConnectionState {
            $( #[doc = $meaning] $name, )*
        }

        impl ConnectionState {
            /// Every state.
            pub const ALL: &'static [ConnectionState] = &[$(ConnectionState::$name,)*];

            /// The state as stored and shown: `needs_reauth`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ConnectionState::$name => $text,)* }
            }

            /// The state a stored or requested name means.
            pub fn parse(text: &str) -> Option<ConnectionState> {
                match text { $($text => Some(ConnectionState::$name),)* _ => None }
            }
        }
    };
}

connection_states! {
    Pending = "pending", "Created; the account has not finished linking.";
    Active = "active", "Working.";
    Degraded = "degraded", "Refreshes fail for a transient reason; they are retried.";
    NeedsReauth = "needs_reauth", "The user (or an admin) must act; the diagnosis says what.";
    Revoked = "revoked", "Revoked at the provider through keyway; reconnect to use again.";
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The webhook event a change of a connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The first tokens were stored.
    Created,
    /// Tokens again after `needs_reauth` or `revoked`.
    Reauthorized,
    /// `degraded` back to `active`.
    Recovered,
    /// Refreshes started failing (once per degradation).
    RefreshFailing,
    /// The user must act.
    NeedsReauth,
    /// Revoked through keyway.
    Revoked,
    /// Deleted through keyway.
    Deleted,
}

impl EventKind {
    /// The event's `type`: `connection.created`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "connection.created",
            EventKind::Reauthorized => "connection.reauthorized",
            EventKind::Recovered => "connection.recovered",
            EventKind::RefreshFailing => "connection.refresh_failing",
            EventKind::NeedsReauth => "connection.needs_reauth",
            EventKind::Revoked => "connection.revoked",
            EventKind::Deleted => "connection.deleted",
        }
    }

    /// The event a change of state means, if any. One per transition: a connection failing
    /// refresh after refresh reports `refresh_failing` once, when it becomes `degraded`.
    /// `previous` is `None` for a connection that had no state before.
    pub fn of_transition(previous: Option<ConnectionState>, next: ConnectionState) -> Option<EventKind> {
        use ConnectionState as S;
        Some(match (previous, next) {
            (Some(p), n) if p == n => return None,
            (None | Some(S::Pending), S::Active) => EventKind::Created,
            (Some(S::NeedsReauth | S::Revoked), S::Active) => EventKind::Reauthorized,
            (Some(S::Degraded), S::Active) => EventKind::Recovered,
            (_, S::Degraded) => EventKind::RefreshFailing,
            (_, S::NeedsReauth) => EventKind::NeedsReauth,
            (_, S::Revoked) => EventKind::Revoked,
            _ => return None,
        })
    }
}

/// The end user a connect session or a connection is for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndUser {
    /// The platform's id for the user.
    #[schema(min_length = 1, max_length = 255)]
    pub id: String,
    /// An email address, shown on the connect page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A name, shown on the connect page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// What the provider or keyway said about a connection's last failure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectionDiagnosis {
    /// What to do about it: `reauthorize`, `retry_later`, `fix_configuration`, `client_bug`,
    /// `unknown` (the runtime's `DiagnosisKind`).
    #[schema(value_type = String, example = "reauthorize")]
    pub kind: DiagnosisKind,
    /// The provider's error code, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The provider's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The profile's error-map rule that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    /// How to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Seconds since the epoch.
    pub at: i64,
}

impl ConnectionDiagnosis {
    /// A diagnosis keyway makes itself (no provider answer to quote).
    pub fn keyway(kind: DiagnosisKind, description: impl Into<String>, at: i64) -> ConnectionDiagnosis {
        ConnectionDiagnosis {
            kind,
            error: None,
            description: Some(description.into()),
            rule: None,
            meaning: None,
            fix: None,
            at,
        }
    }

    /// The provider's (or the profile's) diagnosis of a refusal.
    pub fn of(d: &keyway_runtime::Diagnosis, at: i64) -> ConnectionDiagnosis {
        ConnectionDiagnosis {
            kind: d.kind,
            error: Some(d.provider.error.clone()),
            description: d.provider.description.clone(),
            rule: d.rule.clone(),
            meaning: d.meaning.clone(),
            fix: d.hint.clone(),
            at,
        }
    }

    /// The diagnosis of a failed flow: the provider's when it explained, else the runtime's
    /// judgement of the failure (transient or not).
    pub fn of_flow(e: &keyway_runtime::FlowError, at: i64) -> ConnectionDiagnosis {
        match e.diagnosis() {
            Some(d) => ConnectionDiagnosis::of(d, at),
            None => {
                let kind = if e.is_transient() { DiagnosisKind::RetryLater } else { DiagnosisKind::Unknown };
                ConnectionDiagnosis::keyway(kind, e.to_string(), at)
            }
        }
    }

    /// The best one-line reason: the meaning, else the description.
    pub fn reason(&self) -> Option<&str> {
        self.meaning.as_deref().or(self.description.as_deref())
    }
}

/// The stored, non-secret settings of an integration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// The environment.
    pub environment: Option<String>,
    /// The actions.
    pub actions: Vec<String>,
    /// Custom scopes.
    pub custom_scopes: Option<Vec<String>>,
    /// Parameters.
    pub parameters: IndexMap<String, String>,
    /// PKCE choice.
    pub pkce: Option<bool>,
    /// Refresh-with-secret choice.
    pub refresh_sends_secret: Option<bool>,
}

/// Connection parameters: name to value, in the order given.
pub type Parameters = IndexMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names_and_serde() {
        for &state in ConnectionState::ALL {
            assert_eq!(ConnectionState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::Value::from(state.as_str())));
        }
        assert_eq!(ConnectionState::parse("Active"), None);
    }

    #[test]
    fn transitions_report_one_event_each() {
        use ConnectionState as S;
        assert_eq!(EventKind::of_transition(Some(S::Pending), S::Active), Some(EventKind::Created));
        assert_eq!(EventKind::of_transition(None, S::Active), Some(EventKind::Created));
        assert_eq!(EventKind::of_transition(Some(S::Revoked), S::Active), Some(EventKind::Reauthorized));
        assert_eq!(EventKind::of_transition(Some(S::Degraded), S::Active), Some(EventKind::Recovered));
        assert_eq!(EventKind::of_transition(Some(S::Degraded), S::Degraded), None);
        assert_eq!(EventKind::of_transition(Some(S::Active), S::Degraded), Some(EventKind::RefreshFailing));
        assert_eq!(EventKind::of_transition(Some(S::Active), S::Active), None);
        assert_eq!(EventKind::of_transition(Some(S::Active), S::Pending), None);
    }
}

macro_rules! scopes {
    ($( $name:ident = $text:literal, $meaning:literal; )*) => {
        /// What an API key may do: each operation of the API needs one scope (the OpenAPI
        /// document's security requirement names it). Reading credentials is a scope of its
        /// own, apart from everything else.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $( #[doc = $meaning] $name, )*
        }

        impl Scope {
            /// Every scope, in the order the docs list them.
            pub const ALL: &'static [Scope] = &[$(Scope::$name,)*];

            /// The scope as stored and shown: `credentials:read`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Scope::$name => $text,)* }
            }

            /// What the scope allows (docs/server.md's table says the same).
            pub const fn meaning(self) -> &'static str {
                match self { $(Scope::$name => $meaning,)* }
            }

            /// The scope a stored or requested name means.
            pub fn parse(text: &str) -> Option<Scope> {
                match text { $($text => Some(Scope::$name),)* _ => None }
            }
        }
    };
}

scopes! {
    IntegrationsRead = "integrations:read", "List and read integrations (never their secrets).";
    IntegrationsWrite = "integrations:write", "Create, change and delete integrations, their client secrets included.";
    ConnectSessionsWrite = "connect_sessions:write", "Create connect sessions (links for end users to connect accounts).";
    ConnectionsRead = "connections:read", "List and read connections: states, scopes, diagnoses, never tokens.";
    ConnectionsWrite = "connections:write", "Import, test, revoke and delete connections.";
    CredentialsRead = "credentials:read", "Read a connection's access token, refreshing it (forced or when due).";
    Admin = "admin", "Reload the profiles, manage API keys, read the audit trail.";
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes an API key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScopes {
    /// A key created before keys had scopes: it keeps every scope (it could do everything).
    Every,
    /// These, sorted, each once.
    Only(Vec<Scope>),
}

impl KeyScopes {
    /// These scopes, sorted and each once.
    pub fn only(mut scopes: Vec<Scope>) -> KeyScopes {
        scopes.sort_unstable();
        scopes.dedup();
        KeyScopes::Only(scopes)
    }

    /// Whether a key with these scopes may do what `scope` allows.
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            KeyScopes::Every => true,
            KeyScopes::Only(scopes) => scopes.contains(&scope),
        }
    }

    /// The scopes' names (every scope's for a key from before scopes).
    pub fn names(&self) -> Vec<String> {
        match self {
            KeyScopes::Every => Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
            KeyScopes::Only(scopes) => scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    }
}

/// Who did something: an audit record's actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request with an API key.
    ApiKey {
        /// The key's id (its public part).
        id: String,
        /// Its name.
        name: String,
    },
    /// An end user on the connect page, by the connect session they came with.
    ConnectSession {
        /// `cs_...`.
        id: String,
    },
    /// The background refresher of one instance.
    Refresher {
        /// `inst_...`: the instance (its lease owner name).
        instance: String,
    },
    /// The `keyway` command run against the database (`keyway keys api create`, ...).
    Operator,
}

impl Actor {
    /// `api_key`, `connect_session`, `refresher` or `operator`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Actor::ApiKey { .. } => "api_key",
            Actor::ConnectSession { .. } => "connect_session",
            Actor::Refresher { .. } => "refresher",
            Actor::Operator => "operator",
        }
    }

    /// The actor's id: the key's, the session's, the instance's; `None` for the operator.
    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::ApiKey { id, .. } | Actor::ConnectSession { id } | Actor::Refresher { instance: id } => Some(id),
            Actor::Operator => None,
        }
    }

    /// The actor stored as its kind, id and name; `None` when they do not make one.
    pub fn from_parts(kind: &str, id: Option<String>, name: Option<String>) -> Option<Actor> {
        Some(match (kind, id, name) {
            ("api_key", Some(id), Some(name)) => Actor::ApiKey { id, name },
            ("connect_session", Some(id), None) => Actor::ConnectSession { id },
            ("refresher", Some(instance), None) => Actor::Refresher { instance },
            ("operator", None, None) => Actor::Operator,
            _ => return None,
        })
    }

    /// The key's name, for an API key.
    pub fn name(&self) -> Option<&str> {
        match self {
            Actor::ApiKey { name, .. } => Some(name),
            _ => None,
        }
    }
}

macro_rules! audit_actions {
    ($( $name:ident = $text:literal, $meaning:literal; )*) => {
        /// What an audit record says happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $( #[doc = $meaning] $name, )*
        }

        impl AuditAction {
            /// Every action, in the order the docs list them.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$name,)*];

            /// The action as stored and shown: `credential.read`.
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$name => $text,)* }
            }

            /// When it is recorded (docs/server.md's table says the same).
            pub const fn meaning(self) -> &'static str {
                match self { $(AuditAction::$name => $meaning,)* }
            }

            /// The action a stored or requested name means.
            pub fn parse(text: &str) -> Option<AuditAction> {
                match text { $($text => Some(AuditAction::$name),)* _ => None }
            }
        }
    };
}

audit_actions! {
    CredentialRead = "credential.read", "A connection's credential was asked for (`/token`, `/refresh`, `/credentials`): handed out (`ok`) or refused, with the problem code.";
    Refreshed = "connection.refreshed", "New tokens from a refresh were stored: on a read, forced, or by the background refresher (`detail`).";
    RefreshFailed = "connection.refresh_failed", "A refresh failed and the connection's state changed (`degraded`, `needs_reauth`).";
    TestFailed = "connection.test_failed", "The connection test failed and the connection's state changed.";
    Linked = "connection.linked", "An end user linked an account on the connect page.";
    Reconnected = "connection.reconnected", "An end user linked an existing connection again (a reconnect session).";
    Imported = "connection.imported", "Tokens, or an end user's credential fields, a platform held were imported as a connection (checked and tried first).";
    Revoked = "connection.revoked", "A connection was revoked (`detail`: whether the provider confirmed).";
    Deleted = "connection.deleted", "A connection was deleted (`detail`: whether the provider confirmed the revocation).";
    IntegrationCreated = "integration.created", "An integration was created.";
    IntegrationUpdated = "integration.updated", "An integration was changed (its secrets included).";
    IntegrationDeleted = "integration.deleted", "An integration was deleted.";
    ApiKeyCreated = "api_key.created", "An API key was created (`target_id`: its id, `detail`: its scopes).";
    ApiKeyRevoked = "api_key.revoked", "An API key was revoked (`target_id`: its id).";
    RequestRefused = "request.refused", "A request was refused because its API key lacks the scope (`detail`: the operation and the scope).";
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused (a problem code says why).
    Refused,
    /// Tried and failed (a refresh, a test).
    Failed,
}

impl Outcome {
    /// `ok`, `refused` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome a stored name means.
    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "ok" => Some(Outcome::Ok),
            "refused" => Some(Outcome::Refused),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}
