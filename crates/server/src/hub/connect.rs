//! Connect sessions, the connect page's model, and the authorization they start and finish.

use super::*;

/// Where a connect-page authorization starts: the provider's URL.
#[derive(Debug)]
pub struct Started {
    /// The authorization URL.
    pub url: String,
}

/// A refusal shown on a page (the connect page's form, or the callback's error page).
#[derive(Debug, Clone)]
pub struct PageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    pub fix: Option<String>,
    /// Per-field messages (`parameters/NAME` -> message), for the connect form.
    pub fields: Vec<(String, String)>,
}

impl PageError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> PageError {
        PageError { status, code, message: message.into(), fix: None, fields: Vec::new() }
    }

    fn with_fix(mut self, fix: impl Into<String>) -> PageError {
        self.fix = Some(fix.into());
        self
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "store failure");
        PageError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "The service is unavailable.")
            .with_fix("Try again in a moment.")
    }
}

/// What the connect page shows for one integration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageIntegration {
    /// The integration id.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The integration's name.
    pub name: Option<String>,
    /// The environment's label.
    pub environment: String,
    /// The scopes that will be requested: value and label.
    pub scopes: Vec<PageScope>,
    /// The parameters the user must or may give.
    pub parameters: Vec<PageParameter>,
}

/// One scope the connect page lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageScope {
    /// The value sent to the provider.
    pub value: String,
    /// The profile's label for it, when it has one.
    pub label: Option<String>,
}

/// One parameter field on the connect page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageParameter {
    /// The form field's name.
    pub name: String,
    /// The label.
    pub label: String,
    /// The help text.
    pub description: Option<String>,
    /// An example value.
    pub example: Option<String>,
    /// Whether a value is needed.
    pub required: bool,
    /// What the user typed (after a refusal).
    pub value: String,
    /// Why the value was refused.
    pub error: Option<String>,
}

/// The connect page's model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectPage {
    /// Who is connecting.
    pub end_user: EndUser,
    /// Whether this reconnects an existing connection.
    pub reconnect: bool,
    /// The integrations offered.
    pub integrations: Vec<PageIntegration>,
    /// A refusal to show above the form.
    pub error: Option<String>,
}

/// A finished link, for the done page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finished {
    /// The connection id.
    pub connection_id: String,
    /// The provider's name.
    pub provider: String,
    /// Whether an existing connection was reconnected.
    pub reconnected: bool,
    /// The state after the connection test.
    pub state: String,
    /// Why the connection test failed.
    pub diagnosis: Option<ConnectionDiagnosis>,
    /// Where to send the user back.
    pub return_url: Option<String>,
    /// Where the result may be posted.
    pub allowed_origins: Vec<String>,
}

impl Hub {
    pub(super) fn check_end_user(end_user: &EndUser) -> Result<(), ApiError> {
        if end_user.id.trim().is_empty() || end_user.id.chars().count() > 255 {
            return Err(ApiError::invalid_field("/end_user/id", "the end user id must be 1 to 255 characters"));
        }
        for (pointer, value) in
            [("/end_user/email", &end_user.email), ("/end_user/display_name", &end_user.display_name)]
        {
            if value.as_ref().is_some_and(|v| v.chars().count() > 255) {
                return Err(ApiError::invalid_field(pointer, "longer than 255 characters"));
            }
        }
        Ok(())
    }

