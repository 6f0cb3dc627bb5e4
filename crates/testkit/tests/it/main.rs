//! keyway-testkit's integration tests, one binary: the provider over real loopback HTTP.

mod common;
mod endpoints;
mod grants;
mod rest_api;
mod web_flow;
