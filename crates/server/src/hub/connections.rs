//! Connections: listing, tokens (through the runtime's token manager), tests, revocation and
//! imports.

use super::audit::{Context, RecordExt as _};
use super::*;
use crate::domain::{AuditAction, Outcome};

impl Hub {
    async fn connection_record(&self, id: &str) -> Result<ConnectionRecord, HubError> {
        self.store.connection(id).await?.ok_or_else(|| HubError::not_found("connection", id))
    }

    async fn connection_view(&self, record: &ConnectionRecord) -> Result<Connection, HubError> {
        let profile = self.integration_record_of(&record.integration_id).await?.profile;
        Ok(connection_view(record, profile))
    }

    /// Connections, filtered and paged. `state` is the state's name as the caller gave it.
    pub async fn connections(&self, query: ConnectionQuery) -> Result<ConnectionList, HubError> {
        let state = match &query.state {
            Some(name) => Some(ConnectionState::parse(name).ok_or_else(|| {
                let names: Vec<&str> = ConnectionState::ALL.iter().map(|s| s.as_str()).collect();
                HubError::invalid_field("/state", format!("the state must be one of {}", names.join(", ")))
            })?),
            None => None,
        };
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(HubError::invalid_field("/limit", format!("the limit must be 1 to {MAX_PAGE}")));
        }
        let mut filter = ConnectionFilter { integration: query.integration, state, after: query.after, limit };
        filter.limit = limit + 1;
        let mut rows = self.store.connections(&filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut profiles: HashMap<String, String> = HashMap::new();
        let mut data = Vec::with_capacity(rows.len());
        for row in &rows {
            if !profiles.contains_key(&row.integration_id) {
                let profile = self.integration_record_of(&row.integration_id).await?.profile;
                profiles.insert(row.integration_id.clone(), profile);
            }
            data.push(connection_view(row, profiles.get(&row.integration_id).cloned().unwrap_or_default()));
        }
        Ok(ConnectionList { next: if more { rows.last().map(|r| r.id.clone()) } else { None }, data })
    }

    /// One connection.
    pub async fn connection(&self, id: &str) -> Result<Connection, HubError> {
        let record = self.connection_record(id).await?;
        self.connection_view(&record).await
    }

