//! `extends`: override, merge, removal, replacement, placement, cycles, unknown parents.

use keyway_diagnostics::Code;
use keyway_manifest::{Loaded, Loader};
use keyway_tests::{MINIMAL, TempDir, located};

fn load(files: &[(&str, &str)]) -> Loaded {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.add_str(*name, *text);
    }
    loader.load()
}

fn child(loaded: &Loaded) -> &keyway_manifest::model::Profile {
    &loaded.profile("child").unwrap_or_else(|| panic!("child resolves: {:#?}", loaded.diagnostics)).profile
}

#[test]
fn scalars_and_lists_override_maps_merge() {
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nname: Child\nauth:\n  pkce: off\n  default_scopes: [read]\nscopes:\n  admin: {label: Admin}\n",
        ),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let c = child(&loaded);
    assert_eq!(c.name, "Child");
    assert_eq!(c.auth.pkce, Some(keyway_manifest::model::Pkce::Off));
    assert_eq!(c.auth.default_scopes, ["read"], "lists are replaced, not appended");
    assert_eq!(
        c.auth.endpoints.as_ref().map(|e| e.token.as_str()).unwrap_or_default(),
        "https://{{ env.host }}/token",
        "untouched keys are inherited"
    );
    let scopes: Vec<&str> = c.scopes.keys().map(String::as_str).collect();
    assert_eq!(scopes, ["read", "write", "offline", "admin"], "maps merge, new keys last");
    assert_eq!(c.extends.as_deref(), Some("base"));
    let base = &loaded.profile("base").expect("base").profile;
    assert_eq!(base.name, "Base", "the parent is not changed by its child");
}

#[test]
fn null_removes_an_inherited_action_or_field() {
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nactions:\n  delete_thing: null\n  list_things:\n    scopes: [read, offline]\n",
        ),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let c = child(&loaded);
    assert_eq!(c.actions.keys().collect::<Vec<_>>(), ["list_things", "create_thing"]);
    assert_eq!(c.actions["list_things"].scopes, ["read", "offline"]);
    assert_eq!(c.actions["list_things"].name, "List Things", "a merged entry keeps fields it does not mention");
}

#[test]
fn replace_gives_the_child_exactly_its_own_entries() {
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nreplace: [/actions]\nactions:\n  archive_thing: {name: Archive Thing, method: POST, path: /archive, scopes: [write]}\n",
        ),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let c = child(&loaded);
    assert_eq!(c.actions.keys().collect::<Vec<_>>(), ["archive_thing"]);
    assert!(c.replace.is_empty(), "replace is consumed by the merge");
}

#[test]
fn a_new_guide_step_can_be_placed_among_inherited_ones() {
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nguide:\n  sections:\n    create_app:\n      steps:\n        prerequisite: {title: Enable the feature, place: {before: sign_in}}\n        verify: {title: Verify, place: {after: open_console}}\n        sign_in: {title: Sign in to the console}\n",
        ),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let steps = &child(&loaded).guide.as_ref().expect("guide").sections["create_app"].steps;
    assert_eq!(steps.keys().collect::<Vec<_>>(), ["prerequisite", "sign_in", "open_console", "verify", "save"]);
    assert_eq!(steps["sign_in"].title, "Sign in to the console", "an inherited step is replaced field by field");
}

