//! keyway profiles that point at a running test provider.
//!
//! The bundled `salesforce` profile is used as it ships; a child profile,
//! `salesforce-local`, adds a `local` environment whose login host is the provider's
//! `127.0.0.1:PORT`, reached over plain http (allowed for loopback only). The other
//! environments keep https, and a My Domain parameter is honoured only there. The child
//! declares the provider's issuer (RFC 9207): an `iss` on a callback must be exactly it.

use std::path::{Path, PathBuf};

/// The id of the child profile.
pub const LOCAL_PROFILE_ID: &str = "salesforce-local";

/// The repository's `profiles/` directory.
pub fn bundled_profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

/// The child profile's YAML for a provider at `host` (`127.0.0.1:PORT`).
pub fn local_profile(host: &str) -> String {
    let endpoint = |path: &str| {
        format!(
            "'{{{{ env.scheme }}}}://{{{{ env.scheme == \"https\" and params.my_domain or env.login_host }}}}{path}'"
        )
    };
    format!(
        "id: {LOCAL_PROFILE_ID}
extends: salesforce
name: Salesforce (local test provider)
environments:
  production:
    vars: {{scheme: https}}
  sandbox:
    vars: {{scheme: https}}
  local:
    label: Local test provider
    vars: {{login_host: '{host}', scheme: http}}
auth:
  issuer: {}
  endpoints:
    authorize: {}
    token: {}
    revoke: {}
    introspect: {}
    userinfo: {}
  jwt_bearer:
    audience: '{{{{ env.scheme }}}}://{{{{ env.login_host }}}}'
  device:
    start: {}
",
        endpoint(""),
        endpoint("/services/oauth2/authorize"),
        endpoint("/services/oauth2/token"),
        endpoint("/services/oauth2/revoke"),
        endpoint("/services/oauth2/introspect"),
        endpoint("/services/oauth2/userinfo"),
        endpoint("/services/oauth2/token"),
    )
}

/// Writes the bundled Salesforce profiles and the child for `host` into `dir`.
pub fn write_profiles(dir: &Path, host: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in ["salesforce.yaml", "salesforce-service-cloud.yaml"] {
        std::fs::copy(bundled_profiles_dir().join(name), dir.join(name))?;
    }
    std::fs::write(dir.join(format!("{LOCAL_PROFILE_ID}.yaml")), local_profile(host))
}
