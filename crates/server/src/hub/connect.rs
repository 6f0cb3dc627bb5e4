//! Connect sessions, the connect page's model, and the authorization they start and finish.

use super::*;
use crate::domain::AuditAction;
use keyway_manifest::model::AuthKind;

/// Where a connect-page authorization starts: the provider's URL.
#[derive(Debug)]
pub struct Started {
    /// The authorization URL.
    pub url: String,
}

/// What a posted connect form did.
#[derive(Debug)]
pub enum Submitted {
    /// An OAuth authorization started: send the browser to the provider.
    Redirect(Started),
    /// Entered credentials were checked, tried and stored: show the done page.
    Linked(Box<Finished>),
}

/// A connect session's browser cookie value: the session id, signed with the key ring.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    /// The cookie's value.
    pub value: String,
    /// How long it is good for.
    pub max_age: Duration,
}

/// Why the connect form did not start an authorization: the form to show again, with the
/// fields' refusals and what the user typed, or only an error.
#[derive(Debug)]
pub enum FormRefused {
    /// Show the form again.
    Form(Box<ConnectPage>, HubError),
    /// Show an error page.
    Error(HubError),
}

impl From<HubError> for FormRefused {
    fn from(e: HubError) -> Self {
        FormRefused::Error(e)
    }
}

const RESTART: &str = "Go back to the application and start connecting again.";

/// The longest text of a refused form field shown back to the user.
const MAX_ECHOED: usize = 500;

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
    /// The profile's kind of credential (`oauth2`, `api_key`, ...).
    pub kind: &'static str,
    /// The credentials the user enters (kinds other than OAuth 2.0).
    pub fields: Vec<PageField>,
}

/// One credential field on the connect page (an API key, a user, a password).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageField {
    /// The form field's name.
    pub name: String,
    /// The label.
    pub label: String,
    /// Whether it is a secret: a password input, never shown back.
    pub secret: bool,
    /// Whether it spans lines (a PEM key): a text area.
    pub multiline: bool,
    /// Whether a value is needed.
    pub required: bool,
    /// Where to find it.
    pub help: Option<String>,
    /// The provider's page about it.
    pub docs: Option<String>,
    /// An example of its shape.
    pub example: Option<String>,
    /// What the user typed (after a refusal; never a secret's).
    pub value: String,
    /// Why the value was refused.
    pub error: Option<String>,
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
    pub state: ConnectionState,
    /// Whether a connection test ran (the profile declares one: `api.verify`).
    pub tested: bool,
    /// Why the connection test failed.
    pub diagnosis: Option<ConnectionDiagnosis>,
    /// Where to send the user back.
    pub return_url: Option<String>,
    /// Where the result may be posted.
    pub allowed_origins: Vec<String>,
}

impl Hub {
    pub(super) fn check_end_user(end_user: &EndUser) -> Result<(), HubError> {
        if end_user.id.trim().is_empty() || end_user.id.chars().count() > 255 {
            return Err(HubError::invalid_field("/end_user/id", "the end user id must be 1 to 255 characters"));
        }
        for (pointer, value) in
            [("/end_user/email", &end_user.email), ("/end_user/display_name", &end_user.display_name)]
        {
            if value.as_ref().is_some_and(|v| v.chars().count() > 255) {
                return Err(HubError::invalid_field(pointer, "longer than 255 characters"));
            }
        }
        Ok(())
    }

