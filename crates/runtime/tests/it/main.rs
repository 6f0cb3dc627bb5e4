//! keyway-runtime's integration tests, one binary: end to end against keyway-testkit over
//! loopback HTTP.

mod support;

mod any_server;
mod flows;
mod hostile;
mod http_limits;
mod manager;
mod quirks;
mod registry;
mod secrets;
mod variants;
