//! Routes. Each handler translates HTTP into one call on the [`Hub`] and its answer back
//! into HTTP; nothing here decides anything the hub or the runtime decides.

use crate::body::{Json, MAX_JSON_BYTES};
use crate::hub::{Hub, PageError};
use crate::model::{
    AccessTokenView, Connection, ConnectionList, Health, Integration, IntegrationList, NewConnection, NewIntegration,
    NewSession, Reloaded, RevocationResult, SessionCreated, TestResult,
};
use crate::pages::{CSS, GUIDE_CSS, GUIDE_SCRIPT, Pages, SCRIPT};
use crate::problem::{ApiError, Problem, ProblemDiagnostic};
use crate::store::ConnectionFilter;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

/// The connect page's cookie: the session id, signed.
const COOKIE: &str = "keyway_connect";

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The hub.
    pub hub: Arc<Hub>,
    /// The page templates.
    pub pages: Arc<Pages>,
}

/// The router of `keyway serve`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/integrations", get(list_integrations).post(create_integration))
        .route("/v1/integrations/{id}", get(get_integration).patch(patch_integration).delete(delete_integration))
        .route("/v1/connect/sessions", post(create_session))
        .route("/v1/connections", get(list_connections).post(import_connection))
        .route("/v1/connections/{id}", get(get_connection).delete(delete_connection))
        .route("/v1/connections/{id}/token", get(connection_token))
        .route("/v1/connections/{id}/refresh", post(refresh_connection))
        .route("/v1/connections/{id}/test", post(test_connection))
        .route("/v1/connections/{id}/revoke", post(revoke_connection))
        .route("/v1/admin/reload", post(reload));
    let pages = Router::new()
        .route("/connect", get(connect_page))
        .route("/connect/{integration}", post(start_connect))
        .route("/v1/connect/oauth2/{profile}/callback", get(callback))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/assets/keyway.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/connect.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/guide/{profile}", get(guide_page))
        .route("/guide/{profile}/fragment", get(guide_fragment))
        .route("/guide/{profile}/export", get(guide_export))
        .route("/assets/guide.css", get(|| async { asset("text/css; charset=utf-8", GUIDE_CSS) }))
        .route("/assets/guide.js", get(|| async { asset("text/javascript; charset=utf-8", GUIDE_SCRIPT) }));
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json));
    api.merge(pages)
        .merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One line per request: method, route (never the query: it can carry a code, a state or a
/// session token), status, time.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(%method, route, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "Not found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this route does not take that method",
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A path segment (an id or a profile), refused as problem+json when unreadable.
#[derive(Debug)]
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) if segment.len() <= 200 => Ok(Segment(segment)),
            _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not found", "the path names nothing")),
        }
    }
}

/// A management API caller: `Authorization: Bearer kwk_...`.
#[derive(Debug)]
pub struct ApiCaller;

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .unwrap_or_default();
        state.hub.check_api_key(presented).await.map(|()| ApiCaller)
    }
}

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
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".to_owned() })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state.hub.store().ping().await?;
    Ok(axum::Json(Health { status: "ready".to_owned() }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.hub.metrics_text().await.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, body = Object, content_type = "application/json")))]
async fn openapi_json() -> Response {
    let mut response = openapi().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Reloads the profiles directory; the profiles in use stay when the new set has errors.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "operations", security(("api_key" = [])), responses(
    (status = 200, body = Reloaded),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn reload(_: ApiCaller, State(state): State<AppState>) -> Result<axum::Json<Reloaded>, ApiError> {
    let hub = Arc::clone(&state.hub);
    let result = tokio::task::spawn_blocking(move || hub.reload()).await.map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "reload_failed", "Reload failed", "the reload did not finish")
    })?;
    match result {
        Ok((profiles, warnings)) => Ok(axum::Json(Reloaded { profiles, warnings })),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "profiles_invalid",
            "The profiles have errors",
            format!("{} error(s); the profiles in use stay", e.error_count()),
        )
        .with_diagnostics(e.diagnostics.iter().filter(|d| d.is_error()).map(ProblemDiagnostic::from).collect())),
    }
}

// ---- integrations -------------------------------------------------------------------------

