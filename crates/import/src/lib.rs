//! Importers: other catalogues of OAuth providers turned into keyway profiles.
//!
//! - [`nango`]: Nango's public `providers.yaml` (and its optional `providers.scopes.yaml`).
//! - [`oidc`]: an OpenID Connect discovery document or RFC 8414 metadata, as a draft profile.
//!
//! An importer returns profiles as YAML text in a deterministic order, already validated as a
//! set by `keyway-validate`, and a [`Report`] that accounts for every entry of the input: each
//! is converted or skipped with a reason.
//!
//! ```
//! let providers = "acme:\n  display_name: Acme\n  auth_mode: OAUTH2\n  authorization_url: https://acme.example/oauth/authorize\n  token_url: https://acme.example/oauth/token\n";
//! let import = keyway_import::nango::convert(providers, None).expect("parses");
//! assert_eq!(import.profiles.len(), 1);
//! assert!(import.profiles[0].yaml.contains("token: https://acme.example/oauth/token"));
//! ```

pub mod nango;
pub mod oidc;
mod report;

pub use report::{Converted, Report, Skipped};

/// The largest import input read (Nango's `providers.yaml` is about 1 MiB; its own limit of
/// a few megabytes would be plenty, this leaves room).
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Import {
    /// Generated profiles, sorted by id.
    pub profiles: Vec<GeneratedProfile>,
    /// What was converted, what was not and why.
    pub report: Report,
}

/// One generated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedProfile {
    /// The keyway id (also the file stem: write it as `<id>.yaml`).
    pub id: String,
    /// The profile as YAML text, starting with a comment saying how it was generated.
    pub yaml: String,
}
