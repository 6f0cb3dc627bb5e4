//! Integrations: a tenant's app per profile, checked by the validator before it is stored.

use super::audit::RecordExt as _;
use super::*;
use crate::domain::AuditAction;

impl Hub {
    fn integration_view(&self, record: &IntegrationRecord) -> Integration {
        let settings = record.settings.clone();
        let connector = self.connector(record, &IndexMap::new()).ok();
        let profile = self.profile(&record.profile);
        let environment = connector.as_ref().map(|c| c.environment().to_owned()).or(settings.environment.clone());
        let pkce = connector.as_ref().map_or(settings.pkce.unwrap_or(true), |c| c.sends_pkce());
        let mut warnings = Vec::new();
        if !pkce {
            warnings.push(PKCE_OFF.to_owned());
        }
        Integration {
            id: record.id.clone(),
            profile: record.profile.clone(),
            name: record.name.clone(),
            client_id: record.client_id.clone(),
            has_client_secret: record.client_secret_blob.is_some(),
            has_staged_client_secret: record.staged_client_secret_blob.is_some(),
            environment: environment.unwrap_or_default(),
            actions: settings.actions,
            custom_scopes: settings.custom_scopes,
            parameters: settings.parameters,
            pkce,
            warnings,
            refresh_sends_secret: connector
                .as_ref()
                .map_or(settings.refresh_sends_secret.unwrap_or(true), |c| c.refresh_sends_secret()),
            scopes: match (&connector, &profile) {
                (Some(c), _) => c.scope_plan().values().into_iter().map(str::to_owned).collect(),
                _ => Vec::new(),
            },
            callback_url: self.callback_url(&record.profile),
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    /// Checks a would-be integration with the validator's connection checks (through the
    /// connector), before anything is stored.
    fn check_integration(&self, new: &NewIntegration) -> Result<(), HubError> {
        let Some(profile) = self.profile(&new.profile) else {
            let registry = self.registry.current();
            let fix = keyway_stdx::closest(&new.profile, registry.ids()).map(|best| format!("did you mean `{best}`?"));
            return Err(HubError::invalid_field_with_fix(
                "/profile",
                format!("there is no profile `{}`", new.profile),
                fix,
            ));
        };
        if new.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(HubError::invalid_field("/name", "the name is longer than 200 characters"));
        }
        let mut problems = Vec::new();
        let config = ConnectorConfig {
            client_id: new.client_id.clone(),
            client_secret: new.client_secret.clone(),
            staged_client_secret: new.staged_client_secret.clone(),
            selection: Selection {
                environment: new.environment.clone(),
                actions: new.actions.clone(),
                custom_scopes: new.custom_scopes.clone(),
                parameters: new.parameters.clone(),
                redirect_uri: Some(self.callback_url(&new.profile)),
                grant: None,
            },
            pkce: new.pkce,
            refresh_sends_secret: new.refresh_sends_secret,
            private_key: None,
            private_key_id: None,
        };
        if let Err(ConfigError(diagnostics)) = Connector::new(profile, config, self.http.clone()) {
            problems.extend(diagnostics.into_iter().map(|mut d| {
                // The redirect URI is the hub's own callback URL, not part of the request.
                if d.pointer.as_deref() == Some("/redirect_uri") {
                    d.pointer = None;
                    d.help = Some("the callback URL comes from `--public-url`; set it to an https URL".to_owned());
                }
                d
            }));
        }
        if problems.iter().any(Diagnostic::is_error) {
            return Err(HubError::invalid_configuration(&problems));
        }
        Ok(())
    }

    fn integration_record(&self, id: String, new: &NewIntegration, version: i64, created_at: i64) -> IntegrationRecord {
        let seal = |column: &'static str, secret: &Option<SecretString>| {
            secret.as_ref().map(|s| {
                self.keys.encrypt(Cell { table: "integrations", row: &id, column }, s.expose_secret().as_bytes())
            })
        };
        let settings = IntegrationSettings {
            environment: new.environment.clone(),
            actions: new.actions.clone(),
            custom_scopes: new.custom_scopes.clone(),
            parameters: new.parameters.clone(),
            pkce: new.pkce,
            refresh_sends_secret: new.refresh_sends_secret,
        };
        IntegrationRecord {
            client_secret_blob: seal("client_secret_blob", &new.client_secret),
            staged_client_secret_blob: seal("staged_client_secret_blob", &new.staged_client_secret),
            id: id.clone(),
            profile: new.profile.clone(),
            name: new.name.clone(),
            client_id: new.client_id.clone(),
            settings,
            version,
            created_at,
            updated_at: self.now(),
        }
    }

