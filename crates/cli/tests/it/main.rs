//! The keyway command's integration tests, one binary, a module per area: the command as a
//! user runs it, its OAuth commands against keyway-testkit, and `keyway serve` as a process
//! (start refusals, keys, SIGHUP, the API fuzzed by schemathesis, several instances on one
//! PostgreSQL, the browser end to end). One area alone: `cargo test -p keyway --test it
//! serve_browser::`.

mod oauth_setup;
mod process;

mod cli;
mod guide_platforms;
mod guide_unsafe_output;
mod oauth;
mod oauth_any_server;
mod serve_api_fuzz;
mod serve_browser;
mod serve_cli;
mod serve_coherence;
mod serve_guide_browser;
mod serve_multi;
