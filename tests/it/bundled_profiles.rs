//! The bundled Salesforce profiles: clean, complete, and faithful to the seed documents.

use keyway_manifest::{Loaded, LoadedProfile, model::HttpMethod};
use keyway_tests::{profiles_dir, seed, shared_dir};

fn load() -> Loaded {
    keyway_validate::validate_paths(&[profiles_dir()])
}

fn profile<'a>(loaded: &'a Loaded, id: &str) -> &'a LoadedProfile {
    loaded.profile(id).unwrap_or_else(|| panic!("profile `{id}` loads; diagnostics: {:#?}", loaded.diagnostics))
}

fn snake_case(name: &str) -> String {
    name.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join("_")
}

/// The fixture's lines; when the shared seed or facts file is at hand (always under CI), the
/// fixture must equal what `extract` reads from it, so the fixture cannot drift from its source.
fn checked_fixture(fixture: &str, source: Option<String>, extract: fn(&str) -> Vec<String>) -> Vec<String> {
    let path = keyway_tests::root().join("tests/fixtures").join(fixture);
    let lines: Vec<String> = std::fs::read_to_string(&path).expect("fixture").lines().map(str::to_owned).collect();
    if let Some(text) = source {
        assert_eq!(lines, extract(&text), "{} no longer matches its source document", path.display());
    }
    lines
}

fn seed_001_actions(text: &str) -> Vec<String> {
    let line = text.lines().find_map(|l| l.strip_prefix("Enables actions:")).expect("seed 001 lists its actions");
    line.split(',').map(|n| n.trim().to_owned()).collect()
}

