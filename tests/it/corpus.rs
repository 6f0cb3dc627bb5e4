//! The bad-input corpus: every case yields its expected codes, located, with no panic.
//!
//! - `tests/corpus/profiles/*.yaml`: profiles (several files per case with `# file: NAME`
//!   lines), loaded beside the minimal `base` profile. The first line says what must be
//!   reported: `# expect: KW0201 KW0202`.
//! - `tests/corpus/selections/*.json`: `{"profile": ID, "expect": [CODES], "selection": {...}}`,
//!   a connection's selection checked against `base` or a bundled profile.
//! - Generated here, never committed: a 20 MB file, alias bombs, 10,000-deep nesting,
//!   invalid UTF-8, empty and comment-only files.
//!
//! Each case's diagnostics (code, severity, file:line:column, pointer, message, and the
//! rendered excerpt) are checked by an insta snapshot in `tests/it/snapshots/`.

use keyway_diagnostics::Diagnostic;
use keyway_manifest::{Loaded, Loader};
use keyway_tests::{MINIMAL, TempDir, profiles_dir, snapshot_text, split_files};
use std::path::Path;

fn load_case(text: &str) -> Loaded {
    let files = split_files(text, "case.yaml");
    let mut loader = Loader::new();
    if !files.iter().any(|(name, _)| name == "base.yaml") {
        loader.add_str("base.yaml", MINIMAL);
    }
    for (name, body) in &files {
        loader.add_str(name.clone(), body.clone());
    }
    let mut loaded = loader.load();
    keyway_validate::check_loaded(&mut loaded);
    loaded
}

fn render(loaded: &Loaded) -> String {
    let sources = |name: &str| loaded.source_text(name).map(str::to_owned);
    snapshot_text(&sources, &loaded.diagnostics)
}

fn expected_codes(first_line: &str) -> Vec<String> {
    first_line
        .strip_prefix("# expect:")
        .map(|rest| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn assert_reports(case: &Path, diagnostics: &[Diagnostic], expected: &[String]) {
    assert!(!expected.is_empty(), "{}: say what it must report on its first line (`# expect: KWxxxx`)", case.display());
    let found: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    for code in expected {
        assert!(found.contains(&code.as_str()), "{}: expected {code}, found {found:?}", case.display());
    }
    for d in diagnostics {
        if d.file.as_deref() != Some("base.yaml") {
            continue;
        }
        panic!("{}: the base profile must stay clean, found {d}", case.display());
    }
}

#[test]
fn bad_profiles() {
    insta::glob!("../corpus", "profiles/*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("readable case");
        let loaded = load_case(&text);
        assert_reports(path, &loaded.diagnostics, &expected_codes(text.lines().next().unwrap_or_default()));
        insta::assert_snapshot!(render(&loaded));
    });
}

#[test]
fn bad_selections() {
    let bundled = keyway_validate::validate_paths(&[profiles_dir()]);
    let base = keyway_manifest::load_str("base.yaml", MINIMAL);
    insta::glob!("../corpus", "selections/*.json", |path| {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON");
        let id = case["profile"].as_str().expect("a profile id");
        let profile = match id {
            "base" => base.profile("base"),
            other => bundled.profile(other),
        }
        .unwrap_or_else(|| panic!("{}: no profile {id}", path.display()));
        let selection: keyway_validate::Selection =
            serde_json::from_value(case["selection"].clone()).expect("a selection");
        let (_, diagnostics) = keyway_validate::check_selection(&profile.profile, &selection);
        let expected: Vec<String> = case["expect"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_reports(path, &diagnostics, &expected);
        insta::assert_snapshot!(snapshot_text(&|_| None, &diagnostics));
    });
}

/// Generated cases: too big, too deep or not text, so they are made here rather than committed.
fn generated() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut laughs = String::from("id: lol\nname: lol\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(", ")));
    }
    let mut huge = String::from("id: huge\nname: Huge\ndescription: |\n");
    while huge.len() < 20 * 1024 * 1024 {
        huge.push_str("  this line repeats until the file is twenty megabytes long\n");
    }
    let many_keys: String = std::iter::once("id: wide\nname: Wide\nscopes:\n".to_owned())
        .chain((0..50_000).map(|i| format!("  scope_{i}: {{label: Scope {i}}}\n")))
        .collect();
    vec![
        ("empty", Vec::new(), "KW0103"),
        ("comments_only", b"# nothing here\n# at all\n".to_vec(), "KW0103"),
        ("invalid_utf8", b"id: caf\xc3\n".to_vec(), "KW0002"),
        ("nul_bytes", b"id: a\0b\n".to_vec(), "KW0101"),
        ("billion_laughs", laughs.into_bytes(), "KW0104"),
        (
            "nested_10000_flow",
            format!("id: deep\nname: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            "KW0104",
        ),
        ("nested_10000_block", format!("id: deep\nname:\n  {}x\n", "- ".repeat(10_000)).into_bytes(), "KW0104"),
        ("twenty_megabytes", huge.into_bytes(), "KW0003"),
        ("fifty_thousand_scopes", many_keys.into_bytes(), "KW0202"),
        ("bom_then_tab", b"\xef\xbb\xbfid: x\n\tname: y\n".to_vec(), "KW0101"),
    ]
}

#[test]
fn generated_bad_inputs() {
    let dir = TempDir::new("corpus-generated");
    for (name, bytes, code) in generated() {
        let path = dir.write(&format!("{name}.yaml"), &bytes);
        let mut loaded = keyway_manifest::load_paths(&[&path]);
        keyway_validate::check_loaded(&mut loaded);
        // Paths differ per run; snapshots use the bare file name.
        for d in &mut loaded.diagnostics {
            d.file = Some(format!("{name}.yaml"));
            d.message = d.message.replace(&path.display().to_string(), &format!("{name}.yaml"));
        }
        let found: Vec<&str> = loaded.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert!(found.contains(&code), "{name}: expected {code}, found {found:?}");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let small = (text.len() < 64 * 1024).then_some(text);
        insta::assert_snapshot!(name, snapshot_text(&|_| small.clone(), &loaded.diagnostics));
    }
}