    /// Makes the token manager's entry for a connection what the database holds now (the
    /// freshness check: one batched look at the row's version and state per call), refusing
    /// connections that cannot hand out tokens. A connection deleted, revoked, reconnected or
    /// reconfigured on any instance is seen here before its token is used.
    async fn ensure_current(&self, id: &str) -> Result<(), HubError> {
        let Some(now) = self.freshness.connection(id).await? else {
            self.tokens.forget(id);
            return Err(HubError::not_found("connection", id));
        };
        if now.state != ConnectionState::Active && now.state != ConnectionState::Degraded {
            self.tokens.forget(id);
            // The refusal explains itself from the row's diagnosis.
            let record = self.connection_record(id).await?;
            return self.refuse_unusable(&record);
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let wanted = Stamp(now.version, now.integration_version, generation);
        if self.tokens.stamp(id).is_some_and(|held| covers(held, wanted)) {
            return Ok(());
        }
        // The read's own refusal (an unreadable row, a key that does not decrypt, a profile not
        // loaded) is kept typed here; the token manager sees only that it failed.
        let refusal: Mutex<Option<HubError>> = Mutex::new(None);
        let refuse = |e: HubError| {
            let message = StoreError(e.to_string());
            *refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            message
        };
        let read = || async {
            let Some(record) = self.store.connection(id).await.map_err(|e| refuse(e.into()))? else {
                return Ok(None);
            };
            let Some(blob) = &record.tokens_blob else {
                if record.fields_blob.is_some() {
                    return Err(refuse(HubError::new(
                        ProblemCode::NoAccessToken,
                        format!(
                            "this connection holds entered credentials, not an access token: read GET /v1/connections/{id}/credentials"
                        ),
                    )));
                }
                return Ok(None);
            };
            let integration = self.integration_record_of(&record.integration_id).await.map_err(refuse)?;
            let connector = self.connector(&integration, &record.parameters).map_err(refuse)?;
            let tokens = open_tokens(&self.keys, id, blob).map_err(refuse)?;
            let stamp = Stamp(record.version, integration.version, generation);
            Ok(Some(Current { connector, tokens, stamp }))
        };
        let open = if self.tokens.contains(id) {
            self.tokens.resync(id, wanted, read).await
        } else {
            let _opening = self.opening_lock(id).lock().await;
            if self.tokens.stamp(id).is_some_and(|held| covers(held, wanted)) {
                return Ok(());
            }
            self.tokens.resync(id, wanted, read).await
        };
        match open {
            Ok(true) => Ok(()),
            Ok(false) => Err(pending()),
            Err(e) => Err(refusal
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or_else(|| HubError::from(DbError::Database(e.0)))),
        }
    }

    fn opening_lock(&self, id: &str) -> &tokio::sync::Mutex<()> {
        // Any spread is correct: what matters is that one id always takes the same lock.
        let index = id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        &self.opening[index % self.opening.len()]
    }

    pub(super) fn refuse_unusable(&self, record: &ConnectionRecord) -> Result<(), HubError> {
        match record.state {
            ConnectionState::NeedsReauth => {
                let base = "send the user through a reconnect session";
                let detail = match record.diagnosis.as_ref().and_then(ConnectionDiagnosis::reason) {
                    Some(why) => format!("{base}: {why}"),
                    None => base.to_owned(),
                };
                Err(HubError::new(ProblemCode::NeedsReauth, detail))
            }
            ConnectionState::Revoked => {
                Err(HubError::new(ProblemCode::ConnectionRevoked, "send the user through a reconnect session"))
            }
            ConnectionState::Pending => Err(pending()),
            ConnectionState::Active | ConnectionState::Degraded => Ok(()),
        }
    }

    /// A valid access token: the cached one while fresh, else refreshed once (however many
    /// ask) and persisted before it is handed out. The read is recorded (handed out or
    /// refused) before this answers; a read that cannot be recorded hands nothing out.
    pub async fn token(&self, caller: &Caller, id: &str) -> Result<AccessTokenView, HubError> {
        let result = Context::new(caller, AuditAction::Refreshed, "on read").run(self.current_token(id)).await;
        self.record_read(caller, id, result).await
    }

    pub(super) async fn current_token(&self, id: &str) -> Result<AccessTokenView, HubError> {
        self.ensure_current(id).await?;
        let result = self.tokens.access_token(id).await;
        self.token_view(id, result).await
    }

    /// Records a credential read, then answers it: the token only once its record is
    /// committed.
    pub(super) async fn record_read<T>(
        &self,
        caller: &Caller,
        id: &str,
        result: Result<T, HubError>,
    ) -> Result<T, HubError> {
        if result.is_ok() && !self.audit_reads {
            return result;
        }
        let mut record = caller.record(AuditAction::CredentialRead, self.now()).connection(id);
        if let Err(e) = &result {
            record = record.ended(Outcome::Refused, e.code());
        }
        let written = self.audit.write(record).await;
        match (result, written) {
            (Ok(view), Ok(())) => Ok(view),
            (Ok(_), Err(e)) => {
                tracing::error!(connection = %id, request_id = %caller.request_id, "a credential read could not be recorded; nothing handed out");
                Err(e.into())
            }
            (Err(refusal), written) => {
                if let Err(e) = written {
                    tracing::error!(connection = %id, error = %e, "a refused credential read could not be recorded");
                }
                Err(refusal)
            }
        }
    }

    /// One pass of the background refresher: connections whose token falls due within the
    /// refresh margin, and those not written for a day, are refreshed through the same path as
    /// a token read (one refresh per connection across instances, failures recorded as
    /// states). Returns how many were refreshed and how many failed.
    pub async fn refresh_due(&self) -> Result<(usize, usize), HubError> {
        const DAY: i64 = 24 * 60 * 60;
        let now = self.now();
        let margin = self.refresh_margin.as_secs() as i64;
        let until = now + self.lease.as_secs() as i64;
        let claimed = self.store.claim_due(&self.lease_owner, now, until, now + margin, now - DAY, 200).await?;
        let (mut refreshed, mut failed) = (0, 0);
        let refresher = self.refresher();
        for id in claimed {
            let context = Context::new(&refresher, AuditAction::Refreshed, "background");
            let result = match self.store.connection(&id).await? {
                Some(record) if record.expires_at.is_some_and(|at| at < now + margin) => {
                    context.run(self.current_token(&id)).await
                }
                Some(_) => context.run(self.forced_refresh(&id)).await,
                None => continue,
            };
            match result {
                Ok(_) => refreshed += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(connection = %id, code = %e.code(), "background refresh failed");
                }
            }
            // A refresh that saved ended the lease; one that did not must not keep it.
            self.store.release_lease(&id, &self.lease_owner).await?;
        }
        Ok((refreshed, failed))
    }