/// Creates an integration, checked against its profile first.
#[utoipa::path(post, path = "/v1/integrations", tag = "integrations", security(("api_key" = [])),
    request_body = NewIntegration, responses(
    (status = 201, body = Integration),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn create_integration(
    _: ApiCaller,
    State(state): State<AppState>,
    Json(new): Json<NewIntegration>,
) -> Result<Response, ApiError> {
    Ok(created(state.hub.create_integration(new).await?))
}

/// Every integration.
#[utoipa::path(get, path = "/v1/integrations", tag = "integrations", security(("api_key" = [])), responses(
    (status = 200, body = IntegrationList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
async fn list_integrations(
    _: ApiCaller,
    State(state): State<AppState>,
) -> Result<axum::Json<IntegrationList>, ApiError> {
    Ok(axum::Json(IntegrationList { data: state.hub.integrations().await? }))
}

/// One integration (never its secrets).
#[utoipa::path(get, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = [])),
    params(("id" = String, Path, description = "The integration id")), responses(
    (status = 200, body = Integration),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_integration(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<Integration>, ApiError> {
    Ok(axum::Json(state.hub.integration(&id).await?))
}

/// Changes an integration: a JSON Merge Patch of its fields (a secret is set by a string,
/// removed by `null`, kept when absent), checked like a new one.
#[utoipa::path(patch, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = [])),
    params(("id" = String, Path, description = "The integration id")),
    request_body(content = Object, content_type = "application/merge-patch+json"), responses(
    (status = 200, body = Integration),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn patch_integration(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
    Json(patch): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<axum::Json<Integration>, ApiError> {
    Ok(axum::Json(state.hub.patch_integration(&id, patch).await?))
}

/// Deletes an integration that has no connections.
#[utoipa::path(delete, path = "/v1/integrations/{id}", tag = "integrations", security(("api_key" = [])),
    params(("id" = String, Path, description = "The integration id")), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
async fn delete_integration(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    state.hub.delete_integration(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- connect sessions ---------------------------------------------------------------------

/// Creates a connect session for an end user: a single-use token (30 minutes) and the URL
/// of the hosted connect page.
#[utoipa::path(post, path = "/v1/connect/sessions", tag = "connect", security(("api_key" = [])),
    request_body = NewSession, responses(
    (status = 201, body = SessionCreated),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn create_session(
    _: ApiCaller,
    State(state): State<AppState>,
    Json(new): Json<NewSession>,
) -> Result<Response, ApiError> {
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
#[utoipa::path(get, path = "/v1/connections", tag = "connections", security(("api_key" = [])),
    params(ListQuery), responses(
    (status = 200, body = ConnectionList),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn list_connections(
    _: ApiCaller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<ConnectionList>, ApiError> {
    let query: ListQuery = serde_urlencoded_query(query.as_deref().unwrap_or_default())?;
    let filter = ConnectionFilter {
        integration: query.integration,
        state: query.state,
        after: query.after,
        limit: query.limit.unwrap_or(100),
    };
    Ok(axum::Json(state.hub.connections(filter).await?))
}

fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if map.contains_key(k.as_ref()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "The query is invalid",
                format!("`{k}` is given twice"),
            ));
        }
        let value = match v.parse::<u64>() {
            Ok(n) if k == "limit" => serde_json::Value::from(n),
            // A negative or fractional limit is a number too: refused as one, not as a string.
            _ if k == "limit" && v.parse::<f64>().is_ok() => serde_json::Value::from(-1),
            _ => serde_json::Value::String(v.into_owned()),
        };
        map.insert(k.into_owned(), value);
    }
    crate::body::from_value(serde_json::Value::Object(map)).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "The query is invalid", e.detail().to_owned())
    })
}

/// Imports tokens a platform already holds as a connection.
#[utoipa::path(post, path = "/v1/connections", tag = "connections", security(("api_key" = [])),
    request_body = NewConnection, responses(
    (status = 201, body = Connection),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 413, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
async fn import_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Json(new): Json<NewConnection>,
) -> Result<Response, ApiError> {
    Ok(created(state.hub.import_connection(new).await?))
}

/// One connection: state, granted scopes, last diagnosis (never tokens).
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = Connection),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
async fn get_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<Connection>, ApiError> {
    Ok(axum::Json(state.hub.connection(&id).await?))
}

/// A valid access token: refreshed first when due (one refresh however many ask), the
/// rotated tokens stored before this answers.
#[utoipa::path(get, path = "/v1/connections/{id}/token", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = AccessTokenView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn connection_token(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    Ok(no_store(state.hub.token(&id).await?))
}

/// Refreshes now, whatever the expiry.
#[utoipa::path(post, path = "/v1/connections/{id}/refresh", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = AccessTokenView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn refresh_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    Ok(no_store(state.hub.refresh(&id).await?))
}

/// Runs the profile's connection test.
#[utoipa::path(post, path = "/v1/connections/{id}/test", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = TestResult),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
async fn test_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<TestResult>, ApiError> {
    Ok(axum::Json(state.hub.test(&id).await?))
}

/// Revokes the grant at the provider (RFC 7009) and keeps the connection as `revoked`.
#[utoipa::path(post, path = "/v1/connections/{id}/revoke", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = RevocationResult),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 500, body = Problem, content_type = "application/problem+json"),
))]
async fn revoke_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<RevocationResult>, ApiError> {
    Ok(axum::Json(state.hub.revoke(&id, false).await?))
}

