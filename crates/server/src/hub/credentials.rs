//! Credentials other than OAuth 2.0 grants (API keys, HTTP Basic, token exchanges, none):
//! linked from what the end user entered, verified before anything is stored, and handed out,
//! like tokens, as what to put on a request (`GET /v1/connections/{id}/credentials`, which
//! answers OAuth connections too).

use super::audit::{Context, RecordExt as _};
use super::token_store::{open_secret_json, seal_tokens};
use super::*;
use crate::domain::AuditAction;
use crate::resources::CredentialsView;
use keyway_manifest::model::AuthKind;
use keyway_runtime::{CredentialFields, RequestCredential};
use std::collections::BTreeMap;

pub(super) fn fields_cell(id: &str) -> Cell<'_> {
    Cell { table: "connections", row: id, column: "fields_blob" }
}

/// A connection's stored credential fields, decrypted and read: the one way they leave the
/// row.
pub(super) fn open_fields(keys: &Keyring, id: &str, blob: &[u8]) -> Result<CredentialFields, HubError> {
    open_secret_json(keys, fields_cell(id), blob, "credential fields")
}

/// Which connection a link writes.
pub(super) enum LinkTarget {
    /// A new connection for this end user, with these parameters: linked on the connect page,
    /// or (`imported`) sent by the platform to `POST /v1/connections`.
    New { integration_id: String, end_user: EndUser, parameters: Parameters, imported: bool },
    /// An existing connection, reconnected: its credentials replaced, its id kept.
    Existing(String),
}

/// A link that was stored.
pub(super) struct Linked {
    pub(super) id: String,
    pub(super) reconnected: bool,
    /// Whether the profile's connection test ran (it passed: a failing one stores nothing).
    pub(super) tested: bool,
}

impl Hub {
    /// Links entered credentials: checked against the profile's fields, exchanged for a
    /// token (`token_exchange`), tried with the profile's connection test (`api.verify`),
    /// and only then stored, encrypted, as an `active` connection. A refusal at any step
    /// stores nothing and says why (the provider's answer diagnosed).
    pub(super) async fn link_credentials(
        &self,
        caller: &Caller,
        connector: &Connector,
        values: IndexMap<String, String>,
        target: LinkTarget,
    ) -> Result<Linked, HubError> {
        let profile = connector.profile();
        let fields = connector.check_fields(values).map_err(|ConfigError(diagnostics)| {
            HubError::new(ProblemCode::InvalidCredentials, "Check the highlighted fields.")
                .with_diagnostics(diagnostics.iter().map(crate::error::ProblemDiagnostic::from).collect())
        })?;
        let tokens = match profile.auth.kind {
            AuthKind::TokenExchange => {
                Some(connector.exchange(&fields).await.map_err(|e| refused(&profile.name, "exchanged", &e))?)
            }
            // A key that cannot sign (not PEM, not hex) is the end user's to fix.
            AuthKind::SignedJwt => Some(connector.sign_jwt(&fields).map_err(|e| {
                HubError::new(ProblemCode::InvalidCredentials, format!("{e}"))
                    .with_fix("Paste the whole key, as the provider gave it.")
            })?),
            _ => None,
        };
        let credential = connector
            .credential(&fields, tokens.as_ref())
            .map_err(|e| HubError::new(ProblemCode::InvalidConfiguration, e.to_string()))?;
        let tested = match connector.verify_with(&credential, tokens.as_ref()).await {
            Ok(()) => true,
            Err(FlowError::Unsupported(_)) => false,
            Err(e) => return Err(refused(&profile.name, "tried", &e)),
        };
        let now = self.now();
        let (id, action) = match target {
            LinkTarget::Existing(id) => (id, AuditAction::Reconnected),
            LinkTarget::New { integration_id, end_user, parameters, imported } => {
                let id = ids::new_id(ids::CONNECTION);
                let record = ConnectionRecord::pending(id.clone(), &integration_id, end_user, parameters, now);
                self.store.insert_connection(&record).await?;
                (id, if imported { AuditAction::Imported } else { AuditAction::Linked })
            }
        };
        let reconnected = action == AuditAction::Reconnected;
        let plain = serde_json::to_vec(&fields).map_err(|e| HubError::from(DbError::Database(e.to_string())))?;
        let fields_blob = self.keys.encrypt(fields_cell(&id), &plain);
        let update = match &tokens {
            Some(tokens) => {
                Some(seal_tokens(&self.keys, &id, tokens).map_err(|e| HubError::from(DbError::Database(e.0)))?)
            }
            None => None,
        };
        let audit =
            caller.record(action, now).connection(&id).detail(if tested { "verified" } else { "no connection test" });
        if !self.store.save_credentials(&id, &fields_blob, update.as_ref(), now, &audit).await? {
            return Err(HubError::not_found("connection", &id));
        }
        // What this instance held of the connection is retired (the others see the change log).
        self.tokens.forget(&id);
        if tested {
            self.store.set_verified(&id, now).await?;
        }
        bump(&self.metrics.connections_linked);
        tracing::info!(connection = %id, kind = profile.auth.kind.as_str(), reconnected, tested, "account linked");
        Ok(Linked { id, reconnected, tested })
    }

