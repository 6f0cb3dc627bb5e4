//! Connections: listing, tokens (through the runtime's token manager), tests, revocation and
//! imports.

use super::*;

impl Hub {
    async fn connection_record(&self, id: &str) -> Result<ConnectionRecord, ApiError> {
        self.store.connection(id).await?.ok_or_else(|| ApiError::not_found("connection", id))
    }

    async fn connection_view(&self, record: &ConnectionRecord) -> Result<Connection, ApiError> {
        let profile = self.store.integration(&record.integration_id).await?.map(|i| i.profile).unwrap_or_default();
        Ok(connection_view(record, profile))
    }

    /// Connections, filtered and paged.
    pub async fn connections(&self, mut filter: ConnectionFilter) -> Result<ConnectionList, ApiError> {
        if let Some(s) = &filter.state {
            if !state::ALL.contains(&s.as_str()) {
                return Err(ApiError::invalid_field(
                    "/state",
                    format!("the state must be one of {}", state::ALL.join(", ")),
                ));
            }
        }
        if filter.limit == 0 || filter.limit > MAX_PAGE {
            return Err(ApiError::invalid_field("/limit", format!("the limit must be 1 to {MAX_PAGE}")));
        }
        let limit = filter.limit;
        filter.limit = limit + 1;
        let mut rows = self.store.connections(&filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut profiles: HashMap<String, String> = HashMap::new();
        let mut data = Vec::with_capacity(rows.len());
        for row in &rows {
            if !profiles.contains_key(&row.integration_id) {
                let profile = self.store.integration(&row.integration_id).await?.map(|i| i.profile).unwrap_or_default();
                profiles.insert(row.integration_id.clone(), profile);
            }
            data.push(connection_view(row, profiles.get(&row.integration_id).cloned().unwrap_or_default()));
        }
        Ok(ConnectionList { next: if more { rows.last().map(|r| r.id.clone()) } else { None }, data })
    }

    /// One connection.
    pub async fn connection(&self, id: &str) -> Result<Connection, ApiError> {
        let record = self.connection_record(id).await?;
        self.connection_view(&record).await
    }

    /// Opens a connection in the token manager (once), refusing those that cannot hand out
    /// tokens.
    async fn ensure_open(&self, id: &str) -> Result<(), ApiError> {
        if self.tokens.contains(id) {
            return Ok(());
        }
        let _opening = self.opening.lock().await;
        if self.tokens.contains(id) {
            return Ok(());
        }
        let record = self.connection_record(id).await?;
        self.refuse_unusable(&record)?;
        let integration = self.integration_record_of(&record.integration_id).await?;
        let parameters: IndexMap<String, String> = parse_json(&record.parameters);
        let connector = self.connector(&integration, &parameters)?;
        match self.tokens.open(id, connector).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_pending",
                "The connection has no tokens yet",
                "the account has not finished linking",
            )),
            Err(e) => Err(ApiError::store(&DbError::Database(e.0))),
        }
    }

    fn refuse_unusable(&self, record: &ConnectionRecord) -> Result<(), ApiError> {
        let diagnosis = record.diagnosis.as_deref().and_then(|d| serde_json::from_str::<ConnectionDiagnosis>(d).ok());
        let explained = |base: &str| match diagnosis.as_ref().and_then(|d| d.meaning.clone().or(d.description.clone()))
        {
            Some(why) => format!("{base}: {why}"),
            None => base.to_owned(),
        };
        match record.state.as_str() {
            state::NEEDS_REAUTH => Err(ApiError::new(
                StatusCode::CONFLICT,
                "needs_reauth",
                "The connection needs to be authorized again",
                explained("send the user through a reconnect session"),
            )),
            state::REVOKED => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_revoked",
                "The connection was revoked",
                "send the user through a reconnect session",
            )),
            state::PENDING => Err(ApiError::new(
                StatusCode::CONFLICT,
                "connection_pending",
                "The connection has no tokens yet",
                "the account has not finished linking",
            )),
            _ => Ok(()),
        }
    }

    /// A valid access token: the cached one while fresh, else refreshed once (however many
    /// ask) and persisted before it is handed out.
    pub async fn token(&self, id: &str) -> Result<AccessTokenView, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.access_token(id).await;
        self.token_view(id, result).await
    }

    /// One pass of the background refresher: connections whose token falls due within the
    /// refresh margin, and those not written for a day, are refreshed through the same path as
    /// a token read (one refresh per connection across instances, failures recorded as
    /// states). Returns how many were refreshed and how many failed.
    pub async fn refresh_due(&self) -> Result<(usize, usize), ApiError> {
        const DAY: i64 = 24 * 60 * 60;
        let now = self.now();
        let margin = self.refresh_margin.as_secs() as i64;
        let until = now + self.lease.as_secs() as i64;
        let claimed = self.store.claim_due(&self.lease_owner, now, until, now + margin, now - DAY, 200).await?;
        let (mut refreshed, mut failed) = (0, 0);
        for id in claimed {
            let result = match self.store.connection(&id).await? {
                Some(record) if record.expires_at.is_some_and(|at| at < now + margin) => self.token(&id).await,
                Some(_) => self.refresh(&id).await,
                None => continue,
            };
            match result {
                Ok(_) => refreshed += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(connection = %id, code = e.code(), "background refresh failed");
                }
            }
            // A refresh that saved ended the lease; one that did not must not keep it.
            self.store.release_lease(&id, &self.lease_owner).await?;
        }
        Ok((refreshed, failed))
    }

    /// Refreshes now, whatever the expiry.
    pub async fn refresh(&self, id: &str) -> Result<AccessTokenView, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.force_refresh(id).await;
        self.token_view(id, result).await
    }

    async fn token_view(
        &self,
        id: &str,
        result: Result<keyway_runtime::AccessToken, TokenError>,
    ) -> Result<AccessTokenView, ApiError> {
        match result {
            Ok(token) => {
                bump(&self.metrics.tokens_served);
                let set = self.tokens.tokens(id);
                let connector = self.tokens.connector(id);
                let api_base_url = match (&set, &connector) {
                    (Some(set), Some(c)) if c.profile().api.is_some() => c.api_base_url(set).ok(),
                    _ => None,
                };
                Ok(AccessTokenView {
                    connection_id: id.to_owned(),
                    access_token: token.token.expose_secret().to_owned(),
                    token_type: token.token_type,
                    expires_at: token.expires_at,
                    api_base_url,
                    fields: set.map(|s| s.fields.clone()).unwrap_or_default(),
                })
            }
            Err(e) => {
                bump(&self.metrics.token_failures);
                Err(self.token_failure(id, e).await)
            }
        }
    }

    /// Records why a token could not be handed out and says so.
    async fn token_failure(&self, id: &str, error: TokenError) -> ApiError {
        let now = self.now();
        let record = |state: &'static str, diagnosis: ConnectionDiagnosis| async move {
            let json = serde_json::to_string(&diagnosis).ok();
            if let Err(e) = self.store.set_state(id, state, json.as_deref(), now).await {
                tracing::error!(connection = %id, error = %e, "the connection's state could not be recorded");
            }
            tracing::warn!(connection = %id, state, kind = %diagnosis.kind, "token refresh failed");
        };
        match error {
            TokenError::UnknownConnection(_) => ApiError::not_found("connection", id),
            TokenError::NeedsReauthorization(d) => {
                let diagnosis = match &d {
                    Some(d) => diagnosis_view(d, now),
                    None => ConnectionDiagnosis {
                        kind: "reauthorize".to_owned(),
                        error: None,
                        description: Some("the connection has no refresh token".to_owned()),
                        rule: None,
                        meaning: None,
                        fix: None,
                        at: now,
                    },
                };
                let detail = diagnosis.meaning.clone().or(diagnosis.description.clone()).unwrap_or_default();
                record(state::NEEDS_REAUTH, diagnosis).await;
                ApiError::new(
                    StatusCode::CONFLICT,
                    "needs_reauth",
                    "The connection needs to be authorized again",
                    format!("send the user through a reconnect session; {detail}"),
                )
            }
            TokenError::Flow(e) if e.is_transient() => {
                record(state::DEGRADED, flow_diagnosis(&e, now)).await;
                let failing_since = self.store.connection(id).await.ok().flatten().and_then(|r| r.failing_since);
                if failing_since.is_some_and(|since| now - since >= self.give_up_after.as_secs() as i64) {
                    let days = self.give_up_after.as_secs() / 86_400;
                    let diagnosis = ConnectionDiagnosis {
                        kind: "reauthorize".to_owned(),
                        error: None,
                        description: Some(format!("refreshes have failed for {days} day(s) or more: {e}")),
                        rule: None,
                        meaning: None,
                        fix: Some(
                            "check the provider and the app, then send the user through a reconnect session".to_owned(),
                        ),
                        at: now,
                    };
                    record(state::NEEDS_REAUTH, diagnosis).await;
                    return ApiError::new(
                        StatusCode::CONFLICT,
                        "needs_reauth",
                        "The connection needs to be authorized again",
                        format!(
                            "refreshes have failed for {days} day(s) or more; send the user through a reconnect session"
                        ),
                    );
                }
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_unavailable",
                    "The provider is unavailable",
                    format!("the refresh failed for a transient reason and will be retried: {e}"),
                )
            }
            TokenError::Flow(e) => {
                let diagnosis = flow_diagnosis(&e, now);
                let fix = diagnosis.fix.clone().unwrap_or_default();
                record(state::NEEDS_REAUTH, diagnosis).await;
                ApiError::new(
                    StatusCode::CONFLICT,
                    "refresh_refused",
                    "The provider refused the refresh",
                    format!("{e}. {fix}").trim().to_owned(),
                )
            }
            TokenError::Store(e) => ApiError::store(&DbError::Database(e.0)),
        }
    }

    /// Runs the connection test now.
    pub async fn test(&self, id: &str) -> Result<TestResult, ApiError> {
        self.ensure_open(id).await?;
        let result = self.tokens.access_token(id).await;
        if let Err(e) = result {
            return Err(self.token_failure(id, e).await);
        }
        let (Some(tokens), Some(connector)) = (self.tokens.tokens(id), self.tokens.connector(id)) else {
            return Err(ApiError::not_found("connection", id));
        };
        let (state, diagnosis) = self.run_test(id, &connector, &tokens).await;
        Ok(TestResult { connection_id: id.to_owned(), ok: diagnosis.is_none(), state, diagnosis })
    }

    /// Revokes a connection's grant at the provider (RFC 7009), then deletes the connection
    /// (`delete`) or keeps it as `revoked`. Says whether the provider confirmed.
    pub async fn revoke(&self, id: &str, delete: bool) -> Result<RevocationResult, ApiError> {
        let record = self.connection_record(id).await?;
        let mut outcome = (false, Some("the connection holds no tokens".to_owned()));
        if let Some(blob) = &record.tokens_blob {
            let integration = self.integration_record_of(&record.integration_id).await?;
            let parameters: IndexMap<String, String> = parse_json(&record.parameters);
            let connector = self.connector(&integration, &parameters)?;
            let plain = self.keys.decrypt(tokens_cell(id), blob).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_undecryptable",
                    "The tokens cannot be decrypted",
                    e.to_string(),
                )
            })?;
            let tokens: TokenSet = serde_json::from_slice(&plain).map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "tokens_unreadable",
                    "The stored tokens are unreadable",
                    "the token set does not parse",
                )
            })?;
            // Revoking the refresh token ends the whole grant (and its access tokens).
            let (token, kind) = match &tokens.refresh_token {
                Some(refresh) => (refresh, TokenKind::Refresh),
                None => (&tokens.access_token, TokenKind::Access),
            };
            outcome = match connector.revoke(token, kind).await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            };
        }
        let (revoked_at_provider, revocation_error) = outcome;
        self.tokens.forget(id);
        if delete {
            self.store.delete_connection(id).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection deleted");
        } else {
            self.store.mark_revoked(id, self.now()).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection revoked");
        }
        Ok(RevocationResult { connection_id: id.to_owned(), revoked_at_provider, revocation_error, deleted: delete })
    }

    /// Imports tokens a platform already holds as a new, active connection.
    pub async fn import_connection(&self, new: NewConnection) -> Result<Connection, ApiError> {
        Self::check_end_user(&new.end_user)?;
        let integration = self
            .store
            .integration(&new.integration_id)
            .await?
            .ok_or_else(|| ApiError::invalid_field("/integration_id", "no such integration"))?;
        let connector = self.connector(&integration, &new.parameters)?;
        let mut response = new.tokens.fields.clone();
        response.insert("access_token".to_owned(), Value::String(new.tokens.access_token.expose_secret().to_owned()));
        if let Some(refresh) = &new.tokens.refresh_token {
            response.insert("refresh_token".to_owned(), Value::String(refresh.expose_secret().to_owned()));
        }
        if let Some(t) = &new.tokens.token_type {
            response.insert("token_type".to_owned(), Value::String(t.clone()));
        }
        if let Some(e) = new.tokens.expires_in {
            response.insert("expires_in".to_owned(), Value::from(e));
        }
        if let Some(s) = &new.tokens.scope {
            response.insert("scope".to_owned(), Value::String(s.clone()));
        }
        if new.tokens.access_token.expose_secret().is_empty() {
            return Err(ApiError::invalid_field("/tokens/access_token", "the access token is empty"));
        }
        let tokens = connector
            .import_tokens(&response)
            .await
            .map_err(|e| ApiError::invalid_field("/tokens", format!("the tokens cannot be read: {e}")))?;
        // The API base URL may come from these fields: check it renders to a usable URL.
        if connector.profile().api.is_some() {
            if let Err(e) = connector.api_base_url(&tokens) {
                return Err(ApiError::invalid_field("/tokens/fields", e.to_string()));
            }
        }
        let now = self.now();
        let record = ConnectionRecord::pending(
            new_id("conn"),
            &integration.id,
            serde_json::to_string(&new.end_user).unwrap_or_default(),
            serde_json::to_string(&new.parameters).unwrap_or_default(),
            now,
        );
        self.store.insert_connection(&record).await?;
        self.tokens
            .insert(&record.id, connector, tokens)
            .await
            .map_err(|e| ApiError::store(&DbError::Database(e.0)))?;
        self.connection(&record.id).await
    }

    /// Runs the profile's connection test and records the outcome; the state after it.
    pub(super) async fn run_test(
        &self,
        id: &str,
        connector: &Connector,
        tokens: &TokenSet,
    ) -> (String, Option<ConnectionDiagnosis>) {
        let now = self.now();
        match connector.verify(tokens).await {
            Ok(()) => {
                let _ = self.store.set_verified(id, now).await;
                (state::ACTIVE.to_owned(), None)
            }
            Err(FlowError::Unsupported(_)) => (state::ACTIVE.to_owned(), None),
            Err(e) => {
                let diagnosis = flow_diagnosis(&e, now);
                let state = if e.is_transient() { state::DEGRADED } else { state::NEEDS_REAUTH };
                tracing::warn!(connection = %id, state, "the connection test failed");
                let json = serde_json::to_string(&diagnosis).ok();
                let _ = self.store.set_state(id, state, json.as_deref(), now).await;
                (state.to_owned(), Some(diagnosis))
            }
        }
    }
}

fn connection_view(record: &ConnectionRecord, profile: String) -> Connection {
    Connection {
        id: record.id.clone(),
        integration_id: record.integration_id.clone(),
        profile,
        end_user: serde_json::from_str(&record.end_user).unwrap_or(EndUser {
            id: String::new(),
            email: None,
            display_name: None,
        }),
        state: record.state.clone(),
        scopes: parse_json(&record.scopes),
        expires_at: record.expires_at,
        parameters: parse_json(&record.parameters),
        diagnosis: record.diagnosis.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        verified_at: record.verified_at,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}
