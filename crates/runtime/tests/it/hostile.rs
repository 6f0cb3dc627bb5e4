//! Hostile input at the runtime: token sets that belong to another connection, parameters
//! that would send a flow to an internal host, and token files that are huge or never end.
//! Each is refused before any request; the test provider counts what reached it.

use crate::support;

use keyway_runtime::{FileTokenStore, FlowError, TokenKind, TokenOrigin, TokenStore};
use keyway_testkit::{Counts, ProviderConfig};
use support::{TempDir, World};

#[tokio::test]
async fn a_token_set_issued_for_another_connection_is_refused_before_any_request() {
    let world = World::start(ProviderConfig::default()).await;
    let connector = world.connector(world.config());
    let tokens = world.authorize(&connector, "ada@example.com").await.expect("tokens");
    let origin = tokens.origin.clone().expect("a fresh set records its origin");
    assert_eq!(origin.profile, "salesforce-local");
    assert_eq!(origin.environment, "local");
    assert_eq!(origin.token_host, world.provider.host());
    // The set as written to a file keeps its origin.
    let text = serde_json::to_string(&tokens).expect("json");
    let read: keyway_runtime::TokenSet = serde_json::from_str(&text).expect("read back");
    assert_eq!(read.origin.as_ref(), Some(&origin));

    let before = world.provider.counts();
    for foreign in [
        TokenOrigin { profile: "salesforce".to_owned(), ..origin.clone() },
        TokenOrigin { environment: "production".to_owned(), ..origin.clone() },
        TokenOrigin { token_host: "login.salesforce.com".to_owned(), ..origin.clone() },
        TokenOrigin { token_host: format!("{}.evil.example", origin.token_host), ..origin.clone() },
        TokenOrigin { profile: String::new(), environment: String::new(), token_host: String::new() },
    ] {
        let mut set = tokens.clone();
        set.origin = Some(foreign.clone());
        let error = connector.refresh(&set).await.expect_err("a foreign set is refused");
        assert!(matches!(error, FlowError::ForeignTokens { .. }), "{error}");
        assert!(error.to_string().contains("nothing was sent"), "{error}");
        assert!(!error.to_string().contains(secrecy::ExposeSecret::expose_secret(&set.access_token)));
        assert!(connector.check_origin(&set).is_err(), "revoke and introspect callers are refused too");
    }
    assert_eq!(world.provider.counts(), before, "no request was made");
    // A set with no recorded origin (written before origins were) is still accepted, and
    // the refreshed set records one.
    let mut legacy = tokens.clone();
    legacy.origin = None;
    let refreshed = connector.refresh(&legacy).await.expect("refreshed");
    assert_eq!(refreshed.origin, Some(origin));
    connector
        .revoke(refreshed.refresh_token.as_ref().expect("refresh token"), TokenKind::Refresh)
        .await
        .expect("revoked");
}

/// A profile like the ones imported from catalogues: the host is whatever the tenant types,
/// held only to a loose pattern. The runtime renders the real value and refuses internal hosts.
const LOOSE: &str = r#"id: loose
name: Loose
environments:
  production: {label: Production, default: true}
parameters:
  domain:
    label: Domain
    required: true
    pattern: ^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$
    example: acme.example.com
auth:
  grants: [authorization_code]
  endpoints:
    authorize: https://{{ params.domain }}/oauth/authorize
    token: https://{{ params.domain }}/oauth/token
  pkce: required
  default_scopes: [read]
scopes:
  read: {label: Read}
"#;

#[tokio::test]
async fn parameters_that_make_an_endpoint_internal_are_refused_at_connection() {
    let world = World::start(ProviderConfig::default()).await;
    let dir = TempDir::new("loose");
    std::fs::write(dir.path().join("loose.yaml"), LOOSE).expect("write");
    let registry = keyway_runtime::Registry::load(dir.path()).unwrap_or_else(|e| panic!("{e}: {:#?}", e.diagnostics));
    let profile = registry.get("loose").expect("loose");
    for internal in [
        "169.254.169.254",
        "10.0.0.7",
        "192.168.1.1",
        "172.31.255.255",
        "100.64.1.1",
        "0.0.0.0",
        "metadata.google.internal",
        "printer.local",
        "metadata",
        "0x0a000001",
    ] {
        let mut config = world.config();
        config.selection.environment = None;
        config.selection.parameters.insert("domain".to_owned(), internal.to_owned());
        let error = keyway_runtime::Connector::new(profile.clone(), config, world.http.clone()).expect_err(internal);
        assert!(error.to_string().contains("unusable URL"), "{internal}: {error}");
    }
    let mut config = world.config();
    config.selection.environment = None;
    config.selection.parameters.insert("domain".to_owned(), "acme.example.com".to_owned());
    keyway_runtime::Connector::new(profile, config, world.http.clone()).expect("a public host is accepted");
    assert_eq!(world.provider.counts(), Counts::default(), "no request was made");
}

#[tokio::test]
async fn token_files_that_are_huge_or_never_end_are_refused() {
    let dir = TempDir::new("token-files");
    let store = FileTokenStore::new(dir.path()).expect("store");
    // The store names files after the connection; find the name by saving once.
    let world = World::start(ProviderConfig::default()).await;
    let tokens = world.connector(world.config()).client_credentials().await.expect("tokens");
    store.save("conn", &tokens).await.expect("save");
    let path = std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.path()).next().expect("a file");
    assert!(store.load("conn").await.expect("load").is_some());
    for size in [keyway_runtime::MAX_TOKEN_SET_BYTES as usize + 1, 8 * 1024 * 1024] {
        std::fs::write(&path, vec![b' '; size]).expect("write");
        let error = store.load("conn").await.expect_err("too large");
        assert!(
            error.to_string().contains(&format!("limit of {} bytes", keyway_runtime::MAX_TOKEN_SET_BYTES)),
            "{error}"
        );
    }
    #[cfg(unix)]
    {
        std::fs::remove_file(&path).expect("remove");
        let status = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo");
        assert!(status.success());
        let error = store.load("conn").await.expect_err("a FIFO is not read");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}

#[tokio::test]
async fn a_registry_whose_profiles_are_shadowed_is_not_loaded_and_no_request_is_made() {
    let world = World::start(ProviderConfig::default()).await;
    let dir = support::profiles_dir(&world.provider.host());
    let local = std::fs::read_to_string(dir.path().join("salesforce-local.yaml")).expect("local");
    for (name, shadow) in [
        (
            "a-first.yaml",
            local.replace(&world.provider.host(), &world.provider.host().replace("127.0.0.1", "localhost")),
        ),
        ("z-last.yaml", local.clone()),
        ("nested-null.yaml", "id: null\nextends: salesforce\n".to_owned()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, shadow).expect("write");
        let error = keyway_runtime::Registry::load(dir.path()).expect_err("a set with a shadow is refused");
        assert!(error.diagnostics.iter().any(|d| d.is_error()), "{name}");
        std::fs::remove_file(path).expect("remove");
    }
    keyway_runtime::Registry::load(dir.path()).expect("the set without shadows loads");
    assert_eq!(world.provider.counts(), Counts::default());
}