#[test]
fn inheritance_chains_resolve_in_order() {
    let loaded = load(&[
        ("grandchild.yaml", "id: grandchild\nextends: child\nname: Grandchild\n"),
        ("child.yaml", "id: child\nextends: base\nname: Child\nauth: {pkce: optional}\n"),
        ("base.yaml", MINIMAL),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let g = &loaded.profile("grandchild").expect("grandchild");
    assert_eq!(g.profile.name, "Grandchild");
    assert_eq!(g.profile.auth.pkce, Some(keyway_manifest::model::Pkce::Optional));
    assert_eq!(g.chain, [0, 1, 2], "most derived first");
}

#[test]
fn cycles_are_errors_on_every_member() {
    let loaded = load(&[
        ("a.yaml", "id: a\nextends: b\n"),
        ("b.yaml", "id: b\nextends: c\n"),
        ("c.yaml", "id: c\nextends: a\n"),
        ("self.yaml", "id: self\nextends: self\n"),
    ]);
    assert!(loaded.profiles.is_empty());
    let cycles: Vec<_> = loaded.diagnostics.iter().filter(|d| d.code == Code::ExtendsCycle).collect();
    assert_eq!(cycles.len(), 4, "{:#?}", loaded.diagnostics);
    assert!(cycles.iter().any(|d| d.message.contains("a -> b -> c -> a")), "{cycles:#?}");
    assert!(
        cycles.iter().all(|d| d.span.is_some_and(|s| s.line == 2 && s.column == 10)),
        "located at the extends value"
    );
}

#[test]
fn an_unknown_parent_is_an_error_with_a_suggestion() {
    let loaded = load(&[("base.yaml", MINIMAL), ("child.yaml", "id: child\nextends: bsae\n")]);
    assert_eq!(located(&loaded.diagnostics), [(Code::UnknownParent, 2, 10)]);
    assert_eq!(loaded.diagnostics[0].help.as_deref(), Some("did you mean `base`?"));
    assert!(loaded.profile("child").is_none());
}

#[test]
fn a_missing_key_after_merging_points_at_the_file_that_lacks_it() {
    // The child empties `auth.endpoints.token`, which the merged profile then lacks.
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        ("child.yaml", "id: child\nextends: base\nauth:\n  endpoints:\n    token: null\n"),
    ]);
    assert_eq!(loaded.diagnostics.len(), 1, "{:#?}", loaded.diagnostics);
    let d = &loaded.diagnostics[0];
    assert_eq!(
        (d.code, d.file.as_deref(), d.pointer.as_deref()),
        (Code::MissingKey, Some("child.yaml"), Some("/auth/endpoints"))
    );
}

#[test]
fn bad_replace_and_placement_are_reported_in_the_child() {
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nreplace: [/nope]\nguide:\n  sections:\n    create_app:\n      steps:\n        x: {title: X, place: {after: nowhere}}\n",
        ),
    ]);
    assert_eq!(located(&loaded.diagnostics), [(Code::BadReplacePointer, 3, 11), (Code::BadPlacement, 8, 38)]);
    let loaded = load(&[
        ("base.yaml", MINIMAL),
        (
            "child.yaml",
            "id: child\nextends: base\nguide:\n  sections:\n    create_app:\n      steps:\n        x: {title: X, place: {after: nowhere}}\n",
        ),
    ]);
    assert_eq!(located(&loaded.diagnostics), [(Code::BadPlacement, 7, 38)]);
}

#[test]
fn duplicate_profile_ids_are_errors_pointing_at_both() {
    let loaded = load(&[("one.yaml", MINIMAL), ("two.yaml", MINIMAL)]);
    let dup: Vec<_> = loaded.diagnostics.iter().filter(|d| d.code == Code::DuplicateProfileId).collect();
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].file.as_deref(), Some("two.yaml"));
    assert_eq!(dup[0].labels[0].file.as_deref(), Some("one.yaml"));
}

#[test]
fn a_single_file_finds_its_parent_beside_it() {
    let dir = TempDir::new("parent-beside");
    dir.write("base.yaml", MINIMAL);
    let child_path = dir.write("child.yaml", "id: child\nextends: base\nname: Child\n");
    let loaded = keyway_manifest::load_paths(&[child_path]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(child(&loaded).name, "Child");
}

#[test]
fn a_child_of_a_broken_parent_is_not_resolved_but_the_parent_is_reported() {
    let broken = MINIMAL.replace("pkce: required", "pkce: sometimes");
    let loaded = load(&[("base.yaml", &broken), ("child.yaml", "id: child\nextends: base\n")]);
    assert!(loaded.profiles.is_empty());
    assert_eq!(loaded.diagnostics.len(), 1, "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.diagnostics[0].code, Code::InvalidValue);
    assert_eq!(loaded.diagnostics[0].file.as_deref(), Some("base.yaml"));
}
