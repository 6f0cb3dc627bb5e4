//! The pages' handlers: the connect page and its form, the provider's callback, the guide
//! page. Each makes one hub call and renders its answer (or its refusal) with `views`.

use super::AppState;
use super::extract::{Body, Segment};
use super::problem::status_of;
use super::request_id::RequestId;
use super::security::{EXPORT_CSP, GUIDE_CSP, cookie_value, is_cross_site, page, see_other, session_cookie};
use crate::error::{HubError, ProblemCode};
use crate::hub::{FormRefused, Submitted};
use crate::views::guide;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn error_page(state: &AppState, heading: &str, error: &HubError) -> Response {
    page(status_of(error), state.pages.error(heading, error))
}

/// `GET /guide/{profile}`: the interactive setup guide (a plain form without JavaScript).
pub(super) async fn guide_page(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
) -> Response {
    match state.hub.guide(&profile) {
        Ok(source) => {
            let guide = guide::guide_page(
                &source.profile,
                &source.base,
                &source.callback,
                query.as_deref().unwrap_or_default(),
            );
            let status = if guide.result.errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            let mut response = page(status, state.pages.guide(&guide));
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(GUIDE_CSP));
            response
        }
        Err(e) => error_page(&state, "No such guide", &e),
    }
}

/// `GET /guide/{profile}/fragment`: the part of the guide page a changed selection replaces.
pub(super) async fn guide_fragment(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
) -> Response {
    match state.hub.guide(&profile) {
        Ok(source) => {
            let result = guide::guide_result(
                &source.profile,
                &source.base,
                &source.callback,
                query.as_deref().unwrap_or_default(),
            );
            let status = if result.errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            page(status, state.pages.guide_result(&source.profile.id, &result))
        }
        Err(e) => error_page(&state, "No such guide", &e),
    }
}

/// `GET /guide/{profile}/export`: the guide as one self-contained HTML file.
pub(super) async fn guide_export(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
) -> Response {
    let source = match state.hub.guide(&profile) {
        Ok(source) => source,
        Err(e) => return error_page(&state, "No such guide", &e),
    };
    match guide::guide_export(&source.profile, &source.base, &source.callback, query.as_deref().unwrap_or_default()) {
        Ok(html) => {
            let mut response = (StatusCode::OK, html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EXPORT_CSP));
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{}-guide.html\"", source.profile.id))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            );
            response
        }
        Err(e) => error_page(&state, "This selection has no guide", &e),
    }
}

/// `GET /connect?session_token=...` trades the token (once) for a signed cookie and
/// redirects to `/connect`, so the token leaves the address bar and the history; `GET
/// /connect` shows the page of the session the cookie names.
pub(super) async fn connect_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let token = url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "session_token")
        .map(|(_, v)| v.into_owned());
    if let Some(token) = token {
        return match state.hub.open_session(&token).await {
            Ok(cookie) => {
                let mut response = see_other("/connect");
                if let Some(value) = session_cookie(&cookie.value, cookie.max_age, state.secure_cookies) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                response
            }
            Err(e) => error_page(&state, "This link cannot be used", &e),
        };
    }
    match state.hub.connect_page(cookie_value(&headers)).await {
        Ok(model) => page(StatusCode::OK, state.pages.connect(&model)),
        Err(e) if e.code() == ProblemCode::SessionMissing => error_page(&state, "No connect session", &e),
        Err(e) => error_page(&state, "This session cannot be used", &e),
    }
}

/// The connect form: checks the parameters and redirects to the provider, or links the
/// entered credentials and shows the done page.
pub(super) async fn start_connect(
    State(state): State<AppState>,
    Segment(integration): Segment,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Result<Body, HubError>,
) -> Response {
    let body = match body {
        Ok(Body(bytes)) => bytes,
        Err(e) => return error_page(&state, "The connection cannot start", &e),
    };
    if is_cross_site(&headers, state.public_origin.as_deref()) {
        let e = HubError::new(ProblemCode::CrossSite, "This form was sent from another site.")
            .with_fix("Open the connect link the application gave you.");
        return error_page(&state, "Refused", &e);
    }
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    match state.hub.submit_connect_form(cookie_value(&headers), &integration, &form, &request_id).await {
        Ok(Submitted::Redirect(started)) => see_other(&started.url),
        Ok(Submitted::Linked(done)) => page(StatusCode::OK, state.pages.done(&done)),
        Err(FormRefused::Form(model, e)) => page(status_of(&e), state.pages.connect(&model)),
        Err(FormRefused::Error(e)) if e.code() == ProblemCode::SessionMissing => {
            error_page(&state, "No connect session", &e)
        }
        Err(FormRefused::Error(e)) if matches!(e.code(), ProblemCode::SessionExpired) => {
            error_page(&state, "This session cannot be used", &e)
        }
        Err(FormRefused::Error(e)) => error_page(&state, "The connection cannot start", &e),
    }
}

/// The provider's redirect back: `GET /v1/connect/oauth2/{profile}/callback`.
pub(super) async fn callback(
    State(state): State<AppState>,
    Segment(profile): Segment,
    RawQuery(query): RawQuery,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
) -> Response {
    match state
        .hub
        .finish_authorization(&profile, query.as_deref().unwrap_or_default(), cookie_value(&headers), &request_id)
        .await
    {
        Ok(done) => page(StatusCode::OK, state.pages.done(&done)),
        Err(e) => error_page(&state, "The account was not connected", &e),
    }
}
