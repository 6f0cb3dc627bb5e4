//! keyway-import's integration tests, one binary: Nango's catalogue (the hand-written sample
//! and the real corpus) and OpenID Connect discovery documents.

mod nango;
mod oidc;