/// Revokes the grant at the provider first (RFC 7009), then deletes the connection; says
/// whether revocation succeeded.
#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", security(("api_key" = [])),
    params(("id" = String, Path, description = "The connection id")), responses(
    (status = 200, body = RevocationResult),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 500, body = Problem, content_type = "application/problem+json"),
))]
async fn delete_connection(
    _: ApiCaller,
    State(state): State<AppState>,
    Segment(id): Segment,
) -> Result<axum::Json<RevocationResult>, ApiError> {
    Ok(axum::Json(state.hub.revoke(&id, true).await?))
}

// ---- pages --------------------------------------------------------------------------------

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// `GET /guide/{profile}`: the interactive setup guide (a plain form without JavaScript).
async fn guide_page(State(state): State<AppState>, Segment(profile): Segment, RawQuery(query): RawQuery) -> Response {
    match state.hub.guide_page(&profile, query.as_deref().unwrap_or_default()) {
        Ok(guide) => {
            let status = if guide.result.errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            let mut response = page(status, state.pages.guide(&guide));
            // The page's script fetches the fragment from here; nothing else changes.
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                ),
            );
            response
        }
        Err(e) => error_page(&state, "No such guide", &e),
    }
}

/// `GET /guide/{profile}/fragment`: the part of the guide page a changed selection replaces.
async fn guide_fragment(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
) -> Response {
    match state.hub.guide_result(&profile, query.as_deref().unwrap_or_default()) {
        Ok(result) => {
            let status = if result.errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            page(status, state.pages.guide_result(&profile, &result))
        }
        Err(e) => error_page(&state, "No such guide", &e),
    }
}

/// `GET /guide/{profile}/export`: the guide as one self-contained HTML file.
async fn guide_export(State(state): State<AppState>, Segment(profile): Segment, RawQuery(query): RawQuery) -> Response {
    match state.hub.guide_export(&profile, query.as_deref().unwrap_or_default()) {
        Ok(Ok(html)) => {
            let mut response = (StatusCode::OK, html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            // The file carries its own style and no script.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{profile}-guide.html\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            );
            response
        }
        Ok(Err(errors)) => {
            let first = errors.first();
            let error = PageError {
                status: StatusCode::BAD_REQUEST,
                code: "guide_request_invalid",
                message: first.map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default(),
                fix: first.and_then(|e| e.help.clone()),
                fields: Vec::new(),
            };
            error_page(&state, "This selection has no guide", &error)
        }
        Err(e) => error_page(&state, "No such guide", &e),
    }
}

fn error_page(state: &AppState, heading: &str, error: &PageError) -> Response {
    page(error.status, state.pages.error(heading, error))
}

fn cookie_session<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .find_map(|(_, value)| state.hub.keys().verify_signed(value))
}

/// `GET /connect?session_token=...` trades the token (once) for a signed cookie and
/// redirects to `/connect`, so the token leaves the address bar and the history.
async fn connect_page(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let token = url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "session_token")
        .map(|(_, v)| v.into_owned());
    if let Some(token) = token {
        return match state.hub.open_session(&token).await {
            Ok(session_id) => {
                let secure = if state.hub.public_url().starts_with("https://") { "; Secure" } else { "" };
                let cookie = format!(
                    "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                    state.hub.keys().sign(&session_id),
                    crate::hub::SESSION_TTL.as_secs()
                );
                let mut response = StatusCode::SEE_OTHER.into_response();
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, HeaderValue::from_static("/connect"));
                headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    headers.insert(header::SET_COOKIE, value);
                }
                response
            }
            Err(e) => error_page(&state, "This link cannot be used", &e),
        };
    }
    let Some(session_id) = cookie_session(&state, &headers) else {
        let e = PageError {
            status: StatusCode::FORBIDDEN,
            code: "session_missing",
            message: "There is no connect session in this browser.".to_owned(),
            fix: Some("Open the connect link the application gave you.".to_owned()),
            fields: Vec::new(),
        };
        return error_page(&state, "No connect session", &e);
    };
    let result = async {
        let session = state.hub.live_session(session_id).await?;
        state.hub.connect_page(&session).await
    }
    .await;
    match result {
        Ok(model) => page(StatusCode::OK, state.pages.connect(&model)),
        Err(e) => error_page(&state, "This session cannot be used", &e),
    }
}

