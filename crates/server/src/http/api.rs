//! The JSON API's handlers: each translates HTTP into one call on the [`Hub`] and its answer
//! back into HTTP; nothing here decides anything the hub or the runtime decides. Their
//! OpenAPI annotations name the success answers; the problem answers each operation can give
//! are listed once, in `super::openapi`.

use super::AppState;
use super::extract::{
    Admin, ApiCaller, ConnectSessionsWrite, ConnectionsRead, ConnectionsWrite, CredentialsRead, IntegrationsRead,
    IntegrationsWrite, Json, Segment,
};
use crate::error::{HubError, ProblemCode};
use crate::hub::{AuditQuery, ConnectionQuery};
use crate::resources::{
    AccessTokenView, ApiKey, ApiKeyCreated, ApiKeyList, AuditList, Connection, ConnectionList, CredentialsView, Health,
    Integration, IntegrationList, NewApiKey, NewConnection, NewIntegration, NewSession, Reloaded, RevocationResult,
    SessionCreated, TestResult,
};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn no_store<T: serde::Serialize>(body: T) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---- operations ---------------------------------------------------------------------------

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(super) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".to_owned() })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Health),
))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, HubError> {
    state.hub.ready().await?;
    Ok(axum::Json(Health { status: "ready".to_owned() }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.hub.metrics_text().await.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, body = Object, content_type = "application/json")))]
pub(super) async fn openapi_json() -> Response {
    let mut response = super::openapi::openapi().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Reloads the profiles directory; the profiles in use stay when the new set has errors.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "operations", security(("api_key" = ["admin"])), responses(
    (status = 200, body = Reloaded),
))]
pub(super) async fn reload(
    _: ApiCaller<Admin>,
    State(state): State<AppState>,
) -> Result<axum::Json<Reloaded>, HubError> {
    let hub = Arc::clone(&state.hub);
    // Reading the directory blocks: off the async workers.
    let reloaded = tokio::task::spawn_blocking(move || hub.reload())
        .await
        .map_err(|_| HubError::new(ProblemCode::ReloadFailed, "the reload did not finish"))??;
    Ok(axum::Json(reloaded))
}

// ---- integrations -------------------------------------------------------------------------

/// Creates an integration, checked against its profile first.
#[utoipa::path(post, path = "/v1/integrations", tag = "integrations", security(("api_key" = ["integrations:write"])),
    request_body = NewIntegration, responses(
    (status = 201, body = Integration),
))]
pub(super) async fn create_integration(
    ApiCaller(caller, _): ApiCaller<IntegrationsWrite>,
    State(state): State<AppState>,
    Json(new): Json<NewIntegration>,
) -> Result<Response, HubError> {
    Ok(created(state.hub.create_integration(&caller, new).await?))
}

/// Every integration.
#[utoipa::path(get, path = "/v1/integrations", tag = "integrations", security(("api_key" = ["integrations:read"])), responses(
    (status = 200, body = IntegrationList),
))]
pub(super) async fn list_integrations(
    _: ApiCaller<IntegrationsRead>,
    State(state): State<AppState>,
) -> Result<axum::Json<IntegrationList>, HubError> {
    Ok(axum::Json(IntegrationList { data: state.hub.integrations().await? }))
}

