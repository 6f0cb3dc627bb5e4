//! A profile with no error map (docs/examples/example-oidc.yaml, pointed at keyway-testkit)
//! still diagnoses every standard OAuth error; connection failures name the host, port and
//! cause; the RFC 9207 check refuses a mixed-up callback before any token request.

use keyway_manifest::model::{ErrorKind, ErrorPhase};
use keyway_runtime::{
    Callback, Connector, ConnectorConfig, DiagnosisKind, FlowError, HttpClient, HttpOptions, IssuerError, Registry,
    Selection, TokenKind, standard_codes, standard_error,
};
use keyway_testkit::{Endpoint, Fault, ProviderConfig, TestProvider};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support;

const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// The example profile, and a child whose `local` environment is the test provider.
fn registry(host: &str) -> (Registry, support::TempDir) {
    let dir = support::TempDir::new("any-server");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/example-oidc.yaml");
    std::fs::copy(example, dir.path().join("example-oidc.yaml")).expect("copy the example");
    let child = format!(
        "id: example-local
extends: example-oidc
environments:
  production: {{default: false}}
  local: {{label: Test provider, default: true, vars: {{issuer: 'http://{host}'}}}}
auth:
  endpoints:
    authorize: '{{{{ env.issuer }}}}/services/oauth2/authorize'
    token: '{{{{ env.issuer }}}}/services/oauth2/token'
    revoke: '{{{{ env.issuer }}}}/services/oauth2/revoke'
    introspect: '{{{{ env.issuer }}}}/services/oauth2/introspect'
    userinfo: '{{{{ env.issuer }}}}/services/oauth2/userinfo'
"
    );
    std::fs::write(dir.path().join("example-local.yaml"), child).expect("child");
    match Registry::load(dir.path()) {
        Ok(registry) => (registry, dir),
        Err(e) => panic!("{e}: {:#?}", e.diagnostics),
    }
}

fn connector(registry: &Registry, id: &str) -> Connector {
    let profile = registry.get(id).expect("profile");
    assert!(profile.errors.is_empty(), "the example has no error map");
    let config = ConnectorConfig {
        client_id: "3MVG9testkit".into(),
        client_secret: Some("testkit-secret".to_owned().into()),
        selection: Selection { redirect_uri: Some(REDIRECT.into()), ..Selection::default() },
        ..ConnectorConfig::default()
    };
    let http =
        HttpClient::new(&HttpOptions { timeout: Duration::from_secs(5), ..HttpOptions::default() }).expect("http");
    Connector::new(profile, config, http).expect("connector")
}

/// What each standard code must mean, written out here rather than read from the table.
const EXPECTED: &[(&str, DiagnosisKind)] = &[
    ("invalid_request", DiagnosisKind::ClientBug),
    ("invalid_client", DiagnosisKind::FixConfiguration),
    ("invalid_grant", DiagnosisKind::Reauthorize),
    ("unauthorized_client", DiagnosisKind::FixConfiguration),
    ("unsupported_grant_type", DiagnosisKind::FixConfiguration),
    ("invalid_scope", DiagnosisKind::FixConfiguration),
    ("access_denied", DiagnosisKind::Reauthorize),
    ("unsupported_response_type", DiagnosisKind::FixConfiguration),
    ("server_error", DiagnosisKind::RetryLater),
    ("temporarily_unavailable", DiagnosisKind::RetryLater),
    ("invalid_token", DiagnosisKind::Reauthorize),
    ("insufficient_scope", DiagnosisKind::FixConfiguration),
    ("unsupported_token_type", DiagnosisKind::FixConfiguration),
    ("authorization_pending", DiagnosisKind::RetryLater),
    ("slow_down", DiagnosisKind::RetryLater),
    ("expired_token", DiagnosisKind::Reauthorize),
    ("interaction_required", DiagnosisKind::Reauthorize),
    ("login_required", DiagnosisKind::Reauthorize),
    ("consent_required", DiagnosisKind::Reauthorize),
    ("account_selection_required", DiagnosisKind::Reauthorize),
];

