//! Every request's id: the caller's `X-Request-Id` when it is safe (`ids::is_safe_request_id`),
//! else a new `req_...`. It is answered in `X-Request-Id` on every response, carried by
//! problem documents, the request's log line, its audit records and the webhook events its
//! changes cause, so one call can be followed from the platform's logs into keyway's.

use crate::ids;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// `X-Request-Id`.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id, in the request's extensions (handlers take it as an extractor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being answered on this task, if any (problem documents and log
/// lines read it).
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The caller's id when it is safe, else a new one.
pub fn of(request: &Request) -> String {
    request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| ids::is_safe_request_id(id))
        .map_or_else(|| ids::new_id(ids::REQUEST), str::to_owned)
}

/// The outermost layer: gives the request its id, runs it with the id in scope, and answers
/// it in `X-Request-Id`.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = of(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(|| RequestId(ids::new_id(ids::REQUEST))))
    }
}
