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

/// `len` random alphanumeric characters from the thread's CSPRNG (62^22 > 2^130 for ids).
pub fn random(len: usize) -> String {
    keyway_stdx::random_alphanumeric(len)
}

/// A new identifier: `intg_3f9a...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random(22))
}
