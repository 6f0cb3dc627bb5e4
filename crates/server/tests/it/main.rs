//! keyway-server's integration tests, one binary: each module a part of the hub, all over
//! loopback HTTP against keyway-testkit, on SQLite or (with `KEYWAY_TEST_BACKEND=postgres`)
//! PostgreSQL.

mod support;

mod access;
mod api_input;
mod audit;
mod coherence;
mod connect;
mod credentials;
mod docs;
mod guide_page;
mod hostile;
mod rows;
mod secrets;
mod sockets;
mod tokens;
mod webhooks;
