//! The committed schema is the generated one.

#[test]
fn committed_schemas_are_fresh() {
    for (name, generated) in [
        ("schemas/profile.schema.json", keyway_manifest::profile_schema_json()),
        ("schemas/guide.schema.json", keyway_guide::guide_schema_json()),
        ("schemas/openapi.json", keyway_server::http::openapi()),
    ] {
        let path = keyway_tests::root().join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{name} exists"));
        assert!(committed == generated, "{} is stale: run `cargo xtask schema` and commit the result", path.display());
    }
}

#[test]
fn schema_is_draft_2020_12_and_describes_both_forms() {
    let schema = keyway_manifest::profile_schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["then"]["$ref"], "#/$defs/ProfilePatch");
    assert_eq!(schema["else"]["$ref"], "#/$defs/Profile");
    // Complete profiles require their core; patches require only who they are and extend.
    let required = |def: &str| schema["$defs"][def]["required"].clone();
    assert_eq!(required("ProfilePatch"), serde_json::json!(["id", "extends"]));
    for key in ["id", "name", "environments", "auth"] {
        assert!(required("Profile").as_array().is_some_and(|r| r.iter().any(|k| k == key)), "{key}");
    }
}