/// One integration (never its secrets).
#[utoipa::path(get, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = ["integrations:read"])),
    params(("id" = String, Path, description = "The integration id")), responses(
    (status = 200, body = Integration),
))]
pub(super) async fn get_integration(
    _: ApiCaller<IntegrationsRead>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<Integration>, HubError> {
    Ok(axum::Json(state.hub.integration(&id).await?))
}

/// Changes an integration: a JSON Merge Patch of its fields (a secret is set by a string,
/// removed by `null`, kept when absent), checked like a new one.
#[utoipa::path(patch, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = ["integrations:write"])),
    params(("id" = String, Path, description = "The integration id")),
    request_body(content = Object, content_type = "application/merge-patch+json"), responses(
    (status = 200, body = Integration),
))]
pub(super) async fn patch_integration(
    ApiCaller(caller, _): ApiCaller<IntegrationsWrite>,
    State(state): State<AppState>,
    Segment(id): Segment,
    Json(patch): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<axum::Json<Integration>, HubError> {
    Ok(axum::Json(state.hub.patch_integration(&caller, &id, patch).await?))
}

/// Deletes an integration that has no connections.
#[utoipa::path(delete, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = ["integrations:write"])),
    params(("id" = String, Path, description = "The integration id")), responses(
    (status = 204, description = "Deleted"),
))]
pub(super) async fn delete_integration(
    ApiCaller(caller, _): ApiCaller<IntegrationsWrite>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<StatusCode, HubError> {
    state.hub.delete_integration(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- connect sessions ---------------------------------------------------------------------

/// Creates a connect session for an end user: a single-use token (30 minutes) and the URL
/// of the hosted connect page.
#[utoipa::path(post, path = "/v1/connect/sessions", tag = "connect", security(("api_key" = ["connect_sessions:write"])),
    request_body = NewSession, responses(
    (status = 201, body = SessionCreated),
))]
pub(super) async fn create_session(
    _: ApiCaller<ConnectSessionsWrite>,
    State(state): State<AppState>,
    Json(new): Json<NewSession>,
) -> Result<Response, HubError> {
    let session = state.hub.create_session(new).await?;
    let mut response = created(session);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

// ---- connections --------------------------------------------------------------------------

/// Which connections to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this integration's connections.
    integration: Option<String>,
    /// Only connections in this state.
    state: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Connections, by id, filtered and paged.
#[utoipa::path(get, path = "/v1/connections", tag = "connections", security(("api_key" = ["connections:read"])),
    params(ListQuery), responses(
    (status = 200, body = ConnectionList),
))]
pub(super) async fn list_connections(
    _: ApiCaller<ConnectionsRead>,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<ConnectionList>, HubError> {
    let q: ListQuery = super::extract::query(query.as_deref().unwrap_or_default())?;
    let asked = ConnectionQuery { integration: q.integration, state: q.state, after: q.after, limit: q.limit };
    Ok(axum::Json(state.hub.connections(asked).await?))
}

/// Imports a connection: tokens a platform already holds (OAuth 2.0 profiles), or the
/// credential fields an end user gave (API keys, Basic, token exchange), which are checked,
/// exchanged and tried with the profile's connection test before anything is stored.
#[utoipa::path(post, path = "/v1/connections", tag = "connections", security(("api_key" = ["connections:write"])),
    request_body = NewConnection, responses(
    (status = 201, body = Connection),
))]
pub(super) async fn import_connection(
    ApiCaller(caller, _): ApiCaller<ConnectionsWrite>,
    State(state): State<AppState>,
    Json(new): Json<NewConnection>,
) -> Result<Response, HubError> {
    Ok(created(state.hub.import_connection(&caller, new).await?))
}

