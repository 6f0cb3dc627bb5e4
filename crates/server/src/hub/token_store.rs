//! The token manager's store: the connection row's token set, encrypted.

use super::*;

/// The token manager's store: the connection row's encrypted token set. Saving a token set
/// marks the connection `active`.
#[derive(Debug)]
pub(super) struct EncryptedTokenStore {
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<Keyring>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: Arc<Metrics>,
}

pub(super) fn tokens_cell(id: &str) -> Cell<'_> {
    Cell { table: "connections", row: id, column: "tokens_blob" }
}

impl EncryptedTokenStore {
    fn seal(&self, id: &str, tokens: &TokenSet) -> Result<TokensUpdate, StoreError> {
        let plain = serde_json::to_vec(tokens).map_err(|e| StoreError(format!("token set: {e}")))?;
        Ok(TokensUpdate {
            tokens_blob: self.keys.encrypt(tokens_cell(id), &plain),
            scopes: serde_json::to_string(&tokens.scopes).unwrap_or_else(|_| "[]".to_owned()),
            expires_at: tokens.expires_at.and_then(|t| i64::try_from(t).ok()),
        })
    }

    fn open(&self, id: &str, blob: &[u8]) -> Result<TokenSet, StoreError> {
        let plain = self.keys.decrypt(tokens_cell(id), blob).map_err(|e| StoreError(e.to_string()))?;
        // serde's message could quote a token: say only where it broke.
        serde_json::from_slice(&plain)
            .map_err(|e| StoreError(format!("stored token set unreadable at column {}", e.column())))
    }
}

impl TokenStore for EncryptedTokenStore {
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
            match self.store.save_tokens(connection, &update, now).await {
                Ok(true) => {
                    bump(&self.metrics.token_sets_saved);
                    Ok(())
                }
                Ok(false) => Err(StoreError(format!("the connection `{connection}` was deleted"))),
                Err(e) => Err(StoreError(e.to_string())),
            }
        })
    }

    fn remove<'a>(&'a self, _connection: &'a str) -> StoreFuture<'a, ()> {
        // Rows are deleted by the hub, never by the manager.
        Box::pin(async { Ok(()) })
    }
}
