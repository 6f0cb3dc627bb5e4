//! Loading has fast paths and a full path. The fast ones type a complete profile straight from
//! its text, and lay a child's tree over its parent's; the full one reads JSON values, checks
//! them against the schema, merges `extends` and types the result. A fast path may decline
//! anything (the full path then takes it), so loading must give exactly the same profiles and
//! diagnostics whichever paths were taken.
//!
//! Checked by loading each text (with the parents it extends) both ways: every YAML file in the
//! repository's profiles and test corpus and the importer's sample output, each of them
//! rewritten in plain block style, and tens of thousands of
//! variations of those: a line deleted, duplicated, re-indented, followed by a blank or
//! comment-like line, its key renamed, its value replaced by values of other types, or nested
//! one level deeper.

use keyway_manifest::compare_fast_path;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Variations of `text` made by changing line `i`.
fn variations(text: &str, i: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let line = lines[i];
    let indent = line.len() - line.trim_start().len();
    let pad = " ".repeat(indent);
    let content = line.trim_start();
    let with = |new: &[String]| {
        let mut out: Vec<String> = lines[..i].iter().map(|l| (*l).to_owned()).collect();
        out.extend(new.iter().cloned());
        out.extend(lines[i + 1..].iter().map(|l| (*l).to_owned()));
        out.join("\n") + "\n"
    };
    let mut out = vec![
        with(&[]),
        with(&[line.to_owned(), line.to_owned()]),
        with(&[format!("  {line}")]),
        // Blank and comment-like lines are content inside a block scalar.
        with(&[line.to_owned(), String::new()]),
        with(&[line.to_owned(), format!("{pad}# c")]),
    ];
    if indent >= 2 {
        out.push(with(&[line[2..].to_owned()]));
    }
    let (item, entry) = match content.strip_prefix("- ") {
        Some(rest) => ("- ", rest),
        None => ("", content),
    };
    if let Some((key, value)) = entry.split_once(": ") {
        let lead = format!("{pad}{item}");
        let deeper = " ".repeat(lead.len() + 2);
        for other in ["1", "0", "70000", "true", "null", "x", "''", "https://e.example", "/p", "^a$", "- x", "{}"] {
            out.push(with(&[format!("{lead}{key}: {other}")]));
        }
        out.push(with(&[format!("{lead}unknown_key: {value}")]));
        out.push(with(&[format!("{lead}{key}s: {value}")]));
        out.push(with(&[format!("{lead}{key}:"), format!("{deeper}- {value}")]));
        out.push(with(&[format!("{lead}{key}:"), format!("{deeper}text: {value}")]));
        out.push(with(&[format!("{lead}{key}:"), format!("{deeper}before: {value}")]));
    } else if let Some(value) = content.strip_prefix("- ") {
        out.push(with(&[format!("{pad}- text: {value}")]));
        out.push(with(&[format!("{pad}- - {value}")]));
        out.push(with(&[format!("{pad}- 1")]));
        out.push(with(&[format!("{pad}-"), format!("{pad}  - {value}")]));
    } else if let Some(key) = content.strip_suffix(':') {
        out.push(with(&[format!("{pad}{key}: null")]));
        out.push(with(&[format!("{pad}{key}: x")]));
        out.push(with(&[format!("{pad}{key}s:")]));
    }
    out
}

fn files_named(files: &[PathBuf], name: &str) -> bool {
    files.iter().any(|f| f.file_name().is_some_and(|n| n == name))
}

