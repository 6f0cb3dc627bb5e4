//! What every page answer carries: security headers, the connect session's cookie, the
//! cross-site check of form posts, and the embedded assets' headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The connect page's cookie: the session id, signed by the hub.
pub const COOKIE: &str = "keyway_connect";

/// The pages' policy: their own styles and scripts only, never framed.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The guide page's: its script also fetches the fragment from here, and its form posts here.
pub const GUIDE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The exported guide: one file with its own style and no script.
pub const EXPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'";

/// An HTML page answer, with the pages' security headers.
pub fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    // For browsers that predate CSP's frame-ancestors.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A `303 See Other` to `location`, leaking nothing in the referrer.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `Set-Cookie` of a connect session: HTTP only, same site, `Secure` behind https.
pub fn session_cookie(value: &str, max_age: std::time::Duration, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", max_age.as_secs());
    HeaderValue::from_str(&cookie).ok()
}

/// The connect session cookie's value, as sent (its signature is the hub's to check).
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a form post came from another site. Cross-site posts carry no SameSite=Lax cookie
/// anyway; this refuses them by name. Browsers say where a request comes from in
/// `Sec-Fetch-Site`; without it, a foreign `Origin` is refused. (The pages' `no-referrer`
/// policy makes browsers send `Origin: null` on their own forms.)
pub fn is_cross_site(headers: &HeaderMap, own_origin: Option<&str>) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return site != "same-origin";
    }
    match header("origin") {
        None | Some("null") => false,
        Some(origin) => own_origin != Some(origin),
    }
}

/// An embedded asset.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