#[tokio::test]
async fn every_standard_error_is_understood_without_an_error_map() {
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let (registry, _dir) = registry(&provider.host());
    let connector = connector(&registry, "example-local");
    let known: Vec<&str> = standard_codes().collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(c, _)| *c).collect();
    assert_eq!(known, expected, "the test covers every standard code");

    for (code, kind) in EXPECTED {
        // At the token endpoint (RFC 6749 section 5.2 shape), as the provider answers it.
        provider.inject_faults(Endpoint::Token, [Fault::OAuthError { status: 400, error: (*code).to_owned() }]);
        let error = connector.client_credentials().await.expect_err("refused");
        let diagnosis = error.diagnosis().unwrap_or_else(|| panic!("{code}: {error}"));
        assert_eq!(diagnosis.kind, *kind, "{code}");
        assert_eq!(diagnosis.rule, None, "{code}: no profile rule");
        // `retry_later` refusals are retried (by the token manager); the rest are not.
        assert_eq!(error.is_transient(), *kind == DiagnosisKind::RetryLater, "{code}");
        let meaning = diagnosis.meaning.as_deref().expect("a meaning");
        assert!(meaning.contains("RFC ") || meaning.contains("OpenID Connect"), "{code}: {meaning}");
        assert!(diagnosis.hint.as_deref().is_some_and(|h| !h.is_empty()), "{code}");
        // The message says what it means, not only the code.
        assert!(error.to_string().contains(meaning), "{error}");
    }

    // Revocation (RFC 7009) and API (RFC 6750) answers are read the same way.
    provider.inject_faults(
        Endpoint::Revoke,
        [Fault::OAuthError { status: 400, error: "unsupported_token_type".to_owned() }],
    );
    let error = connector.revoke(&"t".to_owned().into(), TokenKind::Access).await.expect_err("refused");
    assert_eq!(error.diagnosis().map(|d| d.kind), Some(DiagnosisKind::FixConfiguration));

    // On the redirect (RFC 6749 section 4.1.2.1): `invalid_request` there is the authorization
    // request's fault, with its own wording.
    let callback = Callback {
        error: Some("invalid_request".into()),
        error_description: Some("missing code_challenge".into()),
        state: Some("s".into()),
        ..Callback::default()
    };
    let error = connector.finish_callback(&callback, None, None).await.expect_err("refused");
    let diagnosis = error.diagnosis().expect("diagnosis");
    assert_eq!(diagnosis.provider.phase, ErrorPhase::Authorize);
    assert!(diagnosis.meaning.as_deref().is_some_and(|m| m.contains("4.1.2.1")), "{diagnosis:?}");
    assert_eq!(standard_error("invalid_request", ErrorPhase::Authorize).map(|e| e.kind), Some(ErrorKind::ClientBug));

    // A code nobody defines stays unknown, with the provider's words.
    provider.inject_faults(Endpoint::Token, [Fault::OAuthError { status: 400, error: "acme_quota".to_owned() }]);
    let error = connector.client_credentials().await.expect_err("refused");
    assert_eq!(error.diagnosis().map(|d| d.kind), Some(DiagnosisKind::Unknown));
}

#[tokio::test]
async fn a_profile_error_rule_refines_the_standard_meaning() {
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let (registry, dir) = registry(&provider.host());
    drop(registry);
    std::fs::write(
        dir.path().join("example-refined.yaml"),
        "id: example-refined
extends: example-local
errors:
  quota:
    match: {error: temporarily_unavailable, description: '(?i)injected'}
    kind: fix_configuration
    meaning: The app's daily quota is used up.
    fix: Raise the quota in the provider's console.
",
    )
    .expect("write");
    let registry = Registry::load(dir.path()).expect("loads");
    let connector = connector_with_errors(&registry, "example-refined");
    provider.inject_faults(
        Endpoint::Token,
        [Fault::OAuthError { status: 400, error: "temporarily_unavailable".to_owned() }],
    );
    let error = connector.client_credentials().await.expect_err("refused");
    let diagnosis = error.diagnosis().expect("diagnosis");
    assert_eq!(diagnosis.kind, DiagnosisKind::FixConfiguration, "the profile's rule wins");
    assert_eq!(diagnosis.rule.as_deref(), Some("quota"));
    assert_eq!(diagnosis.meaning.as_deref(), Some("The app's daily quota is used up."));
    // Codes the map does not mention keep their standard meaning.
    provider.inject_faults(Endpoint::Token, [Fault::OAuthError { status: 400, error: "invalid_client".to_owned() }]);
    let error = connector.client_credentials().await.expect_err("refused");
    assert_eq!(error.diagnosis().map(|d| d.kind), Some(DiagnosisKind::FixConfiguration));
    assert_eq!(error.diagnosis().and_then(|d| d.rule.clone()), None);
}

