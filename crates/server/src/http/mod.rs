//! The HTTP layer: routes, and what every answer shares. It translates requests into hub
//! calls and answers back, in files that show its parts:
//!
//! - `api.rs`: the JSON API's handlers;
//! - `pages.rs`: the pages' handlers (connect, callback, guide);
//! - `extract.rs`: path segments, the API caller, JSON bodies and queries;
//! - `problem.rs`: the one mapping of a [`HubError`] to problem+json;
//! - `request_id.rs`: every request's id (`X-Request-Id`), kept or given;
//! - `security.rs`: page headers, the session cookie, the cross-site check, assets;
//! - `listen.rs`: accepting connections within bounds (count, header and body time);
//! - `openapi.rs`: the OpenAPI document (utoipa; `schemas/openapi.json`).

mod api;
mod extract;
mod listen;
mod openapi;
mod pages;
pub mod problem;
pub mod request_id;
mod security;

pub use listen::{ConnectionLimits, raise_file_limit, serve};
pub use openapi::{openapi, problem_statuses};

use crate::error::{HubError, ProblemCode};
use crate::hub::Hub;
use crate::views::{CSS, GUIDE_CSS, GUIDE_SCRIPT, Pages, SCRIPT};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use security::asset;
use std::sync::Arc;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The hub.
    pub hub: Arc<Hub>,
    /// The page templates.
    pub pages: Arc<Pages>,
    /// The hub's own origin (`https://connect.example.com`): form posts from elsewhere are
    /// refused.
    pub public_origin: Option<String>,
    /// Whether cookies are `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
}

impl AppState {
    /// The state of a hub's router.
    pub fn new(hub: Arc<Hub>) -> AppState {
        let public_origin = keyway_runtime::origin_of(hub.public_url());
        let secure_cookies = hub.public_url().starts_with("https://");
        AppState {
            hub,
            pages: Arc::new(Pages::new()),
            public_origin,
            secure_cookies,
            body_timeout: ConnectionLimits::default().body_timeout,
        }
    }

    /// The same, bodies given `body_timeout` to arrive.
    pub fn with_body_timeout(mut self, body_timeout: std::time::Duration) -> AppState {
        self.body_timeout = body_timeout;
        self
    }
}

/// The router of `keyway serve`.
pub fn router(state: AppState) -> Router {
    let json_api = Router::new()
        .route("/v1/integrations", get(api::list_integrations).post(api::create_integration))
        .route(
            "/v1/integrations/{id}",
            get(api::get_integration).patch(api::patch_integration).delete(api::delete_integration),
        )
        .route("/v1/connect/sessions", post(api::create_session))
        .route("/v1/connections", get(api::list_connections).post(api::import_connection))
        .route("/v1/connections/{id}", get(api::get_connection).delete(api::delete_connection))
        .route("/v1/connections/{id}/token", get(api::connection_token))
        .route("/v1/connections/{id}/credentials", get(api::connection_credentials))
        .route("/v1/connections/{id}/refresh", post(api::refresh_connection))
        .route("/v1/connections/{id}/test", post(api::test_connection))
        .route("/v1/connections/{id}/revoke", post(api::revoke_connection))
        .route("/v1/admin/reload", post(api::reload))
        .route("/v1/api-keys", get(api::list_api_keys).post(api::create_api_key))
        .route("/v1/api-keys/{id}", axum::routing::delete(api::revoke_api_key))
        .route("/v1/audit", get(api::list_audit));
    let html_pages = Router::new()
        .route("/connect", get(pages::connect_page))
        .route("/connect/{integration}", post(pages::start_connect))
        .route("/v1/connect/oauth2/{profile}/callback", get(pages::callback))
        .route("/guide/{profile}", get(pages::guide_page))
        .route("/guide/{profile}/fragment", get(pages::guide_fragment))
        .route("/guide/{profile}/export", get(pages::guide_export));
    let assets = Router::new()
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/assets/keyway.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/connect.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/assets/guide.css", get(|| async { asset("text/css; charset=utf-8", GUIDE_CSS) }))
        .route("/assets/guide.js", get(|| async { asset("text/javascript; charset=utf-8", GUIDE_SCRIPT) }));
    let operations = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi_json));
    json_api
        .merge(html_pages)
        .merge(assets)
        .merge(operations)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// One line per request: method, route (never the query: it can carry a code, a state or a
/// session token), status, time and the request id. The request runs as one view of the
/// database ([`Hub::per_request`]).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let request_id = request_id::current().unwrap_or_default();
    let started = std::time::Instant::now();
    let response = crate::hub::Hub::per_request(next.run(request)).await;
    tracing::info!(%method, route, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, request_id = %request_id, "request");
    response
}

async fn not_found() -> HubError {
    HubError::new(ProblemCode::RouteNotFound, "no such route")
}

async fn method_not_allowed() -> HubError {
    HubError::new(ProblemCode::MethodNotAllowed, "this route does not take that method")
}