#[test]
fn the_fast_path_gives_what_the_full_path_gives_or_declines() {
    let root = keyway_tests::root();
    let mut files = Vec::new();
    yaml_files(&root.join("profiles"), &mut files);
    yaml_files(&root.join("tests/corpus"), &mut files);
    files.sort();
    let (mut accepted, mut declined, mut disagreements) = (0usize, 0usize, Vec::new());
    // Named texts: the files, the minimal profile, and the importer's generated sample profiles.
    let mut texts: Vec<(String, String)> = vec![("minimal.yaml".to_owned(), keyway_tests::MINIMAL.to_owned())];
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("x.yaml");
        texts.push((name.to_owned(), text));
    }
    // Children of children (the overlay merges a level at a time), with their variations.
    texts.push(("service-cloud-eu.yaml".to_owned(), GRANDCHILD.to_owned()));
    texts.push(("service-cloud-eu-sandbox.yaml".to_owned(), GREAT_GRANDCHILD.to_owned()));
    let sample = std::fs::read_to_string(root.join("crates/import/tests/it/snapshots/it__nango__sample_profiles.snap"))
        .expect("the importer's sample snapshot");
    for part in sample.split("\n=== ").skip(1) {
        let (name, text) = part.split_once('\n').expect("a name line");
        texts.push((name.to_owned(), text.to_owned()));
    }
    // Every profile the texts resolve to (a corpus file extends the minimal profile, as
    // `base`), written out complete in the block style the importer writes (serde_yaml's):
    // the fast reader's subset, named after its id, so the fast path takes it when it types.
    let mut complete: Vec<(String, String)> = Vec::new();
    for (name, text) in &texts {
        let mut loader = keyway_manifest::Loader::new();
        loader.add_str("base.yaml", keyway_tests::MINIMAL).add_str(name.clone(), text.clone());
        for loaded in loader.load().profiles {
            let Some(yaml) = keyway_tests::block_style(&loaded.profile) else { continue };
            let entry = (format!("{}.yaml", loaded.profile.id), yaml);
            if !complete.contains(&entry) {
                complete.push(entry);
            }
        }
    }
    // A text is loaded with the parents its `extends` names, found by file name among the
    // texts (the corpus extends the minimal profile, as `base`).
    let mut by_name: HashMap<String, String> = texts.iter().cloned().collect();
    by_name.insert("base.yaml".to_owned(), keyway_tests::MINIMAL.to_owned());
    let mut check = |name: &str, text: &str| {
        let mut files = vec![(name, text)];
        let mut at = text;
        while let Some(parent) = extends(at).and_then(|p| by_name.get_key_value(&format!("{p}.yaml"))) {
            if files.iter().any(|(n, _)| *n == parent.0) {
                break;
            }
            files.push((parent.0.as_str(), parent.1.as_str()));
            at = parent.1;
        }
        match compare_fast_path(&files) {
            Ok(0) => declined += 1,
            Ok(_) => accepted += 1,
            Err(problem) => disagreements.push(format!("{name}:\n{text}\n{problem}")),
        }
    };
    for (name, text) in texts.iter().chain(&complete) {
        check(name, text);
    }
    // Variations of every complete profile, sample output (children among them) and
    // hand-written profile (block scalars, flow sequences, comments, a child), at a spread of
    // lines: fewer in the large ones, whose lines are much like each other, and in the corpus
    // profiles that extend the minimal profile (`base`), which are much alike.
    // The corpus files are loaded as they are: each is one mistake already.
    let bundled: Vec<PathBuf> = files.iter().filter(|f| f.starts_with(root.join("profiles"))).cloned().collect();
    let samples = texts.iter().filter(|(name, _)| {
        !name.starts_with("minimal") && (!files_named(&files, name) || files_named(&bundled, name))
    });
    for (name, text) in complete.iter().chain(samples) {
        let count = text.lines().count();
        let lines = if count > 300 {
            6
        } else if extends(text) == Some("base") {
            3
        } else {
            30
        };
        for i in (0..count).step_by(count / lines + 1) {
            for variant in variations(text, i) {
                check(name, &variant);
            }
        }
    }
    assert!(disagreements.is_empty(), "{} disagreement(s); the first:\n{}", disagreements.len(), disagreements[0]);
    eprintln!("the fast paths took {accepted} and declined {declined} texts, from {} files", texts.len());
    assert!(accepted > 500 && declined > 5000, "too few cases: {accepted} taken, {declined} declined");
}

/// A child of a child: `salesforce-service-cloud` extends `salesforce`.
const GRANDCHILD: &str = "\
id: service-cloud-eu
extends: salesforce-service-cloud
replace:
- /auth/default_scopes
name: Service Cloud (EU)
categories:
- ticketing
auth:
  default_scopes:
  - api
  pkce: required
scopes:
  chatter_api:
    label: Access Chatter REST API resources
    custom_only: true
docs:
- title: EU setup
  url: https://eu.example.com/setup
";

/// A child of that: four levels.
const GREAT_GRANDCHILD: &str = "\
id: service-cloud-eu-sandbox
extends: service-cloud-eu
name: Service Cloud (EU sandbox)
auth:
  pkce: 'off'
";

/// Loading a chain of three and four profiles takes the fast path for each (the full path
/// agrees, as the test above checks with variations).
#[test]
fn children_of_children_take_the_fast_path() {
    let root = keyway_tests::root();
    let read = |name: &str| std::fs::read_to_string(root.join("profiles").join(name)).expect("a bundled profile");
    let (base, child) = (read("salesforce.yaml"), read("salesforce-service-cloud.yaml"));
    let chain = [
        ("salesforce.yaml", base.as_str()),
        ("salesforce-service-cloud.yaml", child.as_str()),
        ("service-cloud-eu.yaml", GRANDCHILD),
        ("service-cloud-eu-sandbox.yaml", GREAT_GRANDCHILD),
    ];
    assert_eq!(compare_fast_path(&chain[..3]), Ok(3));
    assert_eq!(compare_fast_path(&chain), Ok(4));
}

/// The block-style minimal profile (the fuzz target's parent) is the minimal profile, typed on
/// the fast path; a child and a grandchild of it take the overlay.
#[test]
fn the_block_style_minimal_profile_takes_the_fast_path() {
    let minimal_block = keyway_tests::minimal_block();
    let block = keyway_manifest::load_str("base.yaml", &minimal_block);
    let flow = keyway_manifest::load_str("base.yaml", keyway_tests::MINIMAL);
    assert_eq!(block.diagnostics, []);
    assert_eq!(
        block.profiles.iter().map(|p| &p.profile).collect::<Vec<_>>(),
        flow.profiles.iter().map(|p| &p.profile).collect::<Vec<_>>()
    );
    let base = ("base.yaml", minimal_block.as_str());
    let mid = ("mid.yaml", "id: mid\nextends: base\nname: Mid\n");
    let leaf = ("leaf.yaml", "id: leaf\nextends: mid\nscopes:\n  read: null\n  admin:\n    label: Admin\n");
    assert_eq!(compare_fast_path(&[base]), Ok(1));
    assert_eq!(compare_fast_path(&[mid, base]), Ok(2));
    assert_eq!(compare_fast_path(&[leaf, mid, base]), Ok(3));
}

/// The parent a text's top-level `extends:` names, as written.
fn extends(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("extends:")).map(str::trim)
}
