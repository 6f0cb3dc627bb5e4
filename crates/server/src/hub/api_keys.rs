//! API keys of the management API: created with scopes and an optional expiry (the secret
//! shown once, stored as a hash), listed without secrets, revoked; checked on every request
//! against the database's current row (the freshness check, batched), in constant time.

use super::audit::RecordExt as _;
use super::*;
use crate::domain::{Actor, AuditAction, KeyScopes, Outcome, Scope};
use crate::resources::{ApiKey, ApiKeyCreated, ApiKeyList, NewApiKey};

/// The longest key name.
const MAX_NAME: usize = 100;
/// The longest lifetime a key may be given: ten years.
pub const MAX_KEY_LIFETIME: u64 = 10 * 365 * 24 * 60 * 60;
/// `last used` is written at most this often per key and instance.
const LAST_USED_EVERY: i64 = 60;

/// Who called: the actor (for the audit trail), what it may do, and the request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub actor: Actor,
    /// The request's id (`X-Request-Id`), or the background pass's.
    pub request_id: String,
    /// The hub instance serving it (`inst_...`); `None` for the `keyway` command.
    pub instance: Option<String>,
}

impl Caller {
    /// The `keyway` command run against the database.
    pub fn operator() -> Caller {
        Caller { actor: Actor::Operator, request_id: ids::new_id(ids::REQUEST), instance: None }
    }

    /// An end user on the connect page, by their session.
    pub fn session(session_id: &str, request_id: &str, instance: &str) -> Caller {
        Caller {
            actor: Actor::ConnectSession { id: session_id.to_owned() },
            request_id: request_id.to_owned(),
            instance: Some(instance.to_owned()),
        }
    }
}

/// The API's view of a stored key, at `now`.
pub fn api_key_view(record: &ApiKeyRecord, now: i64) -> ApiKey {
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else if record.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    ApiKey {
        id: record.id.clone(),
        name: record.name.clone(),
        scopes: record.scopes.names(),
        every_scope: record.scopes == KeyScopes::Every,
        created_at: record.created_at,
        expires_at: record.expires_at,
        revoked_at: record.revoked_at,
        last_used_at: record.last_used_at,
        status: status.to_owned(),
    }
}

/// A new key's name, scopes and expiry, checked: each refusal points at its field.
fn check_new_key(new: &NewApiKey, now: i64) -> Result<(KeyScopes, Option<i64>), HubError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(HubError::invalid_field("/name", format!("the name must be 1 to {MAX_NAME} printable characters")));
    }
    if new.scopes.is_empty() {
        return Err(HubError::invalid_field("/scopes", "name at least one scope"));
    }
    let mut scopes = Vec::with_capacity(new.scopes.len());
    for (i, name) in new.scopes.iter().enumerate() {
        let Some(scope) = Scope::parse(name) else {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            return Err(HubError::invalid_field(
                &format!("/scopes/{i}"),
                format!("not a scope; the scopes are {}", known.join(", ")),
            ));
        };
        scopes.push(scope);
    }
    let expires_at = match new.expires_in {
        None => None,
        Some(0) => return Err(HubError::invalid_field("/expires_in", "a key must live at least a second")),
        Some(s) if s > MAX_KEY_LIFETIME => {
            return Err(HubError::invalid_field("/expires_in", "a key may live at most ten years"));
        }
        Some(s) => Some(now + s as i64),
    };
    Ok((KeyScopes::only(scopes), expires_at))
}

