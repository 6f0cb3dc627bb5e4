//! What handlers take from a request: a path segment, the API caller, a JSON body, a query;
//! each refused as a problem document.

use super::AppState;
use super::request_id::RequestId;
use crate::domain::Scope;
use crate::error::{HubError, ProblemCode};
use crate::hub::Caller;
use crate::json::{MAX_JSON_BYTES, too_large};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A path segment (an id or a profile), refused as problem+json when unreadable.
#[derive(Debug)]
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) if segment.len() <= 200 => Ok(Segment(segment)),
            _ => Err(HubError::new(ProblemCode::NotFound, "the path names nothing")),
        }
    }
}

/// What an operation needs: one scope (the OpenAPI document's security requirement names
/// the same; a test walks every operation with keys holding each scope alone).
pub trait Needs: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

macro_rules! needs {
    ($( $name:ident => $scope:ident, )*) => {
        $(
            #[doc = concat!("An operation that needs `", stringify!($scope), "`.")]
            #[derive(Debug)]
            pub struct $name;
            impl Needs for $name {
                const SCOPE: Scope = Scope::$scope;
            }
        )*
    };
}

needs! {
    IntegrationsRead => IntegrationsRead,
    IntegrationsWrite => IntegrationsWrite,
    ConnectSessionsWrite => ConnectSessionsWrite,
    ConnectionsRead => ConnectionsRead,
    ConnectionsWrite => ConnectionsWrite,
    CredentialsRead => CredentialsRead,
    Admin => Admin,
}

/// A management API caller whose key holds `N::SCOPE`: `Authorization: Bearer kwk_...`.
#[derive(Debug)]
pub struct ApiCaller<N: Needs>(pub Caller, pub PhantomData<N>);

impl<N: Needs> FromRequestParts<AppState> for ApiCaller<N> {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, state).await.unwrap_or_else(|e| match e {});
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .unwrap_or_default();
        let operation = parts.extensions.get::<MatchedPath>().map_or("", MatchedPath::as_str);
        let what = format!("{} {operation}", parts.method);
        state.hub.authorize(presented, N::SCOPE, &request_id, &what).await.map(|caller| ApiCaller(caller, PhantomData))
    }
}

/// A typed JSON request body: `application/json` (or `+json`), bounded, refused located.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = HubError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
        if !json {
            return Err(HubError::new(ProblemCode::UnsupportedMediaType, "send `Content-Type: application/json`"));
        }
        let bytes = Body::from_request(request, state).await?.0;
        crate::json::from_slice(&bytes).map(Json)
    }
}

/// A whole request body: bounded in size, and in time (`AppState::body_timeout`, 408).
#[derive(Debug)]
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = HubError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let read = Bytes::from_request(request, state);
        let bytes = tokio::time::timeout(state.body_timeout, read)
            .await
            .map_err(|_| {
                HubError::new(
                    ProblemCode::RequestTimeout,
                    format!("the request body did not arrive within {} seconds", state.body_timeout.as_secs()),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    HubError::new(ProblemCode::BodyUnreadable, "the request body was cut short or unreadable")
                }
            })?;
        Ok(Body(bytes))
    }
}

/// The largest body any route reads.
pub const BODY_LIMIT: usize = MAX_JSON_BYTES;

/// A query string typed like a body: a repeated key is refused, `limit`, `since` and
/// `until` are numbers.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, HubError> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if map.contains_key(k.as_ref()) {
            return Err(HubError::new(ProblemCode::InvalidQuery, format!("`{k}` is given twice")));
        }
        let value = match v.parse::<u64>() {
            Ok(n) if k == "limit" => serde_json::Value::from(n),
            // Times (seconds since the epoch) are numbers too.
            _ if (k == "since" || k == "until") && v.parse::<i64>().is_ok() => {
                serde_json::Value::from(v.parse::<i64>().unwrap_or_default())
            }
            // A negative or fractional limit is a number too: refused as one, not as a string.
            _ if k == "limit" && v.parse::<f64>().is_ok() => serde_json::Value::from(-1),
            _ => serde_json::Value::String(v.into_owned()),
        };
        map.insert(k.into_owned(), value);
    }
    crate::json::from_value(serde_json::Value::Object(map))
        .map_err(|e| HubError::new(ProblemCode::InvalidQuery, e.detail().to_owned()))
}
