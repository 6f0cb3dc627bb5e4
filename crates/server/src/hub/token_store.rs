//! The token manager's store: the connection row's token set, encrypted.

use super::audit::RecordExt as _;
use super::*;

/// The token manager's store: the connection row's encrypted token set. Saving a token set
/// marks the connection `active`.
///
/// Refreshes across instances: a claim takes the row's lease (one conditional `UPDATE`),
/// re-reads the stored tokens and answers them instead when another instance saved newer
/// ones; the lease outlasts the provider's timeout and every retry; the refreshed tokens are
/// written back only if the row is still at the version the claim saw. No database
/// connection or lock is held across the provider's HTTP call.
#[derive(Debug)]
pub(super) struct EncryptedTokenStore {
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<Keyring>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: Arc<Metrics>,
    /// This process's name in `lease_owner`.
    pub(super) owner: String,
    /// How long a lease lasts.
    pub(super) lease: Duration,
    /// Connections this process holds the lease of, with the row version the claim saw.
    pub(super) claims: Mutex<HashMap<String, i64>>,
}

fn tokens_cell(id: &str) -> Cell<'_> {
    Cell { table: "connections", row: id, column: "tokens_blob" }
}

/// A connection's stored token set, decrypted and read: the one way tokens leave the row.
pub(super) fn open_tokens(keys: &Keyring, id: &str, blob: &[u8]) -> Result<TokenSet, HubError> {
    open_secret_json(keys, tokens_cell(id), blob, "token set")
}

/// A cell of secret JSON (a token set, credential fields), decrypted and read. Neither
/// error quotes the plaintext: serde's message could, so only where it broke is said.
pub(super) fn open_secret_json<T: serde::de::DeserializeOwned>(
    keys: &Keyring,
    cell: Cell<'_>,
    blob: &[u8],
    what: &str,
) -> Result<T, HubError> {
    let plain = keys.decrypt(cell, blob).map_err(|e| {
        tracing::error!(connection = %cell.row, column = cell.column, error = %e, "a stored secret does not decrypt");
        HubError::new(ProblemCode::SecretUndecryptable, format!("{e}; check the key file"))
    })?;
    serde_json::from_slice(&plain).map_err(|e| {
        HubError::new(ProblemCode::TokensUnreadable, format!("the stored {what} breaks at column {}", e.column()))
    })
}

/// A token set encrypted for its connection's row, with what is shown of it: the one way
/// tokens reach the row.
pub(super) fn seal_tokens(keys: &Keyring, id: &str, tokens: &TokenSet) -> Result<TokensUpdate, StoreError> {
    let plain = serde_json::to_vec(tokens).map_err(|e| StoreError(format!("token set: {e}")))?;
    Ok(TokensUpdate {
        tokens_blob: keys.encrypt(tokens_cell(id), &plain),
        scopes: tokens.scopes.clone(),
        expires_at: tokens.expires_at.and_then(|t| i64::try_from(t).ok()),
    })
}

impl EncryptedTokenStore {
    fn seal(&self, id: &str, tokens: &TokenSet) -> Result<TokensUpdate, StoreError> {
        seal_tokens(&self.keys, id, tokens)
    }

    fn open(&self, id: &str, blob: &[u8]) -> Result<TokenSet, StoreError> {
        open_tokens(&self.keys, id, blob).map_err(|e| StoreError(e.to_string()))
    }
}