fn connector_with_errors(registry: &Registry, id: &str) -> Connector {
    let profile = registry.get(id).expect("profile");
    let config = ConnectorConfig {
        client_id: "3MVG9testkit".into(),
        client_secret: Some("testkit-secret".to_owned().into()),
        selection: Selection { redirect_uri: Some(REDIRECT.into()), ..Selection::default() },
        ..ConnectorConfig::default()
    };
    let http = HttpClient::new(&HttpOptions::default()).expect("http");
    Connector::new(profile, config, http).expect("connector")
}

#[tokio::test]
async fn the_example_profile_runs_a_whole_flow() {
    let provider = TestProvider::start(ProviderConfig { require_pkce: true, ..ProviderConfig::default() })
        .await
        .expect("provider");
    let (registry, _dir) = registry(&provider.host());
    let connector = Arc::new(connector(&registry, "example-local"));
    let request = connector.authorization_request().expect("url");
    assert!(request.url.contains("scope=openid+offline_access"), "{}", request.url);
    let location = provider.browse(&request.url, "ada@example.com").await.expect("redirect");
    let query = location.split_once('?').expect("query").1;
    let tokens = connector
        .finish_callback(&Callback::from_query(query), request.code_verifier.as_ref(), request.nonce.as_deref())
        .await
        .expect("tokens");
    assert!(tokens.refresh_token.is_some(), "offline_access grants refresh");
    let basic = provider.requests().into_iter().find(|r| r.path.ends_with("/token")).expect("exchange");
    assert!(basic.basic_auth.is_some(), "client_secret_basic");
    let refreshed = connector.refresh(&tokens).await.expect("refresh");
    assert!(connector.introspect(&refreshed.access_token, TokenKind::Access).await.expect("introspect").active);
    connector
        .revoke(refreshed.refresh_token.as_ref().expect("refresh token"), TokenKind::Refresh)
        .await
        .expect("revoke");
    let error = connector.refresh(&refreshed).await.expect_err("revoked");
    assert_eq!(error.diagnosis().map(|d| d.kind), Some(DiagnosisKind::Reauthorize), "{error}");
}

#[tokio::test]
async fn a_mixed_up_callback_is_refused_before_the_token_endpoint() {
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let (registry, _dir) = registry(&provider.host());
    let connector = connector(&registry, "example-local");
    let issuer = provider.base_url();
    assert_eq!(connector.issuer_policy().issuer.as_deref(), Some(issuer.as_str()));
    let request = connector.authorization_request().expect("url");
    let callback = |iss: Option<&str>| Callback {
        code: Some("code".into()),
        state: Some(request.state.clone()),
        iss: iss.map(str::to_owned),
        ..Callback::default()
    };
    for forged in ["https://evil.example", &format!("{issuer}/"), ""] {
        let error = connector.finish_callback(&callback(Some(forged)), None, None).await.expect_err("refused");
        assert!(matches!(error, FlowError::Issuer(IssuerError::Mismatch)), "{forged}: {error}");
    }
    assert_eq!(provider.counts().token, 0, "no token request was made");
    assert_eq!(connector.check_callback_issuer(Some(&issuer)), Ok(()));
    assert_eq!(connector.check_callback_issuer(None), Ok(()), "not required by this profile");
}

#[tokio::test]
async fn connection_failures_name_the_host_port_and_cause() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (registry, _dir) = registry(&format!("127.0.0.1:{port}"));
    let connector = connector(&registry, "example-local");
    let error = connector.client_credentials().await.expect_err("nothing listens");
    let message = error.to_string();
    assert!(message.contains(&format!("connection refused to 127.0.0.1:{port}")), "{message}");
    assert!(error.is_transient());

    // TLS to a server that speaks plain HTTP.
    let provider = TestProvider::start(ProviderConfig::default()).await.expect("provider");
    let dir = support::TempDir::new("tls");
    std::fs::write(
        dir.path().join("tls.yaml"),
        format!(
            "id: tls
name: TLS
environments:
  production: {{label: Production, default: true}}
auth:
  grants: [client_credentials]
  endpoints:
    token: 'https://{}/services/oauth2/token'
  pkce: off
",
            provider.host()
        ),
    )
    .expect("write");
    let registry = Registry::load(dir.path()).expect("loads");
    let connector = connector_with_errors(&registry, "tls");
    let message = connector.client_credentials().await.expect_err("no TLS there").to_string();
    assert!(message.contains(&format!("TLS failed to {}", provider.host())), "{message}");
}
