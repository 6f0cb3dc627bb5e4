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

/// Writes the bundled Salesforce profiles, the child for `host`, and the profiles of the
/// keyed APIs ([`keyed_profiles`]) into `dir`.
pub fn write_profiles(dir: &Path, host: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in ["salesforce.yaml", "salesforce-service-cloud.yaml"] {
        std::fs::copy(bundled_profiles_dir().join(name), dir.join(name))?;
    }
    for (id, text) in keyed_profiles(host) {
        std::fs::write(dir.join(format!("{id}.yaml")), text)?;
    }
    std::fs::write(dir.join(format!("{LOCAL_PROFILE_ID}.yaml")), local_profile(host))
}

/// The ids of the profiles of the provider's keyed APIs, one per kind of credential other
/// than OAuth 2.0: API key, HTTP Basic, token exchange, none.
pub const KEYED_PROFILE_IDS: [&str; 5] =
    ["testkit-api-key", "testkit-basic", "testkit-exchange", "testkit-jwt", "testkit-public"];

/// Profiles for the provider's keyed APIs at `host` (`127.0.0.1:PORT`), each complete and
/// validating with no diagnostics.
pub fn keyed_profiles(host: &str) -> [(&'static str, String); 5] {
    let head = |id: &str, name: &str| {
        format!("id: {id}\nname: {name}\nenvironments:\n  local: {{label: Local test provider, default: true}}\n")
    };
    let api = |path: &str| format!("api:\n  base_url: 'http://{host}/keyed/{path}'\n  verify: {{path: /me}}\n");
    [
        (
            "testkit-api-key",
            format!(
                "{}auth:
  kind: api_key
  fields:
    api_key:
      label: API key
      pattern: '^[A-Za-z0-9_-]{{8,128}}$'
      help: In the test provider, the key is set by `ProviderConfig::api_key`.
      docs: https://example.com/docs/api-keys
      example: testkit-api-key-0123456789
  apply:
    headers:
      X-Api-Key: '{{{{ fields.api_key }}}}'
{}",
                head("testkit-api-key", "Test provider (API key)"),
                api("api-key")
            ),
        ),
        (
            "testkit-basic",
            format!(
                "{}auth:
  kind: basic
  fields:
    username: {{label: User name, secret: false}}
    password: {{label: Password}}
  apply:
    basic: {{username: '{{{{ fields.username }}}}', password: '{{{{ fields.password }}}}'}}
{}",
                head("testkit-basic", "Test provider (Basic)"),
                api("basic")
            ),
        ),
        (
            "testkit-exchange",
            format!(
                "{}auth:
  kind: token_exchange
  fields:
    username: {{label: User name, secret: false}}
    password: {{label: Password}}
  exchange:
    url: 'http://{host}/keyed/exchange/token'
    format: json
    body:
      username: '{{{{ fields.username }}}}'
      password: '{{{{ fields.password }}}}'
    token_pointer: /data/token
    expires_in_pointer: /expires_in
  apply:
    headers:
      Authorization: 'Bearer {{{{ token.access_token }}}}'
{}",
                head("testkit-exchange", "Test provider (token exchange)"),
                api("exchanged")
            ),
        ),
        (
            "testkit-jwt",
            format!(
                "{}auth:
  kind: signed_jwt
  fields:
    key_id: {{label: Key id, secret: false}}
    secret: {{label: Signing secret}}
  jwt:
    algorithm: HS256
    key: '{{{{ fields.secret }}}}'
    key_id: '{{{{ fields.key_id }}}}'
    claims:
      iss: testkit-issuer
      aud: [testkit]
    lifetime_seconds: 300
  apply:
    headers:
      Authorization: 'Bearer {{{{ token.access_token }}}}'
{}",
                head("testkit-jwt", "Test provider (signed JWT)"),
                api("jwt")
            ),
        ),
        (
            "testkit-public",
            format!("{}auth:\n  kind: none\n{}", head("testkit-public", "Test provider (public API)"), api("public")),
        ),
    ]
}