    /// What to put on a request to the provider for a connection, whatever its kind: its
    /// headers and query parameters (secrets), until when they are good, the API base URL and
    /// the kept token fields. Recorded like a token read; the answer carries secrets.
    pub async fn credentials(&self, caller: &Caller, id: &str) -> Result<CredentialsView, HubError> {
        let result = Context::new(caller, AuditAction::Refreshed, "on read").run(self.current_credentials(id)).await;
        self.record_read(caller, id, result).await
    }

    async fn current_credentials(&self, id: &str) -> Result<CredentialsView, HubError> {
        let record = self.store.connection(id).await?.ok_or_else(|| HubError::not_found("connection", id))?;
        self.refuse_unusable(&record)?;
        let integration = self.integration_record_of(&record.integration_id).await?;
        let connector = self.connector(&integration, &record.parameters)?;
        let kind = connector.profile().auth.kind;
        let fields = match (&record.fields_blob, kind) {
            (Some(blob), _) => open_fields(&self.keys, id, blob)?,
            (None, AuthKind::Oauth2 | AuthKind::None) => CredentialFields::default(),
            (None, _) => return Err(super::connections::pending()),
        };
        let tokens: Option<Arc<TokenSet>> = match kind {
            AuthKind::Oauth2 | AuthKind::TokenExchange | AuthKind::SignedJwt => {
                // The token manager's path, as `/token`: fresh, or renewed once everywhere.
                self.current_token(id).await?;
                Some(self.tokens.tokens(id).ok_or_else(|| HubError::not_found("connection", id))?)
            }
            AuthKind::ApiKey | AuthKind::Basic | AuthKind::None => None,
        };
        let credential = connector
            .credential(&fields, tokens.as_deref())
            .map_err(|e| HubError::new(ProblemCode::InvalidConfiguration, e.to_string()))?;
        let api_base_url = match connector.profile().api {
            Some(_) => connector.api_base_url_with(tokens.as_deref()).ok(),
            None => None,
        };
        Ok(view(id, kind, &credential, api_base_url, tokens.as_deref()))
    }
}

fn view(
    id: &str,
    kind: AuthKind,
    credential: &RequestCredential,
    api_base_url: Option<String>,
    tokens: Option<&TokenSet>,
) -> CredentialsView {
    let headers: BTreeMap<String, String> = credential
        .headers()
        .map(|(name, value)| (name.as_str().to_owned(), value.expose_secret().to_owned()))
        .collect();
    let query: BTreeMap<String, String> =
        credential.query().map(|(name, value)| (name.to_owned(), value.expose_secret().to_owned())).collect();
    CredentialsView {
        connection_id: id.to_owned(),
        kind: kind.as_str().to_owned(),
        headers,
        query,
        expires_at: credential.expires_at(),
        api_base_url,
        fields: tokens.map(|t| t.fields.clone()).unwrap_or_default(),
    }
}

/// A provider's refusal of entered credentials, as the end user and the platform read it:
/// its diagnosis when the profile's error map knows it, the status otherwise. Never the
/// credential.
fn refused(provider: &str, step: &str, e: &FlowError) -> HubError {
    if e.is_transient() {
        return HubError::new(
            ProblemCode::ProviderUnavailable,
            format!("{provider} could not be reached to check these credentials: {e}"),
        )
        .with_fix("Try again in a moment; nothing was stored.");
    }
    let detail = match e.diagnosis() {
        Some(d) => {
            let said = d.provider.description.as_deref().unwrap_or(&d.provider.error).trim_end_matches('.');
            let status = d.provider.status.map(|s| format!("{s} ")).unwrap_or_default();
            match &d.meaning {
                Some(meaning) => {
                    format!("{provider} refused these credentials when they were {step}: {status}{said}. {meaning}")
                }
                None => format!("{provider} refused these credentials when they were {step}: {status}{said}"),
            }
        }
        None => format!("{provider} refused these credentials when they were {step}: {e}"),
    };
    let fix = e.diagnosis().and_then(|d| d.hint.clone()).unwrap_or_else(|| {
        "Check that the values are copied whole and still valid, then try again; nothing was stored.".to_owned()
    });
    HubError::new(ProblemCode::CredentialsRefused, detail).with_fix(fix)
}