fn facts_scopes(text: &str) -> Vec<String> {
    let section = text
        .split("## Scopes (value: label)")
        .nth(1)
        .and_then(|s| s.split("Default scopes").next())
        .expect("scopes section");
    section
        .split('·')
        .flat_map(|entry| {
            entry.split(':').next().unwrap_or_default().split([',', '/']).map(str::to_owned).collect::<Vec<_>>()
        })
        .map(|v| v.trim().trim_end_matches('.').to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn bundled_profiles_are_clean() {
    let loaded = load();
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let ids: Vec<&str> = loaded.profiles.iter().map(|p| p.profile.id.as_str()).collect();
    assert!(ids.contains(&"salesforce") && ids.contains(&"salesforce-service-cloud"), "{ids:?}");
}

#[test]
fn every_profile_names_its_schema_for_editors() {
    for entry in std::fs::read_dir(profiles_dir()).expect("profiles dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("readable");
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=../schemas/profile.schema.json"),
            "{}",
            entry.path().display()
        );
    }
}

#[test]
fn service_cloud_has_exactly_the_34_actions_of_seed_001() {
    let source = seed("001", "bundled profiles: tests/fixtures/seed-001-actions.txt lists seed 001's actions");
    let expected = checked_fixture("seed-001-actions.txt", source, seed_001_actions);
    assert_eq!(expected.len(), 34);
    let loaded = load();
    let sc = &profile(&loaded, "salesforce-service-cloud").profile;
    let mut have: Vec<(String, String)> = sc.actions.iter().map(|(id, a)| (id.clone(), a.name.clone())).collect();
    let mut want: Vec<(String, String)> = expected.iter().map(|n| (snake_case(n), n.clone())).collect();
    have.sort();
    want.sort();
    assert_eq!(have, want);
    for id in ["create_case", "list_case_comments", "publish_knowledge_article"] {
        assert!(sc.actions.contains_key(id), "{id}");
    }
    // Spot-check the REST shapes the facts file gives.
    let publish = &sc.actions["publish_knowledge_article"];
    assert_eq!(
        (publish.method, publish.path.as_str()),
        (HttpMethod::Post, "/actions/standard/publishKnowledgeArticles")
    );
    assert_eq!(sc.actions["delete_case"].method, HttpMethod::Delete);
    assert_eq!(sc.actions["update_work_order"].method, HttpMethod::Patch);
    for action in sc.actions.values() {
        assert!(action.scopes.iter().any(|s| s == "api"), "{} needs api", action.name);
    }
}

#[test]
fn salesforce_crm_has_its_own_actions() {
    let loaded = load();
    let crm = &profile(&loaded, "salesforce").profile;
    assert!(crm.actions.len() >= 20, "{} actions", crm.actions.len());
    for id in [
        "list_accounts",
        "create_contact",
        "get_lead",
        "update_opportunity",
        "list_tasks",
        "list_users",
        "run_soql_query",
        "describe_global",
    ] {
        assert!(crm.actions.contains_key(id), "missing {id}");
    }
    let sc = &profile(&loaded, "salesforce-service-cloud").profile;
    assert!(crm.actions.keys().all(|id| !sc.actions.contains_key(id)), "Service Cloud replaces the CRM actions");
}

#[test]
fn every_scope_an_action_names_is_in_the_catalogue() {
    let loaded = load();
    for p in &loaded.profiles {
        for (id, action) in &p.profile.actions {
            for scope in &action.scopes {
                assert!(p.profile.scopes.contains_key(scope), "{}: {id} names unknown scope {scope}", p.profile.id);
            }
        }
        for scope in &p.profile.auth.default_scopes {
            assert!(p.profile.scopes.contains_key(scope), "{}: default scope {scope}", p.profile.id);
        }
    }
}

#[test]
fn the_full_scope_catalogue_of_the_facts_file_is_there_with_labels() {
    let facts =
        shared_dir("bundled profiles: tests/fixtures/facts-scopes.txt lists the facts file's scopes").map(|d| {
            let path = d.join("design/salesforce-facts.md");
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        });
    let expected = checked_fixture("facts-scopes.txt", facts, facts_scopes);
    let loaded = load();
    for id in ["salesforce", "salesforce-service-cloud"] {
        let p = &profile(&loaded, id).profile;
        for value in &expected {
            let scope = p.scopes.get(value).unwrap_or_else(|| panic!("{id} lacks scope {value}"));
            assert!(scope.label.as_deref().is_some_and(|l| !l.trim().is_empty()), "{value} has a label");
        }
        assert_eq!(p.scopes["api"].label.as_deref(), Some("Manage user data via APIs"));
        assert!(p.scopes["refresh_token"].grants_refresh && p.scopes["offline_access"].grants_refresh);
        assert!(p.scopes["full"].implies.iter().any(|s| s == "api"));
        assert!(p.scopes["web"].implies.iter().any(|s| s == "visualforce"));
        assert_eq!(p.auth.default_scopes, ["api", "refresh_token", "offline_access"]);
    }
}

#[test]
fn salesforce_facts_are_encoded() {
    let loaded = load();
    let p = &profile(&loaded, "salesforce").profile;
    assert_eq!(p.environments["production"].vars["login_host"], "login.salesforce.com");
    assert_eq!(p.environments["sandbox"].vars["login_host"], "test.salesforce.com");
    assert!(p.environments["production"].default && !p.environments["sandbox"].default);
    assert!(p.parameters.contains_key("my_domain"));
    assert_eq!(p.limits.approvals_per_user, Some(5));
    assert_eq!(p.limits.app_activation_delay_minutes, Some(10));
    assert_eq!(p.limits.callback_urls_max_chars, Some(2000));
    assert_eq!(p.auth.tokens.assumed_lifetime_seconds, Some(7200));
    assert!(p.auth.tokens.introspect_for_expiry);
    for field in ["instance_url", "id", "issued_at", "signature"] {
        assert!(p.auth.tokens.keep_fields.iter().any(|f| f == field), "{field}");
    }
    let endpoints = p.auth.endpoints.as_ref().expect("salesforce has OAuth endpoints");
    for (template, path) in [
        (endpoints.authorize.as_deref(), "/services/oauth2/authorize"),
        (Some(endpoints.token.as_str()), "/services/oauth2/token"),
        (endpoints.revoke.as_deref(), "/services/oauth2/revoke"),
        (endpoints.introspect.as_deref(), "/services/oauth2/introspect"),
        (endpoints.userinfo.as_deref(), "/services/oauth2/userinfo"),
    ] {
        assert!(template.is_some_and(|t| t.ends_with(path)), "{template:?} ends with {path}");
    }
    let device = p.auth.device.as_ref().expect("device flow");
    assert_eq!(device.poll_grant_type, "device");
    assert_eq!(device.start_params.get("response_type").map(String::as_str), Some("device_code"));
}