impl TokenStore for EncryptedTokenStore {
    fn credential_fields<'a>(
        &'a self,
        connection: &'a str,
    ) -> StoreFuture<'a, Option<keyway_runtime::CredentialFields>> {
        Box::pin(async move {
            let row = self.store.connection(connection).await.map_err(|e| StoreError(e.to_string()))?;
            match row.and_then(|r| r.fields_blob) {
                Some(blob) => super::credentials::open_fields(&self.keys, connection, &blob)
                    .map(Some)
                    .map_err(|e| StoreError(e.to_string())),
                None => Ok(None),
            }
        })
    }

    fn load<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, Option<TokenSet>> {
        Box::pin(async move {
            let row = self.store.connection(connection).await.map_err(|e| StoreError(e.to_string()))?;
            match row.and_then(|r| r.tokens_blob) {
                Some(blob) => self.open(connection, &blob).map(Some),
                None => Ok(None),
            }
        })
    }

    fn save<'a>(&'a self, connection: &'a str, tokens: &'a TokenSet) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let update = self.seal(connection, tokens)?;
            let now = self.clock.now() as i64;
            let claimed = self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(connection);
            // Who this save is for, recorded in its transaction: the call's caller (the
            // refresher, when the hub acts on its own).
            let context = super::audit::Context::current();
            let caller = context.as_ref().map_or_else(
                || Caller {
                    actor: crate::domain::Actor::Refresher { instance: self.owner.clone() },
                    request_id: ids::new_id(ids::REQUEST),
                    instance: Some(self.owner.clone()),
                },
                |c| c.caller.clone(),
            );
            if let Some(version) = claimed {
                let audit = caller
                    .record(crate::domain::AuditAction::Refreshed, now)
                    .detail(context.as_ref().map_or("background", |c| c.trigger));
                return match self.store.save_tokens_if(connection, &update, version, now, &audit).await {
                    Ok(true) => {
                        bump(&self.metrics.token_sets_saved);
                        Ok(())
                    }
                    Ok(false) => {
                        // A reconnect, a revocation or a deletion wrote first: theirs stands.
                        // These tokens are served from memory until they fall due; the next
                        // claim then finds the stored ones.
                        tracing::warn!(
                            connection,
                            "the connection changed during its refresh; the stored state stands"
                        );
                        let _ = self.store.release_lease(connection, &self.owner).await;
                        Ok(())
                    }
                    Err(e) => Err(StoreError(e.to_string())),
                };
            }
            let action = context.as_ref().map_or(crate::domain::AuditAction::Refreshed, |c| c.save);
            let audit = caller.record(action, now);
            match self.store.save_tokens(connection, &update, now, &audit).await {
                Ok(true) => {
                    bump(&self.metrics.token_sets_saved);
                    Ok(())
                }
                Ok(false) => Err(StoreError(format!("the connection `{connection}` was deleted"))),
                Err(e) => Err(StoreError(e.to_string())),
            }
        })
    }

    fn claim_refresh<'a>(&'a self, connection: &'a str, current: &'a TokenSet) -> StoreFuture<'a, RefreshClaim> {
        Box::pin(async move {
            let now = self.clock.now() as i64;
            let until = now + self.lease.as_secs() as i64;
            let taken = self
                .store
                .take_lease(connection, &self.owner, now, until)
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            let Some((version, blob)) = taken else {
                if self.store.connection(connection).await.map_err(|e| StoreError(e.to_string()))?.is_none() {
                    return Err(StoreError(format!("the connection `{connection}` was deleted")));
                }
                // Another instance is refreshing: poll, jittered so waiters do not ask in step.
                let wait = Duration::from_millis(50 + rand::thread_rng().gen_range(0..100));
                return Ok(RefreshClaim::Busy(wait));
            };
            if let Some(stored) = blob.map(|b| self.open(connection, &b)).transpose()? {
                if stored.access_token.expose_secret() != current.access_token.expose_secret() {
                    // Another instance refreshed (or the user reconnected) since this one read.
                    let _ = self.store.release_lease(connection, &self.owner).await;
                    return Ok(RefreshClaim::Refreshed(Box::new(stored)));
                }
            }
            self.claims
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(connection.to_owned(), version);
            Ok(RefreshClaim::Granted)
        })
    }

    fn release_refresh<'a>(&'a self, connection: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(connection);
            self.store.release_lease(connection, &self.owner).await.map_err(|e| StoreError(e.to_string()))
        })
    }

    fn remove<'a>(&'a self, _connection: &'a str) -> StoreFuture<'a, ()> {
        // Rows are deleted by the hub, never by the manager.
        Box::pin(async { Ok(()) })
    }
}