/// Whether a form post came from another site. Cross-site posts carry no SameSite=Lax cookie
/// anyway; this refuses them by name. Browsers say where a request comes from in
/// `Sec-Fetch-Site`; without it, a foreign `Origin` is refused. (The pages' `no-referrer`
/// policy makes browsers send `Origin: null` on their own forms.)
fn is_cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return site != "same-origin";
    }
    match header("origin") {
        None | Some("null") => false,
        Some(origin) => crate::hub::origin_of(state.hub.public_url()).as_deref() != Some(origin),
    }
}

/// The connect form: checks the parameters and redirects to the provider.
async fn start_connect(
    State(state): State<AppState>,
    Segment(integration): Segment,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if is_cross_site(&state, &headers) {
        {
            let e = PageError {
                status: StatusCode::FORBIDDEN,
                code: "cross_site",
                message: "This form was sent from another site.".to_owned(),
                fix: Some("Open the connect link the application gave you.".to_owned()),
                fields: Vec::new(),
            };
            return error_page(&state, "Refused", &e);
        }
    }
    let Some(session_id) = cookie_session(&state, &headers) else {
        let e = PageError {
            status: StatusCode::FORBIDDEN,
            code: "session_missing",
            message: "There is no connect session in this browser.".to_owned(),
            fix: Some("Open the connect link the application gave you.".to_owned()),
            fields: Vec::new(),
        };
        return error_page(&state, "No connect session", &e);
    };
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let session = match state.hub.live_session(session_id).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, "This session cannot be used", &e),
    };
    match state.hub.start_authorization(&session, &integration, &form).await {
        Ok(started) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(&started.url) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        Err(e) if !e.fields.is_empty() => match state.hub.connect_page(&session).await {
            Ok(mut model) => {
                for item in model.integrations.iter_mut().filter(|i| i.id == integration) {
                    for p in &mut item.parameters {
                        p.value = form
                            .iter()
                            .find(|(k, _)| k.strip_prefix("param.") == Some(p.name.as_str()))
                            .map(|(_, v)| v.chars().take(500).collect())
                            .unwrap_or_default();
                        p.error = e.fields.iter().find(|(name, _)| *name == p.name).map(|(_, m)| m.clone());
                    }
                }
                model.error = Some(e.message.clone());
                page(e.status, state.pages.connect(&model))
            }
            Err(e) => error_page(&state, "This session cannot be used", &e),
        },
        Err(e) => error_page(&state, "The connection cannot start", &e),
    }
}

/// The provider's redirect back: `GET /v1/connect/oauth2/{profile}/callback`.
async fn callback(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = cookie_session(&state, &headers);
    match state.hub.finish_authorization(&profile, query.as_deref().unwrap_or_default(), session).await {
        Ok(done) => page(StatusCode::OK, state.pages.done(&done)),
        Err(e) => error_page(&state, "The account was not connected", &e),
    }
}

// ---- OpenAPI ------------------------------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyway serve",
        description = "A self-hosted connect hub: integrations (a tenant's app per provider profile), connect sessions and the hosted connect page, connections and their access tokens. Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        healthz, readyz, metrics, openapi_json, reload,
        create_integration, list_integrations, get_integration, patch_integration, delete_integration,
        create_session,
        list_connections, import_connection, get_connection, connection_token, refresh_connection,
        test_connection, revoke_connection, delete_connection,
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "integrations", description = "A tenant's app registered with a provider, checked against its profile."),
        (name = "connect", description = "Sessions that let an end user link an account on the hosted connect page."),
        (name = "connections", description = "Linked accounts and their tokens."),
        (name = "operations", description = "Health, readiness, metrics, reload."),
    ),
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `keyway keys api create` (`kwk_...`)"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document of the HTTP API, pretty-printed (as committed in
/// `schemas/openapi.json`).
pub fn openapi() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
