//! The registry: loaded once, every diagnostic reported together, reloads that never
//! disturb a registry in use.

use crate::support;

use keyway_runtime::{Registry, SharedRegistry};
use support::TempDir;

fn bundled() -> TempDir {
    let dir = TempDir::new("registry");
    for name in ["salesforce.yaml", "salesforce-service-cloud.yaml"] {
        std::fs::copy(support::workspace_root().join("profiles").join(name), dir.path().join(name)).expect("copy");
    }
    dir
}

#[test]
fn loads_and_shares_the_bundled_profiles() {
    let dir = bundled();
    let registry = Registry::load(dir.path()).expect("loads");
    assert_eq!(registry.ids(), ["salesforce", "salesforce-service-cloud"]);
    let a = registry.get("salesforce-service-cloud").expect("profile");
    let b = registry.get("salesforce-service-cloud").expect("profile");
    assert!(std::sync::Arc::ptr_eq(&a, &b), "shared, not copied");
    assert_eq!(a.actions.len(), 34);
    assert!(registry.get("nope").is_none());
}

#[test]
fn every_error_of_every_file_is_reported_at_once() {
    let dir = bundled();
    std::fs::write(dir.path().join("broken.yaml"), "id: broken\nname: Broken\nauth: {grants: [telepathy]}\n")
        .expect("write");
    std::fs::write(dir.path().join("typo.yaml"), "id: typo\nnmae: Typo\n").expect("write");
    let err = Registry::load(dir.path()).expect_err("errors fail the start");
    let files: std::collections::BTreeSet<_> =
        err.diagnostics.iter().filter_map(|d| d.file.as_deref()).map(|f| f.rsplit('/').next().unwrap_or(f)).collect();
    assert!(files.contains("broken.yaml") && files.contains("typo.yaml"), "{files:?}");
    assert!(err.error_count() >= 2);
    assert!(err.diagnostics.iter().all(|d| d.span.is_some()), "located");
    assert!(err.to_string().contains("error(s)"), "{err}");
}

#[test]
fn warnings_do_not_fail_the_start() {
    let dir = bundled();
    // An unused scope is a warning.
    let text = std::fs::read_to_string(dir.path().join("salesforce.yaml")).expect("read");
    let text = text.replacen("scopes:\n", "scopes:\n  never_used_scope:\n    label: Unused\n", 1);
    std::fs::write(dir.path().join("salesforce.yaml"), text).expect("write");
    let registry = Registry::load(dir.path()).expect("warnings only");
    assert!(!registry.warnings().is_empty());
}

#[test]
fn reload_builds_a_new_registry_and_leaves_the_one_in_use_alone() {
    let dir = bundled();
    let shared = SharedRegistry::new(Registry::load(dir.path()).expect("loads"));
    let in_use = shared.current();
    let profile_in_use = in_use.get("salesforce").expect("profile");

    let text = std::fs::read_to_string(dir.path().join("salesforce.yaml")).expect("read");
    std::fs::write(
        dir.path().join("salesforce.yaml"),
        text.replacen("name: Salesforce CRM", "name: Salesforce CRM 2", 1),
    )
    .expect("write");
    let fresh = shared.reload().expect("reloads");
    assert_eq!(fresh.get("salesforce").expect("profile").name, "Salesforce CRM 2");
    assert_eq!(shared.current().get("salesforce").expect("profile").name, "Salesforce CRM 2");
    // The old registry and the profile taken from it are unchanged.
    assert_eq!(in_use.get("salesforce").expect("profile").name, "Salesforce CRM");
    assert_eq!(profile_in_use.name, "Salesforce CRM");

    // A broken reload changes nothing.
    std::fs::write(dir.path().join("salesforce.yaml"), "id: [").expect("write");
    assert!(shared.reload().is_err());
    assert_eq!(shared.current().get("salesforce").expect("profile").name, "Salesforce CRM 2");
}
