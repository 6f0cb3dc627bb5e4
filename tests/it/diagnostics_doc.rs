//! `docs/diagnostics.md` documents every code, and its examples are true.

use keyway_diagnostics::Code;
use keyway_tests::{MINIMAL, TempDir, root, split_files};

/// Codes whose cause (an unreadable, non-UTF-8 or huge file) a YAML snippet cannot show;
/// `tests/it/bad_input.rs` and `tests/it/hostile.rs` cover them.
const NOT_EXPRESSIBLE_AS_YAML: [Code; 5] =
    [Code::Io, Code::NotUtf8, Code::TooLarge, Code::TooDeep, Code::ExtendsTooDeep];

struct Entry {
    code: String,
    bad: Option<String>,
    fixed: Option<String>,
}

/// An example is YAML profiles, or (for `KW05xx`) a JSON selection against `base`, or (for
/// `KW06xx`) a JSON connector configuration with a patch of `base`'s `auth`.
fn is_selection(code: &str) -> bool {
    code.starts_with("KW05") || code.starts_with("KW06")
}

fn entries() -> Vec<Entry> {
    let doc = std::fs::read_to_string(root().join("docs/diagnostics.md")).expect("docs/diagnostics.md");
    let mut out = Vec::new();
    for section in doc.split("\n## ").skip(1) {
        let code = section.split(':').next().unwrap_or_default().trim().to_owned();
        if !code.starts_with("KW") {
            continue; // an introduction to a group of codes
        }
        let fence = if is_selection(&code) { "```json\n" } else { "```yaml\n" };
        let block_after = |label: &str| {
            let rest = section.split(&format!("\n{label}:\n")).nth(1)?;
            let body = rest.split(fence).nth(1)?.split("\n```").next()?;
            Some(format!("{body}\n"))
        };
        out.push(Entry { code, bad: block_after("Bad"), fixed: block_after("Fixed") });
    }
    out
}

/// Loads an example (files separated by `# file: NAME`) beside the minimal `base` profile and
/// runs every check; returns the codes reported.
fn codes_of(example: &str) -> Vec<&'static str> {
    let dir = TempDir::new("diagnostics-doc");
    let files = split_files(example, "example.yaml");
    if !files.iter().any(|(name, _)| name == "base.yaml") {
        dir.write("base.yaml", MINIMAL);
    }
    for (name, text) in &files {
        dir.write(name, text);
    }
    let loaded = keyway_validate::validate_paths(&[dir.path()]);
    loaded.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

/// Builds a connector from `{"auth": PATCH, "connector": CONFIG}` over the minimal `base`
/// profile; returns the codes reported.
fn connector_codes_of(example: &str) -> Vec<&'static str> {
    let loaded = keyway_manifest::load_str("base.yaml", MINIMAL);
    let base = &loaded.profile("base").expect("base loads").profile;
    let example: serde_json::Value = serde_json::from_str(example).expect("JSON");
    let mut profile = serde_json::to_value(base).expect("profile as JSON");
    for (key, value) in example["auth"].as_object().expect("an `auth` patch") {
        profile["auth"][key] = value.clone();
    }
    let profile: keyway_manifest::model::Profile = serde_json::from_value(profile).expect("a profile");
    let config: keyway_runtime::ConnectorConfig =
        serde_json::from_value(example["connector"].clone()).expect("a connector configuration");
    let http = keyway_runtime::HttpClient::new(&keyway_runtime::HttpOptions::default()).expect("http");
    match keyway_runtime::Connector::new(std::sync::Arc::new(profile), config, http) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|d| d.code.as_str()).collect(),
    }
}

/// The API-key profile entered credential fields (`{"fields": ...}` examples) are checked
/// against.
const KEYED: &str = r#"id: keyed
name: Keyed
environments:
  production: {label: Production, default: true}
auth:
  kind: api_key
  fields:
    api_key: {label: API key, pattern: '^k-[0-9]{10}$'}
  apply:
    headers: {X-Api-Key: "{{ fields.api_key }}"}
"#;

/// Checks a JSON selection against the minimal `base` profile (or entered credential fields
/// against [`KEYED`]); returns the codes reported.
fn selection_codes_of(example: &str) -> Vec<&'static str> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(example)
        && let Some(serde_json::Value::Object(fields)) = map.get("fields")
    {
        {
            let loaded = keyway_manifest::load_str("keyed.yaml", KEYED);
            let keyed = &loaded.profile("keyed").expect("keyed loads").profile;
            let values: indexmap::IndexMap<String, String> =
                fields.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
            return keyway_validate::credentials::check_fields(keyed, &values)
                .iter()
                .map(|d| d.code.as_str())
                .collect();
        }
    }
    let loaded = keyway_manifest::load_str("base.yaml", MINIMAL);
    let base = &loaded.profile("base").expect("base loads").profile;
    // Guide requests carry what selections do, and the console variant.
    if let Ok(selection) = serde_json::from_str::<keyway_validate::Selection>(example) {
        let (_, diagnostics) = keyway_validate::check_selection(base, &selection);
        return diagnostics.iter().map(|d| d.code.as_str()).collect();
    }
    let request: keyway_guide::GuideRequest = serde_json::from_str(example).expect("a selection or a guide request");
    match keyway_guide::render(base, &request) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.iter().map(|d| d.code.as_str()).collect(),
    }
}

#[test]
fn every_code_is_documented_once_in_order() {
    let documented: Vec<String> = entries().into_iter().map(|e| e.code).collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(documented, codes, "docs/diagnostics.md must have one `## CODE: ...` section per code, in order");
}

#[test]
fn bad_examples_produce_their_code_and_fixed_ones_do_not() {
    for entry in entries() {
        let Some(code) = Code::ALL.iter().find(|c| c.as_str() == entry.code) else { continue };
        if NOT_EXPRESSIBLE_AS_YAML.contains(code) {
            assert!(entry.bad.is_none(), "{}: has an example after all; test it", entry.code);
            continue;
        }
        let bad = entry.bad.unwrap_or_else(|| panic!("{} has no Bad example", entry.code));
        let fixed = entry.fixed.unwrap_or_else(|| panic!("{} has no Fixed example", entry.code));
        let check = if entry.code.starts_with("KW06") {
            connector_codes_of
        } else if is_selection(&entry.code) {
            selection_codes_of
        } else {
            codes_of
        };
        let found = check(&bad);
        assert!(found.contains(&entry.code.as_str()), "{}: the bad example reports {found:?}", entry.code);
        let found = check(&fixed);
        assert!(!found.contains(&entry.code.as_str()), "{}: the fixed example still reports it", entry.code);
    }
}