    /// Creates a connect session: a single-use token (stored as its hash) and the page URL.
    pub async fn create_session(&self, new: NewSession) -> Result<SessionCreated, ApiError> {
        Self::check_end_user(&new.end_user)?;
        if let Some(url) = &new.return_url {
            if let Some(why) = web_url_problem(url) {
                return Err(ApiError::invalid_field("/return_url", format!("the return URL is refused: {why}")));
            }
        }
        if new.allowed_origins.len() > 20 {
            return Err(ApiError::invalid_field("/allowed_origins", "at most 20 origins"));
        }
        let mut origins = Vec::new();
        for (i, origin) in new.allowed_origins.iter().enumerate() {
            let pointer = format!("/allowed_origins/{i}");
            if let Some(why) = web_url_problem(origin) {
                return Err(ApiError::invalid_field(&pointer, format!("the origin is refused: {why}")));
            }
            match origin_of(origin) {
                Some(o) if o == origin.trim_end_matches('/') => origins.push(o),
                _ => {
                    return Err(ApiError::invalid_field(
                        &pointer,
                        "an origin is `scheme://host[:port]`, without a path",
                    ));
                }
            }
        }
        let mut integrations = match &new.integrations {
            Some(ids) if ids.is_empty() => {
                return Err(ApiError::invalid_field("/integrations", "name at least one integration"));
            }
            Some(ids) if ids.len() > 100 => return Err(ApiError::invalid_field("/integrations", "at most 100")),
            Some(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if self.store.integration(id).await?.is_none() {
                        return Err(ApiError::invalid_field(&format!("/integrations/{i}"), "no such integration"));
                    }
                }
                ids.clone()
            }
            None => Vec::new(),
        };
        if let Some(connection_id) = &new.connection_id {
            let Some(connection) = self.store.connection(connection_id).await? else {
                return Err(ApiError::invalid_field("/connection_id", "no such connection"));
            };
            if !integrations.is_empty() && !integrations.contains(&connection.integration_id) {
                return Err(ApiError::invalid_field(
                    "/integrations",
                    "a reconnect session must allow the connection's integration",
                ));
            }
            integrations = vec![connection.integration_id];
        } else if integrations.is_empty() {
            integrations = self.store.integrations().await?.into_iter().map(|r| r.id).collect();
            if integrations.is_empty() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "no_integrations",
                    "There is nothing to connect",
                    "create an integration first",
                ));
            }
        }
        let token = format!(
            "kwcs_{}",
            rand::thread_rng().sample_iter(&Alphanumeric).take(43).map(char::from).collect::<String>()
        );
        let now = self.now();
        let record = SessionRecord {
            id: new_id("cs"),
            token_hash: sha256_hex(&token),
            end_user: serde_json::to_string(&new.end_user).unwrap_or_default(),
            integrations: serde_json::to_string(&integrations).unwrap_or_default(),
            return_url: new.return_url.clone(),
            allowed_origins: serde_json::to_string(&origins).unwrap_or_default(),
            connection_id: new.connection_id.clone(),
            expires_at: now + SESSION_TTL.as_secs() as i64,
            opened_at: None,
            created_at: now,
        };
        self.store.insert_session(&record).await?;
        let _ = self.store.purge_expired(now).await;
        Ok(SessionCreated {
            id: record.id,
            connect_url: format!("{}/connect?session_token={token}", self.public_url),
            token,
            expires_at: record.expires_at,
        })
    }

    /// Exchanges a session token (once) for the session id the browser's cookie will carry.
    pub async fn open_session(&self, token: &str) -> Result<String, PageError> {
        let refused = || {
            PageError::new(StatusCode::FORBIDDEN, "session_invalid", "This connect link is invalid, used or expired.")
                .with_fix("Go back to the application and start connecting again.")
        };
        if !token.starts_with("kwcs_") || token.len() > 100 {
            return Err(refused());
        }
        match self.store.open_session(&sha256_hex(token), self.now()).await? {
            Some(session) => Ok(session.id),
            None => Err(refused()),
        }
    }

    /// A session the browser's cookie names, when it is still valid.
    pub async fn live_session(&self, session_id: &str) -> Result<SessionRecord, PageError> {
        match self.store.session(session_id).await? {
            Some(s) if s.expires_at > self.now() => Ok(s),
            _ => Err(PageError::new(StatusCode::FORBIDDEN, "session_expired", "This connect session has expired.")
                .with_fix("Go back to the application and start connecting again.")),
        }
    }

    /// The connect page's model for a session.
    pub async fn connect_page(&self, session: &SessionRecord) -> Result<ConnectPage, PageError> {
        let ids: Vec<String> = parse_json(&session.integrations);
        let mut integrations = Vec::new();
        for id in ids {
            let Some(record) = self.store.integration(&id).await? else { continue };
            let Some(profile) = self.profile(&record.profile) else { continue };
            let settings: IntegrationSettings = parse_json(&record.settings);
            let connector = self.connector(&record, &IndexMap::new()).ok();
            let environment = connector.as_ref().map(|c| c.environment().to_owned()).unwrap_or_default();
            let parameters = profile
                .parameters
                .iter()
                .filter(|(name, _)| !settings.parameters.contains_key(*name))
                .map(|(name, p)| PageParameter {
                    name: name.clone(),
                    label: p.label.clone(),
                    description: p.description.as_ref().map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                    example: p.example.clone(),
                    required: p.required,
                    value: String::new(),
                    error: None,
                })
                .collect();
            integrations.push(PageIntegration {
                id: record.id.clone(),
                provider: profile.name.clone(),
                name: record.name.clone(),
                environment: profile.environments.get(&environment).map_or(environment.clone(), |e| e.label.clone()),
                scopes: connector
                    .map(|c| {
                        c.scope_plan()
                            .values()
                            .into_iter()
                            .map(|value| PageScope {
                                value: value.to_owned(),
                                label: profile.scopes.get(value).and_then(|s| s.label.clone()),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                parameters,
            });
        }
        Ok(ConnectPage {
            end_user: serde_json::from_str(&session.end_user).unwrap_or(EndUser {
                id: String::new(),
                email: None,
                display_name: None,
            }),
            reconnect: session.connection_id.is_some(),
            integrations,
            error: None,
        })
    }

    /// Starts an authorization from the connect page's form: the parameters are checked (a
    /// refusal comes back per field), the state and PKCE verifier are stored, and the
    /// provider's URL is returned.
    pub async fn start_authorization(
        &self,
        session: &SessionRecord,
        integration_id: &str,
        form: &[(String, String)],
    ) -> Result<Started, PageError> {
        let allowed: Vec<String> = parse_json(&session.integrations);
        if !allowed.iter().any(|id| id == integration_id) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "integration_not_allowed",
                "This integration is not offered in this session.",
            ));
        }
        let record =
            self.store.integration(integration_id).await?.ok_or_else(|| {
                PageError::new(StatusCode::NOT_FOUND, "not_found", "This integration no longer exists.")
            })?;
        let profile = self.profile(&record.profile).ok_or_else(|| {
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "profile_unavailable", "This provider is unavailable.")
        })?;
        let settings: IntegrationSettings = parse_json(&record.settings);
        let mut parameters = IndexMap::new();
        for (name, value) in form {
            let Some(name) = name.strip_prefix("param.") else { continue };
            if !profile.parameters.contains_key(name) || settings.parameters.contains_key(name) {
                continue;
            }
            let value = value.trim();
            if !value.is_empty() && parameters.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(PageError::new(StatusCode::BAD_REQUEST, "duplicate_parameter", "A field was sent twice."));
            }
        }
        let connector = match self.connector(&record, &parameters) {
            Ok(c) => c,
            Err(e) => {
                let fields = e
                    .diagnostics()
                    .iter()
                    .filter_map(|d| {
                        let name = d.pointer.as_deref()?.strip_prefix("/parameters")?.trim_start_matches('/');
                        let text = match &d.fix {
                            Some(fix) => format!("{}. {fix}", d.message.trim_end_matches('.')),
                            None => d.message.clone(),
                        };
                        Some((name.to_owned(), text))
                    })
                    .collect::<Vec<_>>();
                let mut error = PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_parameters",
                    "Check the highlighted fields.",
                );
                if fields.is_empty() {
                    error = PageError::new(StatusCode::CONFLICT, e.code(), "This integration is misconfigured.")
                        .with_fix("Ask the application's administrator to check the integration.");
                }
                error.fields = fields;
                return Err(error);
            }
        };
        let request = connector
            .authorization_request()
            .map_err(|e| PageError::new(StatusCode::CONFLICT, "flow_unsupported", e.to_string()))?;
        let state_hash = sha256_hex(&request.state);
        let verifier = request.code_verifier.as_ref().map(|v| {
            self.keys.encrypt(
                Cell { table: "authorizations", row: &state_hash, column: "code_verifier_blob" },
                v.expose_secret().as_bytes(),
            )
        });
        let record = AuthorizationRecord {
            state_hash,
            session_id: session.id.clone(),
            integration_id: record.id.clone(),
            parameters: serde_json::to_string(&parameters).unwrap_or_default(),
            code_verifier_blob: verifier,
            authorize_origin: origin_of(&request.url).unwrap_or_default(),
            expires_at: self.now() + AUTHORIZATION_TTL.as_secs() as i64,
        };
        self.store.insert_authorization(&record).await?;
        Ok(Started { url: request.url })
    }

    /// Finishes an authorization at the callback: state (single use, this browser's session),
    /// `iss` (RFC 9207), the provider's answer, the code exchange, the stored connection and
    /// the connection test.
    pub async fn finish_authorization(
        &self,
        profile_id: &str,
        query: &str,
        cookie_session: Option<&str>,
    ) -> Result<Finished, PageError> {
        let result = self.finish_inner(profile_id, query, cookie_session).await;
        if let Err(e) = &result {
            bump(&self.metrics.callbacks_refused);
            tracing::warn!(profile = %profile_id, code = e.code, "callback refused");
        }
        result
    }

    async fn finish_inner(
        &self,
        profile_id: &str,
        query: &str,
        cookie_session: Option<&str>,
    ) -> Result<Finished, PageError> {
        let callback = Callback::from_query(query);
        let restart = "Go back to the application and start connecting again.";
        let Some(state) = callback.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "state_missing",
                "The provider's answer has no state.",
            )
            .with_fix(restart));
        };
        let state_hash = sha256_hex(state);
        let unknown = || {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "state_unknown",
                "This sign-in answer is unknown or was already used.",
            )
            .with_fix(restart)
        };
        let Some(pending) = self.store.authorization(&state_hash).await? else { return Err(unknown()) };
        // Another browser's state is left alone: refusing it must not cancel the rightful
        // user's authorization.
        if cookie_session != Some(pending.session_id.as_str()) {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "state_wrong_session",
                "This sign-in answer belongs to another browser session.",
            )
            .with_fix("Finish connecting in the browser where you started."));
        }
        let Some(pending) = self.store.take_authorization(&state_hash, &pending.session_id).await? else {
            return Err(unknown());
        };
        if pending.expires_at <= self.now() {
            return Err(PageError::new(StatusCode::BAD_REQUEST, "state_expired", "The sign-in took too long.")
                .with_fix(restart));
        }
        let session = self.live_session(&pending.session_id).await?;
        let integration =
            self.store.integration(&pending.integration_id).await?.ok_or_else(|| {
                PageError::new(StatusCode::NOT_FOUND, "not_found", "This integration no longer exists.")
            })?;
        if integration.profile != profile_id {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "callback_mismatch",
                "This answer arrived at another provider's callback.",
            )
            .with_fix(restart));
        }
        let parameters: IndexMap<String, String> = parse_json(&pending.parameters);
        let connector = self.connector(&integration, &parameters).map_err(|e| {
            PageError::new(StatusCode::CONFLICT, e.code(), "This integration is misconfigured.")
                .with_fix("Ask the application's administrator to check the integration.")
        })?;
        // RFC 9207, the runtime's one check: the answer must come from the server the user
        // was sent to (the profile's issuer, else the authorize endpoint's origin).
        if connector.check_callback_issuer(callback.iss.as_deref()).is_err() {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "issuer_mismatch",
                "The answer does not come from the authorization server you were sent to.",
            )
            .with_fix(restart));
        }
        let verifier = match &pending.code_verifier_blob {
            Some(blob) => {
                let cell = Cell { table: "authorizations", row: &pending.state_hash, column: "code_verifier_blob" };
                let plain = self.keys.decrypt(cell, blob).map_err(|_| unknown())?;
                Some(SecretString::from(String::from_utf8_lossy(&plain).into_owned()))
            }
            None => None,
        };
        let tokens =
            connector.finish_callback(&callback, verifier.as_ref()).await.map_err(|e| match e.diagnosis() {
                Some(d) => {
                    let mut error = PageError::new(
                        StatusCode::BAD_REQUEST,
                        "provider_refused",
                        d.meaning.clone().unwrap_or_else(|| {
                            format!(
                                "{} refused: {}",
                                connector.profile().name,
                                d.provider.description.as_deref().unwrap_or(&d.provider.error)
                            )
                        }),
                    );
                    error.fix = d.hint.clone();
                    error
                }
                None => PageError::new(
                    StatusCode::BAD_GATEWAY,
                    "exchange_failed",
                    format!("Signing in could not be finished: {e}"),
                )
                .with_fix("Try again in a moment."),
            })?;
        let now = self.now();
        let (id, reconnected) = match &session.connection_id {
            Some(id) if self.store.connection(id).await?.is_some() => (id.clone(), true),
            _ => {
                let id = new_id("conn");
                let record = ConnectionRecord::pending(
                    id.clone(),
                    &integration.id,
                    session.end_user.clone(),
                    pending.parameters.clone(),
                    now,
                );
                self.store.insert_connection(&record).await?;
                (id, false)
            }
        };
        self.tokens.insert(&id, Arc::clone(&connector), tokens.clone()).await.map_err(|e| {
            tracing::error!(connection = %id, error = %e, "new tokens could not be stored");
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "The connection could not be saved.")
                .with_fix("Try connecting again in a moment.")
        })?;
        bump(&self.metrics.connections_linked);
        tracing::info!(connection = %id, integration = %integration.id, reconnected, "account linked");
        let (state, diagnosis) = self.run_test(&id, &connector, &tokens).await;
        Ok(Finished {
            connection_id: id,
            provider: connector.profile().name.clone(),
            reconnected,
            state,
            diagnosis,
            return_url: session.return_url.clone(),
            allowed_origins: parse_json(&session.allowed_origins),
        })
    }
}