/// One connection: state, granted scopes, last diagnosis (never tokens).
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", security(("api_key" = ["connections:read"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = Connection),
))]
pub(super) async fn get_connection(
    _: ApiCaller<ConnectionsRead>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<Connection>, HubError> {
    Ok(axum::Json(state.hub.connection(&id).await?))
}

/// A valid access token: refreshed first when due (one refresh however many ask), the
/// rotated tokens stored before this answers.
#[utoipa::path(get, path = "/v1/connections/{id}/token", tag = "connections", security(("api_key" = ["credentials:read"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = AccessTokenView),
))]
pub(super) async fn connection_token(
    ApiCaller(caller, _): ApiCaller<CredentialsRead>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<Response, HubError> {
    Ok(no_store(state.hub.token(&caller, &id).await?))
}

/// What to put on a request to the provider, for every kind of credential: headers and
/// query parameters (an OAuth connection's Bearer token, an API key, HTTP Basic, a token
/// exchange's token, nothing for a public API), until when they are good, the API base URL.
#[utoipa::path(get, path = "/v1/connections/{id}/credentials", tag = "connections", security(("api_key" = ["credentials:read"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = CredentialsView),
))]
pub(super) async fn connection_credentials(
    ApiCaller(caller, _): ApiCaller<CredentialsRead>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<Response, HubError> {
    Ok(no_store(state.hub.credentials(&caller, &id).await?))
}

/// Refreshes now, whatever the expiry.
#[utoipa::path(post, path = "/v1/connections/{id}/refresh", tag = "connections", security(("api_key" = ["credentials:read"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = AccessTokenView),
))]
pub(super) async fn refresh_connection(
    ApiCaller(caller, _): ApiCaller<CredentialsRead>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<Response, HubError> {
    Ok(no_store(state.hub.refresh(&caller, &id).await?))
}

/// Runs the profile's connection test.
#[utoipa::path(post, path = "/v1/connections/{id}/test", tag = "connections", security(("api_key" = ["connections:write"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = TestResult),
))]
pub(super) async fn test_connection(
    ApiCaller(caller, _): ApiCaller<ConnectionsWrite>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<TestResult>, HubError> {
    Ok(axum::Json(state.hub.test(&caller, &id).await?))
}

/// Revokes the grant at the provider (RFC 7009) and keeps the connection as `revoked`.
#[utoipa::path(post, path = "/v1/connections/{id}/revoke", tag = "connections", security(("api_key" = ["connections:write"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = RevocationResult),
))]
pub(super) async fn revoke_connection(
    ApiCaller(caller, _): ApiCaller<ConnectionsWrite>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<RevocationResult>, HubError> {
    Ok(axum::Json(state.hub.revoke(&caller, &id, false).await?))
}

/// Revokes the grant at the provider first (RFC 7009), then deletes the connection; says
/// whether revocation succeeded.
#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", security(("api_key" = ["connections:write"])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = RevocationResult),
))]
pub(super) async fn delete_connection(
    ApiCaller(caller, _): ApiCaller<ConnectionsWrite>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<RevocationResult>, HubError> {
    Ok(axum::Json(state.hub.revoke(&caller, &id, true).await?))
}

// ---- API keys -----------------------------------------------------------------------------

/// Creates an API key with the scopes it needs; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "operations", security(("api_key" = ["admin"])),
    request_body = NewApiKey, responses(
    (status = 201, body = ApiKeyCreated),
))]
pub(super) async fn create_api_key(
    ApiCaller(caller, _): ApiCaller<Admin>,
    State(state): State<AppState>,
    Json(new): Json<NewApiKey>,
) -> Result<Response, HubError> {
    let mut response = created(state.hub.create_api_key_for(&caller, new).await?);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Every API key: scopes, expiry, last use; never a secret.
#[utoipa::path(get, path = "/v1/api-keys", tag = "operations", security(("api_key" = ["admin"])), responses(
    (status = 200, body = ApiKeyList),
))]
pub(super) async fn list_api_keys(
    _: ApiCaller<Admin>,
    State(state): State<AppState>,
) -> Result<axum::Json<ApiKeyList>, HubError> {
    Ok(axum::Json(state.hub.api_keys().await?))
}

/// Revokes an API key: refused on its next request, on every instance.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "operations", security(("api_key" = ["admin"])),
    params(("id" = String, Path, description = "The key's id (the part after `kwk_`)")), responses(
    (status = 200, body = ApiKey),
))]
pub(super) async fn revoke_api_key(
    ApiCaller(caller, _): ApiCaller<Admin>,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<ApiKey>, HubError> {
    Ok(axum::Json(state.hub.revoke_api_key(&caller, &id).await?))
}

// ---- audit --------------------------------------------------------------------------------

/// Which audit records to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only records about this connection.
    connection: Option<String>,
    /// Only records by this actor: an API key's id, a connect session's, an instance's.
    actor: Option<String>,
    /// Only this action (`credential.read`, ...).
    action: Option<String>,
    /// Only records at or after this time (seconds since the epoch).
    since: Option<i64>,
    /// Only records before this time.
    until: Option<i64>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The audit trail, oldest first: every credential handed out, refresh, link, revocation,
/// deletion, import, integration change, API key created or revoked, and request refused for
/// its scope. Records cannot be changed through the API.
#[utoipa::path(get, path = "/v1/audit", tag = "operations", security(("api_key" = ["admin"])),
    params(AuditParams), responses(
    (status = 200, body = AuditList),
))]
pub(super) async fn list_audit(
    _: ApiCaller<Admin>,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<AuditList>, HubError> {
    let q: AuditParams = super::extract::query(query.as_deref().unwrap_or_default())?;
    let asked = AuditQuery {
        connection: q.connection,
        actor: q.actor,
        action: q.action,
        since: q.since,
        until: q.until,
        after: q.after,
        limit: q.limit,
    };
    Ok(axum::Json(state.hub.audit(asked).await?))
}