    /// Creates an integration.
    pub async fn create_integration(&self, caller: &Caller, new: NewIntegration) -> Result<Integration, HubError> {
        self.check_integration(&new)?;
        let record = self.integration_record(ids::new_id(ids::INTEGRATION), &new, 1, self.now());
        let audit = caller.record(AuditAction::IntegrationCreated, self.now()).integration(&record.id);
        self.store.insert_integration(&record, &audit).await?;
        tracing::info!(integration = %record.id, profile = %record.profile, "integration created");
        Ok(self.integration_view(&record))
    }

    /// Every integration.
    pub async fn integrations(&self) -> Result<Vec<Integration>, HubError> {
        Ok(self.store.integrations().await?.iter().map(|r| self.integration_view(r)).collect())
    }

    pub(super) async fn integration_record_of(&self, id: &str) -> Result<IntegrationRecord, HubError> {
        self.store.integration(id).await?.ok_or_else(|| HubError::not_found("integration", id))
    }

    /// One integration.
    pub async fn integration(&self, id: &str) -> Result<Integration, HubError> {
        Ok(self.integration_view(&self.integration_record_of(id).await?))
    }

    /// Changes an integration (JSON Merge Patch over its writable fields; a secret is set by
    /// a string, removed by `null`, kept when absent). Checked like a new one.
    pub async fn patch_integration(
        &self,
        caller: &Caller,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<Integration, HubError> {
        let current = self.integration_record_of(id).await?;
        if let Some(profile) = patch.get("profile") {
            if profile.as_str() != Some(current.profile.as_str()) {
                return Err(HubError::invalid_field(
                    "/profile",
                    "an integration's profile cannot change; create another integration",
                ));
            }
        }
        let settings = &current.settings;
        let mut document = serde_json::json!({
            "profile": current.profile,
            "name": current.name,
            "client_id": current.client_id,
            "environment": settings.environment,
            "actions": settings.actions,
            "custom_scopes": settings.custom_scopes,
            "parameters": settings.parameters,
            "pkce": settings.pkce,
            "refresh_sends_secret": settings.refresh_sends_secret,
        });
        let mut secrets: Vec<(&'static str, Option<Option<Value>>)> = Vec::new();
        let mut rest = Map::new();
        for (k, v) in patch {
            match k.as_str() {
                "client_secret" => secrets.push(("client_secret_blob", Some(Some(v).filter(|v| !v.is_null())))),
                "staged_client_secret" => {
                    secrets.push(("staged_client_secret_blob", Some(Some(v).filter(|v| !v.is_null()))))
                }
                _ => {
                    rest.insert(k, v);
                }
            }
        }
        merge_patch(&mut document, &Value::Object(rest));
        // Secrets go through the same typed check as a new integration's.
        if let Value::Object(doc) = &mut document {
            for (column, change) in &secrets {
                let key = if *column == "client_secret_blob" { "client_secret" } else { "staged_client_secret" };
                if let Some(Some(v)) = change {
                    doc.insert(key.to_owned(), v.clone());
                }
            }
            doc.retain(|_, v| !v.is_null());
        }
        let mut new: NewIntegration = crate::json::from_value(document)?;
        // Secrets the patch does not mention are kept: check with them in place.
        let (main, staged) = self.secrets_of(&current)?;
        if !secrets.iter().any(|(c, _)| *c == "client_secret_blob") {
            new.client_secret = main;
        }
        if !secrets.iter().any(|(c, _)| *c == "staged_client_secret_blob") {
            new.staged_client_secret = staged;
        }
        let check = new;
        self.check_integration(&check)?;
        let record = self.integration_record(current.id.clone(), &check, current.version + 1, current.created_at);
        let audit = caller.record(AuditAction::IntegrationUpdated, self.now()).integration(&record.id);
        if !self.store.update_integration(&record, current.version, &audit).await? {
            return Err(HubError::new(
                ProblemCode::Conflict,
                "another request changed the integration first; read it again and retry",
            ));
        }
        // Its connections' cached entries are stale now (the version is in their stamp), on
        // every instance: each is rebuilt from the database on its next use.
        tracing::info!(integration = %record.id, version = record.version, "integration updated");
        Ok(self.integration_view(&record))
    }

    /// Deletes an integration without connections.
    pub async fn delete_integration(&self, caller: &Caller, id: &str) -> Result<(), HubError> {
        let audit = caller.record(AuditAction::IntegrationDeleted, self.now()).integration(id);
        match self.store.delete_integration(id, &audit).await? {
            Some(true) => Ok(()),
            Some(false) => Err(HubError::new(ProblemCode::IntegrationInUse, "delete its connections first")),
            None => Err(HubError::not_found("integration", id)),
        }
    }
}

/// What an integration without PKCE gives up (RFC 9700 §2.1.1).
const PKCE_OFF: &str = "PKCE is off: an authorization code minted for one user's session can be delivered \
with another session's state and link that session to the first user's account (code injection, RFC 9700 \
section 2.1.1). Turn PKCE on where the provider allows it.";

/// RFC 7386 JSON Merge Patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
