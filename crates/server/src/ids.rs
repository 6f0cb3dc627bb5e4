//! The hub's identifiers and secrets: one generator, one prefix per kind of thing.

/// `intg_...`: an integration.
pub const INTEGRATION: &str = "intg";
/// `conn_...`: a connection.
pub const CONNECTION: &str = "conn";
/// `cs_...`: a connect session.
pub const SESSION: &str = "cs";
/// `evt_...`: a webhook event (the receiver's idempotency key).
pub const EVENT: &str = "evt";
/// `inst_...`: this process, in refresh leases.
pub const INSTANCE: &str = "inst";
/// `req_...`: a request (`X-Request-Id`) when the caller sent none usable, or a background
/// refresh.
pub const REQUEST: &str = "req";
/// `aud_...`: an audit record.
pub const AUDIT: &str = "aud";

/// The longest request id accepted from a caller.
pub const MAX_REQUEST_ID: usize = 64;

/// Whether a caller's `X-Request-Id` is safe to keep: 1 to 64 ASCII letters, digits and
/// `-_.:` (nothing a log line, a header or a JSON string would need to escape).
pub fn is_safe_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// `len` random alphanumeric characters from the thread's CSPRNG (62^22 > 2^130 for ids).
pub fn random(len: usize) -> String {
    keyway_stdx::random_alphanumeric(len)
}

/// A new identifier: `intg_3f9a...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random(22))
}
