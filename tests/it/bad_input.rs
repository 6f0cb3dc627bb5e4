//! Bad input gets a located diagnostic with a stable code; nothing panics or hangs.

use keyway_diagnostics::Code;
use keyway_manifest::load_str;
use keyway_tests::{MINIMAL, TempDir, located};

fn codes(text: &str) -> Vec<(Code, usize, usize)> {
    located(&load_str("test.yaml", text).diagnostics)
}

#[test]
fn unknown_keys_are_named_and_located_with_a_suggestion() {
    let text = MINIMAL.replace("  pkce: required", "  pkce: required\n  scope_separtor: ','");
    let loaded = load_str("test.yaml", &text);
    assert_eq!(located(&loaded.diagnostics), [(Code::UnknownKey, 14, 3)]);
    let d = &loaded.diagnostics[0];
    assert_eq!(d.message, "unknown key `scope_separtor`");
    assert_eq!(d.help.as_deref(), Some("did you mean `scope_separator`?"));
    assert_eq!(d.pointer.as_deref(), Some("/auth/scope_separtor"));
}

#[test]
fn unknown_keys_deep_inside_maps_are_found() {
    let text = MINIMAL.replace("scopes: [write]}", "scopes: [write], metod: POST}");
    let loaded = load_str("test.yaml", &text);
    let d = &loaded.diagnostics[0];
    assert_eq!((d.code, d.pointer.as_deref()), (Code::UnknownKey, Some("/actions/create_thing/metod")));
    assert_eq!(d.help.as_deref(), Some("did you mean `method`?"));
}

#[test]
fn duplicate_keys_are_errors() {
    let text = MINIMAL.replace("  write: {label: Write}", "  write: {label: Write}\n  read: {label: Again}");
    assert_eq!(codes(&text), [(Code::DuplicateKey, 18, 3)]);
}

#[test]
fn wrong_types_and_missing_keys() {
    let text = MINIMAL.replace("grants: [authorization_code, refresh_token]", "grants: authorization_code");
    assert_eq!(codes(&text), [(Code::WrongType, 9, 11)]);
    let text = MINIMAL.replace("name: Base\n", "");
    assert_eq!(codes(&text), [(Code::MissingKey, 1, 1)]);
    let text = MINIMAL.replace("method: GET", "method: FETCH");
    let loaded = load_str("test.yaml", &text);
    assert_eq!(loaded.diagnostics[0].code, Code::InvalidValue);
    assert!(loaded.diagnostics[0].message.contains("`FETCH` is not one of"), "{}", loaded.diagnostics[0].message);
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let text = MINIMAL
        .replace("pkce: required", "pkce: maybe")
        .replace("label: Production", "lable: Production")
        .replace("method: POST", "method: 7");
    let found: Vec<Code> = codes(&text).into_iter().map(|(c, ..)| c).collect();
    // `lable` is both an unknown key and a missing `label`; `7` is a wrong type, reported once.
    assert_eq!(found.len(), 4, "{found:?}");
    for code in [Code::InvalidValue, Code::UnknownKey, Code::MissingKey, Code::WrongType] {
        assert!(found.contains(&code), "{found:?}");
    }
}

#[test]
fn malformed_yaml_and_tabs() {
    // A bracket left open to the end of the file is shown where it opens.
    assert_eq!(codes("id: x\nname: [unclosed\n"), [(Code::YamlSyntax, 2, 7)]);
    let tabbed = load_str("test.yaml", "id: x\nauth:\n\tpkce: off\n");
    assert_eq!(located(&tabbed.diagnostics), [(Code::YamlSyntax, 3, 1)]);
    assert_eq!(tabbed.diagnostics[0].help.as_deref(), Some("YAML indents with spaces, never tabs"));
}

#[test]
fn empty_and_non_mapping_documents() {
    assert_eq!(codes(""), [(Code::NotAMapping, 0, 0)]);
    assert_eq!(codes("- a\n- b\n"), [(Code::NotAMapping, 1, 1)]);
    assert_eq!(codes("just a string"), [(Code::NotAMapping, 1, 1)]);
}

#[test]
fn several_documents_tags_and_complex_keys_are_refused() {
    assert_eq!(codes("id: a\n---\nid: b\n")[0].0, Code::UnsupportedYaml);
    assert_eq!(codes("id: !custom a\n"), [(Code::UnsupportedYaml, 1, 13)]);
    assert_eq!(codes("id: a\n? [x]\n: y\n")[0].0, Code::UnsupportedYaml);
}

#[test]
fn alias_bombs_and_deep_nesting_end_quickly_with_a_diagnostic() {
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    assert_eq!(codes(&bomb)[0].0, Code::UnsupportedYaml);
    let deep = format!("id: x\nname: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(codes(&deep)[0].0, Code::UnsupportedYaml);
    let deep_map =
        format!("id: x\nname:\n{}", (0..5_000).map(|i| format!("{}k:\n", " ".repeat(i + 1))).collect::<String>());
    assert!(!codes(&deep_map).is_empty());
}

#[test]
fn files_that_are_not_utf8_too_large_or_missing() {
    let dir = TempDir::new("bad-files");
    let latin1 = dir.write("latin1.yaml", b"id: x\nname: caf\xe9\n");
    let big = dir.write("big.yaml", vec![b'#'; keyway_manifest::MAX_SOURCE_BYTES + 1]);
    let missing = dir.path().join("missing.yaml");
    let loaded = keyway_manifest::load_paths(&[latin1, big, missing]);
    assert_eq!(located(&loaded.diagnostics), [(Code::NotUtf8, 2, 10), (Code::TooLarge, 0, 0), (Code::Io, 0, 0)]);
}

#[test]
fn an_action_naming_an_unknown_scope_is_located() {
    let text = MINIMAL.replace("scopes: [write]}\n  delete", "scopes: [wirte]}\n  delete");
    let mut loaded = load_str("test.yaml", &text);
    keyway_validate::check_loaded(&mut loaded);
    assert_eq!(located(&loaded.diagnostics), [(Code::UnknownScope, 21, 76)]);
    assert_eq!(loaded.diagnostics[0].help.as_deref(), Some("did you mean `write`?"));
}

#[test]
fn the_id_should_match_the_file_name() {
    let dir = TempDir::new("id-mismatch");
    let path = dir.write("other.yaml", MINIMAL);
    let loaded = keyway_manifest::load_paths(&[path]);
    assert_eq!(located(&loaded.diagnostics), [(Code::IdFileMismatch, 1, 5)]);
    assert!(!loaded.has_errors(), "a warning, not an error");
}

#[test]
fn a_template_that_would_run_forever_runs_out_of_fuel() {
    let text = MINIMAL.replace(
        "token: \"https://{{ env.host }}/token\"",
        "token: \"https://{{ env.host }}/{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"",
    );
    let mut loaded = load_str("test.yaml", &text);
    keyway_validate::check_loaded(&mut loaded);
    assert_eq!(located(&loaded.diagnostics), [(Code::TemplateSyntax, 12, 12)]);
    assert!(loaded.diagnostics[0].message.contains("fuel"), "{}", loaded.diagnostics[0].message);
}