    /// Creates a connect session: a single-use token (stored as its hash) and the page URL.
    pub async fn create_session(&self, new: NewSession) -> Result<SessionCreated, HubError> {
        Self::check_end_user(&new.end_user)?;
        if let Some(url) = &new.return_url {
            if let Some(why) = web_url_problem(url) {
                return Err(HubError::invalid_field("/return_url", format!("the return URL is refused: {why}")));
            }
        }
        if new.allowed_origins.len() > 20 {
            return Err(HubError::invalid_field("/allowed_origins", "at most 20 origins"));
        }
        let mut origins = Vec::new();
        for (i, origin) in new.allowed_origins.iter().enumerate() {
            let pointer = format!("/allowed_origins/{i}");
            if let Some(why) = web_url_problem(origin) {
                return Err(HubError::invalid_field(&pointer, format!("the origin is refused: {why}")));
            }
            match origin_of(origin) {
                Some(o) if o == origin.trim_end_matches('/') => origins.push(o),
                _ => {
                    return Err(HubError::invalid_field(
                        &pointer,
                        "an origin is `scheme://host[:port]`, without a path",
                    ));
                }
            }
        }
        let mut integrations = match &new.integrations {
            Some(ids) if ids.is_empty() => {
                return Err(HubError::invalid_field("/integrations", "name at least one integration"));
            }
            Some(ids) if ids.len() > 100 => return Err(HubError::invalid_field("/integrations", "at most 100")),
            Some(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if self.store.integration(id).await?.is_none() {
                        return Err(HubError::invalid_field(&format!("/integrations/{i}"), "no such integration"));
                    }
                }
                ids.clone()
            }
            None => Vec::new(),
        };
        if let Some(connection_id) = &new.connection_id {
            let Some(connection) = self.store.connection(connection_id).await? else {
                return Err(HubError::invalid_field("/connection_id", "no such connection"));
            };
            if !integrations.is_empty() && !integrations.contains(&connection.integration_id) {
                return Err(HubError::invalid_field(
                    "/integrations",
                    "a reconnect session must allow the connection's integration",
                ));
            }
            integrations = vec![connection.integration_id];
        } else if integrations.is_empty() {
            integrations = self.store.integrations().await?.into_iter().map(|r| r.id).collect();
            if integrations.is_empty() {
                return Err(HubError::new(ProblemCode::NoIntegrations, "create an integration first"));
            }
        }
        let token = format!("kwcs_{}", ids::random(43));
        let now = self.now();
        let record = SessionRecord {
            id: ids::new_id(ids::SESSION),
            token_hash: sha256_hex(&token),
            end_user: new.end_user.clone(),
            integrations,
            return_url: new.return_url.clone(),
            allowed_origins: origins,
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

    /// Exchanges a session token (once) for the value of the browser's cookie: the session
    /// id, signed.
    pub async fn open_session(&self, token: &str) -> Result<SessionCookie, HubError> {
        let refused = || {
            HubError::new(ProblemCode::SessionInvalid, "This connect link is invalid, used or expired.")
                .with_fix(RESTART)
        };
        if !token.starts_with("kwcs_") || token.len() > 100 {
            return Err(refused());
        }
        match self.store.open_session(&sha256_hex(token), self.now()).await? {
            Some(session) => Ok(SessionCookie { value: self.keys.sign(&session.id), max_age: SESSION_TTL }),
            None => Err(refused()),
        }
    }

    /// The session a browser's cookie names, when its signature holds and it is still valid.
    async fn live_session(&self, cookie: Option<&str>) -> Result<SessionRecord, HubError> {
        let Some(session_id) = cookie.and_then(|value| self.keys.verify_signed(value)) else {
            return Err(HubError::new(ProblemCode::SessionMissing, "There is no connect session in this browser.")
                .with_fix("Open the connect link the application gave you."));
        };
        self.session_by_id(session_id).await
    }

    async fn session_by_id(&self, session_id: &str) -> Result<SessionRecord, HubError> {
        match self.store.session(session_id).await? {
            Some(s) if s.expires_at > self.now() => Ok(s),
            _ => Err(HubError::new(ProblemCode::SessionExpired, "This connect session has expired.").with_fix(RESTART)),
        }
    }

    /// The connect page for the session a browser's cookie names.
    pub async fn connect_page(&self, cookie: Option<&str>) -> Result<ConnectPage, HubError> {
        let session = self.live_session(cookie).await?;
        self.connect_page_of(&session).await
    }

    async fn connect_page_of(&self, session: &SessionRecord) -> Result<ConnectPage, HubError> {
        let mut integrations = Vec::new();
        for id in &session.integrations {
            let Some(record) = self.store.integration(id).await? else { continue };
            let Some(profile) = self.profile(&record.profile) else { continue };
            let settings = &record.settings;
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
                kind: profile.auth.kind.as_str(),
                fields: profile
                    .auth
                    .fields
                    .iter()
                    .map(|(name, f)| PageField {
                        name: name.clone(),
                        label: f.label.clone(),
                        secret: f.secret,
                        multiline: f.multiline,
                        required: f.required,
                        help: f.help.clone(),
                        docs: f.docs.clone(),
                        example: f.example.clone(),
                        value: String::new(),
                        error: None,
                    })
                    .collect(),
            });
        }
        Ok(ConnectPage {
            end_user: session.end_user.clone(),
            reconnect: session.connection_id.is_some(),
            integrations,
            error: None,
        })
    }

    /// The connect form, posted by the browser a cookie names: starts an authorization, or
    /// links the entered credentials, or says why not (with the form to show again when
    /// fields were refused or the provider refused the credentials).
    pub async fn submit_connect_form(
        &self,
        cookie: Option<&str>,
        integration_id: &str,
        form: &[(String, String)],
        request_id: &str,
    ) -> Result<Submitted, FormRefused> {
        let session = self.live_session(cookie).await?;
        let result = match self.submitted_kind(&session, integration_id).await? {
            AuthKind::Oauth2 => self.start_authorization(&session, integration_id, form).await.map(Submitted::Redirect),
            _ => self
                .link_from_form(&session, integration_id, form, request_id)
                .await
                .map(|f| Submitted::Linked(Box::new(f))),
        };
        match result {
            Ok(submitted) => Ok(submitted),
            Err(e) if e.field_errors().next().is_some() || e.code() == ProblemCode::CredentialsRefused => {
                let mut page = self.connect_page_of(&session).await?;
                let typed = |prefix: &str, name: &str| {
                    form.iter()
                        .find(|(k, _)| k.strip_prefix(prefix) == Some(name))
                        .map(|(_, v)| v.chars().take(MAX_ECHOED).collect())
                        .unwrap_or_default()
                };
                for item in page.integrations.iter_mut().filter(|i| i.id == integration_id) {
                    for p in &mut item.parameters {
                        p.value = typed("param.", &p.name);
                        p.error = e.field_errors().find(|(name, _)| *name == p.name).map(|(_, m)| m);
                    }
                    for f in &mut item.fields {
                        // A secret is never sent back to the browser, refused or not.
                        f.value = if f.secret { String::new() } else { typed("field.", &f.name) };
                        f.error = e.field_errors().find(|(name, _)| *name == f.name).map(|(_, m)| m);
                    }
                }
                page.error = Some(match e.fix() {
                    Some(fix) if e.code() == ProblemCode::CredentialsRefused => format!("{} {fix}", e.detail()),
                    _ => e.detail().to_owned(),
                });
                Err(FormRefused::Form(Box::new(page), e))
            }
            Err(e) => Err(FormRefused::Error(e)),
        }
    }

    /// The kind of credential an integration offered in this session links.
    async fn submitted_kind(&self, session: &SessionRecord, integration_id: &str) -> Result<AuthKind, HubError> {
        let (_, profile) = self.offered(session, integration_id).await?;
        Ok(profile.auth.kind)
    }

    /// The integration a session offers, and its profile.
    async fn offered(
        &self,
        session: &SessionRecord,
        integration_id: &str,
    ) -> Result<(IntegrationRecord, Arc<Profile>), HubError> {
        if !session.integrations.iter().any(|id| id == integration_id) {
            return Err(HubError::new(
                ProblemCode::IntegrationNotAllowed,
                "This integration is not offered in this session.",
            ));
        }
        let record = self
            .store
            .integration(integration_id)
            .await?
            .ok_or_else(|| HubError::new(ProblemCode::NotFound, "This integration no longer exists."))?;
        let profile = self
            .profile(&record.profile)
            .ok_or_else(|| HubError::new(ProblemCode::ProfileUnavailable, "This provider is unavailable."))?;
        Ok((record, profile))
    }

    /// The parameters a connect form gives: the profile's, less those the integration fixes.
    fn form_parameters(
        profile: &Profile,
        record: &IntegrationRecord,
        form: &[(String, String)],
    ) -> Result<Parameters, HubError> {
        let mut parameters = IndexMap::new();
        for (name, value) in form {
            let Some(name) = name.strip_prefix("param.") else { continue };
            if !profile.parameters.contains_key(name) || record.settings.parameters.contains_key(name) {
                continue;
            }
            let value = value.trim();
            if !value.is_empty() && parameters.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(HubError::new(ProblemCode::DuplicateParameter, "A field was sent twice."));
            }
        }
        Ok(parameters)
    }

    /// The connector of a form's integration and parameters, its refusals per field.
    fn form_connector(&self, record: &IntegrationRecord, parameters: &Parameters) -> Result<Arc<Connector>, HubError> {
        match self.connector(record, parameters) {
            Ok(c) => Ok(c),
            Err(e) if e.field_errors().next().is_some() => {
                Err(HubError::new(ProblemCode::InvalidParameters, "Check the highlighted fields.")
                    .with_diagnostics(e.diagnostics().to_vec()))
            }
            Err(e) => Err(misconfigured(e)),
        }
    }

    /// Links the credentials entered on the connect page (the runtime checks, exchanges and
    /// tries them first): a new connection, or the session's connection reconnected.
    async fn link_from_form(
        &self,
        session: &SessionRecord,
        integration_id: &str,
        form: &[(String, String)],
        request_id: &str,
    ) -> Result<Finished, HubError> {
        let (record, profile) = self.offered(session, integration_id).await?;
        let parameters = Self::form_parameters(&profile, &record, form)?;
        let connector = self.form_connector(&record, &parameters)?;
        let mut values = IndexMap::new();
        for (name, value) in form {
            let Some(name) = name.strip_prefix("field.") else { continue };
            // Blank optional fields are absent; values are kept as typed but for the ends a
            // paste adds.
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if values.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(HubError::new(ProblemCode::DuplicateParameter, "A field was sent twice."));
            }
        }
        let target = match &session.connection_id {
            Some(id) if self.store.connection(id).await?.is_some() => {
                super::credentials::LinkTarget::Existing(id.clone())
            }
            _ => super::credentials::LinkTarget::New {
                integration_id: record.id.clone(),
                end_user: session.end_user.clone(),
                parameters,
                imported: false,
            },
        };
        let caller = Caller::session(&session.id, request_id, &self.lease_owner);
        let linked = self.link_credentials(&caller, &connector, values, target).await?;
        let row =
            self.store.connection(&linked.id).await?.ok_or_else(|| HubError::not_found("connection", &linked.id))?;
        Ok(Finished {
            connection_id: linked.id,
            provider: profile.name.clone(),
            reconnected: linked.reconnected,
            state: row.state,
            tested: linked.tested,
            diagnosis: None,
            return_url: session.return_url.clone(),
            allowed_origins: session.allowed_origins.clone(),
        })
    }

    /// Starts an authorization from the connect page's form: the parameters are checked (a
    /// refusal comes back per field), the state and PKCE verifier are stored, and the
    /// provider's URL is returned.
    async fn start_authorization(
        &self,
        session: &SessionRecord,
        integration_id: &str,
        form: &[(String, String)],
    ) -> Result<Started, HubError> {
        let (record, profile) = self.offered(session, integration_id).await?;
        let parameters = Self::form_parameters(&profile, &record, form)?;
        let connector = self.form_connector(&record, &parameters)?;
        let request = connector
            .authorization_request()
            .map_err(|e| HubError::new(ProblemCode::FlowUnsupported, e.to_string()))?;
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
            parameters,
            code_verifier_blob: verifier,
            nonce: request.nonce,
            expires_at: self.now().saturating_add(STATE_TTL.as_secs() as i64),
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
        cookie: Option<&str>,
        request_id: &str,
    ) -> Result<Finished, HubError> {
        let cookie_session = cookie.and_then(|value| self.keys.verify_signed(value));
        let result = self.finish_inner(profile_id, query, cookie_session, request_id).await;
        if let Err(e) = &result {
            bump(&self.metrics.callbacks_refused);
            tracing::warn!(profile = %profile_id, code = %e.code(), "callback refused");
        }
        result
    }

    async fn finish_inner(
        &self,
        profile_id: &str,
        query: &str,
        cookie_session: Option<&str>,
        request_id: &str,
    ) -> Result<Finished, HubError> {
        let callback = Callback::from_query(query);
        let restart = RESTART;
        let Some(state) = callback.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Err(
                HubError::new(ProblemCode::StateMissing, "The provider's answer has no state.").with_fix(restart)
            );
        };
        let state_hash = sha256_hex(state);
        let unknown = || {
            HubError::new(ProblemCode::StateUnknown, "This sign-in answer is unknown or was already used.")
                .with_fix(restart)
        };
        let Some(pending) = self.store.authorization(&state_hash).await? else { return Err(unknown()) };
        // The runtime's one state check; the row is consumed unless it belongs to another
        // browser (refusing a stranger must not cancel the rightful user's authorization).
        let now_ms = (self.now() as u64).saturating_mul(1000);
        let verdict =
            check_state(&pending.session_id, (pending.expires_at as u64).saturating_mul(1000), cookie_session, now_ms);
        if verdict == Err(StateError::WrongSession) {
            return Err(HubError::new(
                ProblemCode::StateWrongSession,
                "This sign-in answer belongs to another browser session.",
            )
            .with_fix("Finish connecting in the browser where you started."));
        }
        let Some(pending) = self.store.take_authorization(&state_hash, &pending.session_id).await? else {
            return Err(unknown());
        };
        if verdict == Err(StateError::Expired) {
            return Err(HubError::new(ProblemCode::StateExpired, "The sign-in took too long.").with_fix(restart));
        }
        let session = self.session_by_id(&pending.session_id).await?;
        let integration = self
            .store
            .integration(&pending.integration_id)
            .await?
            .ok_or_else(|| HubError::new(ProblemCode::NotFound, "This integration no longer exists."))?;
        if integration.profile != profile_id {
            return Err(HubError::new(
                ProblemCode::CallbackMismatch,
                "This answer arrived at another provider's callback.",
            )
            .with_fix(restart));
        }
        let connector = self.connector(&integration, &pending.parameters).map_err(misconfigured)?;
        // RFC 9207, the runtime's one check: the answer must come from the server the user
        // was sent to (the profile's issuer, else the authorize endpoint's origin).
        if connector.check_callback_issuer(callback.iss.as_deref()).is_err() {
            return Err(HubError::new(
                ProblemCode::IssuerMismatch,
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
        let tokens = connector.finish_callback(&callback, verifier.as_ref(), pending.nonce.as_deref()).await.map_err(
            |e| match e.diagnosis() {
                Some(d) => {
                    let error = HubError::new(
                        ProblemCode::ProviderRefused,
                        d.meaning.clone().unwrap_or_else(|| {
                            format!(
                                "{} refused: {}",
                                connector.profile().name,
                                d.provider.description.as_deref().unwrap_or(&d.provider.error)
                            )
                        }),
                    );
                    match &d.hint {
                        Some(hint) => error.with_fix(hint.clone()),
                        None => error,
                    }
                }
                None if matches!(e, FlowError::IdToken(_)) => HubError::new(
                    ProblemCode::NonceMismatch,
                    format!("This sign-in's answer was issued for another sign-in, so nothing was linked: {e}"),
                )
                .with_fix(restart),
                None => HubError::new(ProblemCode::ExchangeFailed, format!("Signing in could not be finished: {e}"))
                    .with_fix(if e.is_transient() {
                        "Try again in a moment."
                    } else {
                        "Start connecting again from the app; if this happens again, tell the app's support."
                    }),
            },
        )?;
        let now = self.now();
        let (id, reconnected) = match &session.connection_id {
            Some(id) if self.store.connection(id).await?.is_some() => (id.clone(), true),
            _ => {
                let id = ids::new_id(ids::CONNECTION);
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
        // Recorded in the save's transaction, by the end user's session.
        let caller = Caller::session(&session.id, request_id, &self.lease_owner);
        let save = if reconnected { AuditAction::Reconnected } else { AuditAction::Linked };
        let context = super::audit::Context::new(&caller, save, "on read");
        context.clone().run(self.tokens.insert(&id, Arc::clone(&connector), tokens.clone())).await.map_err(|e| {
            tracing::error!(connection = %id, error = %e, "new tokens could not be stored");
            HubError::new(ProblemCode::StoreUnavailable, "The connection could not be saved.")
                .with_fix("Try connecting again in a moment.")
        })?;
        bump(&self.metrics.connections_linked);
        tracing::info!(connection = %id, integration = %integration.id, reconnected, "account linked");
        let tested = context.run(self.run_test(&id, &connector, &tokens)).await;
        Ok(Finished {
            connection_id: id,
            provider: connector.profile().name.clone(),
            reconnected,
            state: tested.state,
            tested: tested.ran,
            diagnosis: tested.diagnosis,
            return_url: session.return_url.clone(),
            allowed_origins: session.allowed_origins.clone(),
        })
    }
}

/// A connector that cannot be built, as the connect page tells the user.
fn misconfigured(e: HubError) -> HubError {
    e.with_detail("This integration is misconfigured.")
        .with_fix("Ask the application's administrator to check the integration.")
}