impl Hub {
    /// Creates an API key in `store` (the CLI's path, and the API's); the secret is in the
    /// answer only, stored as its SHA-256.
    pub async fn create_api_key_in(
        store: &dyn Store,
        new: &NewApiKey,
        caller: &Caller,
        now: i64,
    ) -> Result<ApiKeyCreated, HubError> {
        let (scopes, expires_at) = check_new_key(new, now)?;
        let id = ids::random(12);
        let secret = ids::random(40);
        let record = ApiKeyRecord {
            id: id.clone(),
            name: new.name.trim().to_owned(),
            secret_hash: sha256_hex(&secret),
            scopes,
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let audit = caller
            .record(AuditAction::ApiKeyCreated, now)
            .target(&id)
            .detail(format!("scopes: {}", record.scopes.names().join(" ")));
        store.insert_api_key(&record, &audit).await?;
        tracing::info!(key = %id, name = %record.name, request_id = %caller.request_id, "API key created");
        Ok(ApiKeyCreated { key: api_key_view(&record, now), secret: format!("kwk_{id}_{secret}") })
    }

    /// A key with every scope and no expiry, named `name` (tests, benchmarks).
    pub async fn create_api_key(store: &dyn Store, name: &str, now: i64) -> Result<String, HubError> {
        let every = NewApiKey {
            name: name.to_owned(),
            scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_in: None,
        };
        Ok(Hub::create_api_key_in(store, &every, &Caller::operator(), now).await?.secret)
    }

    /// Every key in `store`, oldest first, as seen at `now`.
    pub async fn list_api_keys_in(store: &dyn Store, now: i64) -> Result<ApiKeyList, HubError> {
        Ok(ApiKeyList { data: store.all_api_keys().await?.iter().map(|r| api_key_view(r, now)).collect() })
    }

    /// Revokes a key in `store`: refused from its next request on, on every instance.
    pub async fn revoke_api_key_in(store: &dyn Store, id: &str, caller: &Caller, now: i64) -> Result<ApiKey, HubError> {
        let audit = caller.record(AuditAction::ApiKeyRevoked, now).target(id);
        let record = store.revoke_api_key(id, now, &audit).await?.ok_or_else(|| HubError::not_found("API key", id))?;
        tracing::info!(key = %id, request_id = %caller.request_id, "API key revoked");
        Ok(api_key_view(&record, now))
    }

    /// `POST /v1/api-keys`.
    pub async fn create_api_key_for(&self, caller: &Caller, new: NewApiKey) -> Result<ApiKeyCreated, HubError> {
        Hub::create_api_key_in(self.store.as_ref(), &new, caller, self.now()).await
    }

    /// `GET /v1/api-keys`.
    pub async fn api_keys(&self) -> Result<ApiKeyList, HubError> {
        Hub::list_api_keys_in(self.store.as_ref(), self.now()).await
    }

    /// `DELETE /v1/api-keys/{id}`.
    pub async fn revoke_api_key(&self, caller: &Caller, id: &str) -> Result<ApiKey, HubError> {
        Hub::revoke_api_key_in(self.store.as_ref(), id, caller, self.now()).await
    }

    /// Checks a management API key (`kwk_ID_SECRET`) as the database holds it now (revoked
    /// or expired keys are refused on every instance from their next request) and, when
    /// it is good, that it holds `scope`. The secret's hash is compared in constant time.
    pub async fn check_api_key(&self, presented: &str, request_id: &str) -> Result<(Caller, KeyScopes), HubError> {
        let unauthorized = |detail: &str| HubError::new(ProblemCode::Unauthorized, detail);
        if presented.starts_with("kwcs_") {
            return Err(unauthorized("a connect session token opens only its connect page, not the API"));
        }
        let Some((id, secret)) = presented.strip_prefix("kwk_").and_then(|rest| rest.split_once('_')) else {
            return Err(unauthorized("the API key is malformed or missing"));
        };
        let presented_hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Asked of the database on every request (batched): a key revoked on any instance is
        // refused on its next use everywhere.
        let record = if id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.freshness.api_key(id).await?
        } else {
            None
        };
        let matches = record
            .as_ref()
            .and_then(|r| hex_to_32(&r.secret_hash))
            .is_some_and(|hash| bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &presented_hash[..])));
        let Some(record) = record.filter(|_| matches) else {
            return Err(unauthorized("the API key is not valid"));
        };
        let now = self.now();
        if record.revoked_at.is_some() {
            return Err(unauthorized("the API key was revoked"));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(unauthorized("the API key has expired"));
        }
        self.note_key_use(&record.id, now);
        let caller = Caller {
            actor: Actor::ApiKey { id: record.id.clone(), name: record.name.clone() },
            request_id: request_id.to_owned(),
            instance: Some(self.lease_owner.clone()),
        };
        Ok((caller, record.scopes))
    }

    /// The caller of an API operation that needs `scope` (`what`: its method and route, for
    /// the refusal): the key checked, then its scopes. A key without the scope is refused
    /// with `insufficient_scope`, naming the scope.
    pub async fn authorize(
        &self,
        presented: &str,
        scope: Scope,
        request_id: &str,
        what: &str,
    ) -> Result<Caller, HubError> {
        let (caller, scopes) = self.check_api_key(presented, request_id).await?;
        if scopes.allows(scope) {
            return Ok(caller);
        }
        tracing::warn!(key = caller.actor.id().unwrap_or_default(), %scope, operation = what, request_id, "refused: the key lacks the scope");
        // Recorded before the refusal is answered.
        let audit = caller
            .record(AuditAction::RequestRefused, self.now())
            .ended(Outcome::Refused, ProblemCode::InsufficientScope)
            .detail(format!("{what} needs {scope}"));
        if let Err(e) = self.audit.write(audit).await {
            tracing::error!(error = %e, request_id, "a refused request could not be recorded");
        }
        Err(HubError::new(
            ProblemCode::InsufficientScope,
            format!("`{what}` needs an API key with the scope `{scope}`; this key has {}", describe(&scopes)),
        )
        .with_scope(scope))
    }

    /// Records a key's use at most once a minute per key (on this instance), off the
    /// request's path: `last used` costs no write per request.
    fn note_key_use(&self, id: &str, now: i64) {
        let due = {
            let mut uses = self.key_uses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match uses.get(id) {
                Some(&at) if now - at < LAST_USED_EVERY => false,
                _ => {
                    uses.insert(id.to_owned(), now);
                    true
                }
            }
        };
        if due {
            let store = Arc::clone(&self.store);
            let uses = vec![(id.to_owned(), now)];
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_keys(&uses).await {
                    tracing::warn!(error = %e, "an API key's last use could not be recorded");
                }
            });
        }
    }
}

fn describe(scopes: &KeyScopes) -> String {
    match scopes {
        KeyScopes::Every => "every scope".to_owned(),
        KeyScopes::Only(s) => s.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
    }
}

fn hex_to_32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