    /// Refreshes now, whatever the expiry; recorded like a read.
    pub async fn refresh(&self, caller: &Caller, id: &str) -> Result<AccessTokenView, HubError> {
        let result = Context::new(caller, AuditAction::Refreshed, "forced").run(self.forced_refresh(id)).await;
        self.record_read(caller, id, result).await
    }

    async fn forced_refresh(&self, id: &str) -> Result<AccessTokenView, HubError> {
        self.ensure_current(id).await?;
        let result = self.tokens.force_refresh(id).await;
        self.token_view(id, result).await
    }

    async fn token_view(
        &self,
        id: &str,
        result: Result<keyway_runtime::AccessToken, TokenError>,
    ) -> Result<AccessTokenView, HubError> {
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
    async fn token_failure(&self, id: &str, error: TokenError) -> HubError {
        let now = self.now();
        let record = |state: ConnectionState, diagnosis: ConnectionDiagnosis, code: ProblemCode| async move {
            let audit = self.context_record(AuditAction::RefreshFailed).ended(Outcome::Failed, code);
            if let Err(e) = self.store.set_state(id, state, Some(&diagnosis), now, &audit).await {
                tracing::error!(connection = %id, error = %e, "the connection's state could not be recorded");
            }
            tracing::warn!(connection = %id, %state, kind = %diagnosis.kind, "token refresh failed");
        };
        match error {
            TokenError::UnknownConnection(_) => HubError::not_found("connection", id),
            TokenError::NeedsReauthorization(d) => {
                let diagnosis = match &d {
                    Some(d) => ConnectionDiagnosis::of(d, now),
                    None => ConnectionDiagnosis::keyway(
                        DiagnosisKind::Reauthorize,
                        "the connection has no refresh token",
                        now,
                    ),
                };
                let detail = diagnosis.reason().unwrap_or_default().to_owned();
                record(ConnectionState::NeedsReauth, diagnosis, ProblemCode::NeedsReauth).await;
                HubError::new(ProblemCode::NeedsReauth, format!("send the user through a reconnect session; {detail}"))
            }
            TokenError::Flow(e) if e.is_transient() => {
                record(
                    ConnectionState::Degraded,
                    ConnectionDiagnosis::of_flow(&e, now),
                    ProblemCode::ProviderUnavailable,
                )
                .await;
                let failing_since = self.store.connection(id).await.ok().flatten().and_then(|r| r.failing_since);
                if failing_since.is_some_and(|since| now - since >= self.give_up_after.as_secs() as i64) {
                    let days = self.give_up_after.as_secs() / 86_400;
                    let mut diagnosis = ConnectionDiagnosis::keyway(
                        DiagnosisKind::Reauthorize,
                        format!("refreshes have failed for {days} day(s) or more: {e}"),
                        now,
                    );
                    diagnosis.fix = Some(
                        "check the provider and the app, then send the user through a reconnect session".to_owned(),
                    );
                    record(ConnectionState::NeedsReauth, diagnosis, ProblemCode::NeedsReauth).await;
                    return HubError::new(
                        ProblemCode::NeedsReauth,
                        format!(
                            "refreshes have failed for {days} day(s) or more; send the user through a reconnect session"
                        ),
                    );
                }
                HubError::new(
                    ProblemCode::ProviderUnavailable,
                    format!("the refresh failed for a transient reason and will be retried: {e}"),
                )
            }
            TokenError::Flow(e) => {
                let diagnosis = ConnectionDiagnosis::of_flow(&e, now);
                let fix = diagnosis.fix.clone().unwrap_or_default();
                record(ConnectionState::NeedsReauth, diagnosis, ProblemCode::RefreshRefused).await;
                HubError::new(ProblemCode::RefreshRefused, format!("{e}. {fix}").trim().to_owned())
            }
            TokenError::Store(e) => HubError::from(DbError::Database(e.0)),
        }
    }

    /// Runs the connection test now (refreshing first when the token is due).
    pub async fn test(&self, caller: &Caller, id: &str) -> Result<TestResult, HubError> {
        Context::new(caller, AuditAction::Refreshed, "on read").run(self.test_now(id)).await
    }

    async fn test_now(&self, id: &str) -> Result<TestResult, HubError> {
        self.ensure_current(id).await?;
        let result = self.tokens.access_token(id).await;
        if let Err(e) = result {
            return Err(self.token_failure(id, e).await);
        }
        let (Some(tokens), Some(connector)) = (self.tokens.tokens(id), self.tokens.connector(id)) else {
            return Err(HubError::not_found("connection", id));
        };
        let Tested { state, diagnosis, ran } = self.run_test(id, &connector, &tokens).await;
        Ok(TestResult { connection_id: id.to_owned(), ok: diagnosis.is_none(), tested: ran, state, diagnosis })
    }

    /// Revokes a connection's grant at the provider (RFC 7009), then deletes the connection
    /// (`delete`) or keeps it as `revoked`. Says whether the provider confirmed.
    pub async fn revoke(&self, caller: &Caller, id: &str, delete: bool) -> Result<RevocationResult, HubError> {
        let record = self.connection_record(id).await?;
        let mut outcome = (false, Some("the connection holds no tokens".to_owned()));
        if let Some(blob) = &record.tokens_blob {
            let integration = self.integration_record_of(&record.integration_id).await?;
            let connector = self.connector(&integration, &record.parameters)?;
            let tokens = open_tokens(&self.keys, id, blob)?;
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
        let action = if delete { AuditAction::Deleted } else { AuditAction::Revoked };
        let audit = caller.record(action, self.now()).detail(if revoked_at_provider {
            "revoked at the provider"
        } else {
            "not revoked at the provider"
        });
        if delete {
            self.store.delete_connection(id, &audit).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection deleted");
        } else {
            self.store.mark_revoked(id, self.now(), &audit).await?;
            tracing::info!(connection = %id, revoked_at_provider, "connection revoked");
        }
        Ok(RevocationResult { connection_id: id.to_owned(), revoked_at_provider, revocation_error, deleted: delete })
    }

    /// Imports tokens a platform already holds as a new, active connection.
    pub async fn import_connection(&self, caller: &Caller, new: NewConnection) -> Result<Connection, HubError> {
        Self::check_end_user(&new.end_user)?;
        let integration = self
            .store
            .integration(&new.integration_id)
            .await?
            .ok_or_else(|| HubError::invalid_field("/integration_id", "no such integration"))?;
        let connector = self.connector(&integration, &new.parameters)?;
        let kind = connector.profile().auth.kind;
        let tokens = match (new.tokens, new.fields) {
            (Some(tokens), None) if kind.is_oauth2() => tokens,
            (None, fields) if !kind.is_oauth2() => {
                let values: IndexMap<String, String> =
                    fields.unwrap_or_default().into_iter().map(|(k, v)| (k, v.expose_secret().to_owned())).collect();
                let target = super::credentials::LinkTarget::New {
                    integration_id: integration.id.clone(),
                    end_user: new.end_user,
                    parameters: new.parameters,
                    imported: true,
                };
                let linked = self.link_credentials(caller, &connector, values, target).await?;
                return self.connection(&linked.id).await;
            }
            (_, _) if kind.is_oauth2() => {
                return Err(HubError::invalid_field(
                    "/tokens",
                    "an OAuth 2.0 connection is imported from its tokens (`tokens`), not `fields`",
                ));
            }
            (_, _) => {
                return Err(HubError::invalid_field(
                    "/fields",
                    format!(
                        "a `{}` connection is linked from the end user's credential fields (`fields`), not `tokens`",
                        kind.as_str()
                    ),
                ));
            }
        };
        let mut response = tokens.fields.clone();
        response.insert("access_token".to_owned(), Value::String(tokens.access_token.expose_secret().to_owned()));
        if let Some(refresh) = &tokens.refresh_token {
            response.insert("refresh_token".to_owned(), Value::String(refresh.expose_secret().to_owned()));
        }
        if let Some(t) = &tokens.token_type {
            response.insert("token_type".to_owned(), Value::String(t.clone()));
        }
        if let Some(e) = tokens.expires_in {
            response.insert("expires_in".to_owned(), Value::from(e));
        }
        if let Some(s) = &tokens.scope {
            response.insert("scope".to_owned(), Value::String(s.clone()));
        }
        if tokens.access_token.expose_secret().is_empty() {
            return Err(HubError::invalid_field("/tokens/access_token", "the access token is empty"));
        }
        // The API base URL may come from these fields: the runtime judges it as they arrive.
        let tokens = connector.import_tokens(&response).await.map_err(|e| match e {
            FlowError::ApiBaseUrl(why) => HubError::invalid_field("/tokens/fields", why),
            other => HubError::invalid_field("/tokens", format!("the tokens cannot be read: {other}")),
        })?;
        let now = self.now();
        let record =
            ConnectionRecord::pending(ids::new_id(ids::CONNECTION), &integration.id, new.end_user, new.parameters, now);
        self.store.insert_connection(&record).await?;
        Context::new(caller, AuditAction::Imported, "on read")
            .run(self.tokens.insert(&record.id, connector, tokens))
            .await
            .map_err(|e| HubError::from(DbError::Database(e.0)))?;
        self.connection(&record.id).await
    }

    /// Runs the profile's connection test and records the outcome; the state after it.
    pub(super) async fn run_test(&self, id: &str, connector: &Connector, tokens: &TokenSet) -> Tested {
        let now = self.now();
        match connector.verify(tokens).await {
            Ok(()) => {
                let _ = self.store.set_verified(id, now).await;
                Tested { state: ConnectionState::Active, diagnosis: None, ran: true }
            }
            Err(FlowError::Unsupported(_)) => Tested { state: ConnectionState::Active, diagnosis: None, ran: false },
            Err(e) => {
                let diagnosis = ConnectionDiagnosis::of_flow(&e, now);
                let state = if e.is_transient() { ConnectionState::Degraded } else { ConnectionState::NeedsReauth };
                tracing::warn!(connection = %id, %state, "the connection test failed");
                let code = if e.is_transient() { ProblemCode::ProviderUnavailable } else { ProblemCode::NeedsReauth };
                let audit = self.context_record(AuditAction::TestFailed).ended(Outcome::Failed, code);
                let _ = self.store.set_state(id, state, Some(&diagnosis), now, &audit).await;
                Tested { state, diagnosis: Some(diagnosis), ran: true }
            }
        }
    }
}

/// What a connection test did.
pub(super) struct Tested {
    /// The connection's state after it.
    pub(super) state: ConnectionState,
    /// Why it failed.
    pub(super) diagnosis: Option<ConnectionDiagnosis>,
    /// Whether a test ran: a profile without `api.verify` declares none.
    pub(super) ran: bool,
}

/// Which connections to list, as the caller asked.
#[derive(Debug, Clone, Default)]
pub struct ConnectionQuery {
    /// Only this integration's.
    pub integration: Option<String>,
    /// Only in the state of this name.
    pub state: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

pub(super) fn pending() -> HubError {
    HubError::new(ProblemCode::ConnectionPending, "the account has not finished linking")
}

fn connection_view(record: &ConnectionRecord, profile: String) -> Connection {
    Connection {
        id: record.id.clone(),
        integration_id: record.integration_id.clone(),
        profile,
        end_user: record.end_user.clone(),
        state: record.state,
        scopes: record.scopes.clone(),
        expires_at: record.expires_at,
        parameters: record.parameters.clone(),
        diagnosis: record.diagnosis.clone(),
        verified_at: record.verified_at,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Whether an entry read at `held` is as current as the stamp the database gave, `wanted`. A
/// newer row version is: refreshes (this instance's own, or another's seen by the lease's
/// check) bump the version without retiring anything, and every change that does retire
/// what an entry holds is in the change log, so the stamp asked for is at least its version.
fn covers(held: Stamp, wanted: Stamp) -> bool {
    held.0 >= wanted.0 && held.1 == wanted.1 && held.2 == wanted.2
}
