//! The profile JSON Schema: generated from the Rust types, and checked against each file.
//!
//! The schema describes a file *as written*. A profile without `extends` must be complete
//! (`$defs/Profile`); a profile with `extends` is a patch over its parent
//! (`$defs/ProfilePatch`): every key optional, every value may be `null` (which removes the
//! inherited one). The patch definitions are derived from the complete ones here, so the
//! Rust types stay the single source of truth.

use crate::model::Profile;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_stdx::closest;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const PATCH: &str = "Patch";

/// The profile JSON Schema (draft 2020-12), exactly as committed in
/// `schemas/profile.schema.json`.
pub fn profile_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate)
}

/// The schema as pretty-printed JSON with a final newline: the committed file's bytes.
pub fn profile_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(profile_schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn generate() -> Value {
    let root = schemars::schema_for!(Profile).to_value();
    let Value::Object(mut root) = root else {
        return Value::Null;
    };
    let mut defs = match root.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    root.remove("$schema");
    root.remove("title");
    defs.insert("Profile".to_owned(), Value::Object(root));

    let structs: Vec<String> =
        defs.iter().filter(|(_, d)| d.get("properties").is_some()).map(|(k, _)| k.clone()).collect();
    for name in &structs {
        let mut patch = patch_of(&defs[name.as_str()], &structs);
        if name == "Profile" {
            patch["required"] = json!(["id", "extends"]);
            if let Some(desc) = patch.get_mut("description") {
                *desc = json!("A profile that extends another: a patch laid over its parent.");
            }
        }
        defs.insert(format!("{name}{PATCH}"), patch);
    }
    defs.sort_keys();

    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "keyway provider profile",
        "description": "A keyway provider profile. Without `extends` a profile is complete; with it, the file is a patch over its parent (JSON Merge Patch: maps merge, other values replace, null removes).",
        "type": "object",
        "if": { "required": ["extends"] },
        "then": { "$ref": "#/$defs/ProfilePatch" },
        "else": { "$ref": "#/$defs/Profile" },
        "$defs": defs,
    })
}

/// The patch form of a struct definition: nothing required, every property nullable, nested
/// structs (through properties and map values, never list items) in patch form too.
fn patch_of(def: &Value, structs: &[String]) -> Value {
    let mut def = def.clone();
    if let Some(obj) = def.as_object_mut() {
        obj.remove("required");
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            for value in props.values_mut() {
                *value = nullable(patch_position(value, structs));
            }
        }
        if let Some(ap) = obj.get_mut("additionalProperties") {
            if ap.is_object() {
                *ap = nullable(patch_position(ap, structs));
            }
        }
    }
    def
}

/// A schema in a position that merges: refs to structs become refs to their patch form.
fn patch_position(schema: &Value, structs: &[String]) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(Value::String(r)) = obj.get("$ref") {
        if let Some(name) = r.strip_prefix("#/$defs/") {
            if structs.iter().any(|s| s == name) {
                let mut out = obj.clone();
                out.insert("$ref".to_owned(), json!(format!("#/$defs/{name}{PATCH}")));
                return Value::Object(out);
            }
        }
        return schema.clone();
    }
    let mut out = obj.clone();
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = out.get_mut(key) {
            for b in branches.iter_mut() {
                *b = patch_position(b, structs);
            }
        }
    }
    if out.contains_key("properties") || out.contains_key("additionalProperties") {
        return patch_of(&Value::Object(out), structs);
    }
    Value::Object(out)
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(profile_schema())
            // The schema is generated from our own types; a test builds it, so this cannot fail
            // at run time without failing CI first.
            .expect("the generated profile schema compiles")
    })
}

/// Checks one document, as written, against the profile schema. Diagnostics carry pointers,
/// not spans; the caller locates them.
pub(crate) fn check(document: &Value) -> Vec<Diagnostic> {
    let validator = validator();
    if validator.is_valid(document) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for error in validator.iter_errors(document) {
        push_error(&error, document, &mut out);
    }
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    out.dedup();
    // A value of the wrong type also fails its enum or pattern; the type is the news.
    let wrong_type: Vec<Option<String>> =
        out.iter().filter(|d| d.code == Code::WrongType).map(|d| d.pointer.clone()).collect();
    out.retain(|d| d.code != Code::InvalidValue || !wrong_type.contains(&d.pointer));
    out
}

fn push_error(error: &jsonschema::ValidationError<'_>, document: &Value, out: &mut Vec<Diagnostic>) {
    use jsonschema::error::ValidationErrorKind as Kind;
    let pointer = error.instance_path().as_str().to_owned();
    let instance = document.pointer(&pointer).unwrap_or(&Value::Null);
    let is_patch = document.get("extends").is_some();
    match error.kind() {
        Kind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(&pointer, is_patch);
            for key in unexpected {
                let mut d = Diagnostic::new(Code::UnknownKey, format!("unknown key `{key}`"))
                    .at_pointer(format!("{pointer}/{}", crate::yaml::escape_pointer_token(key)));
                d = match closest(key, allowed.iter().map(String::as_str)) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None if !allowed.is_empty() => d.with_help(format!("expected one of: {}", allowed.join(", "))),
                    None => d,
                };
                out.push(d);
            }
        }
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(
                Diagnostic::new(Code::MissingKey, format!("missing required key `{name}`"))
                    .at_pointer(pointer.clone())
                    .with_help(format!("add `{name}:` here")),
            );
        }
        Kind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => {
                    set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or ")
                }
            };
            out.push(
                Diagnostic::new(Code::WrongType, format!("expected {expected}, found {}", json_kind(instance)))
                    .at_pointer(pointer.clone()),
            );
        }
        Kind::Enum { options } => {
            let names: Vec<&str> =
                options.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let found = instance.as_str().map_or_else(|| instance.to_string(), str::to_owned);
            let mut d = Diagnostic::new(Code::InvalidValue, format!("`{found}` is not one of: {}", names.join(", ")))
                .at_pointer(pointer.clone());
            if let Some(best) = closest(&found, names.iter().copied()) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            out.push(d);
        }
        Kind::AnyOf { context } | Kind::OneOfNotValid { context } if is_choice(context) => {
            // An enum whose variants are documented is a `oneOf` of constants.
            let names: Vec<String> = context
                .iter()
                .flatten()
                .filter_map(|e| match e.kind() {
                    Kind::Constant { expected_value } => expected_value.as_str().map(str::to_owned),
                    _ => None,
                })
                .collect();
            let found = instance.as_str().map_or_else(|| instance.to_string(), str::to_owned);
            let mut d = Diagnostic::new(Code::InvalidValue, format!("`{found}` is not one of: {}", names.join(", ")))
                .at_pointer(pointer.clone());
            if let Some(best) = closest(&found, names.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            out.push(d);
        }
        Kind::AnyOf { context } | Kind::OneOfNotValid { context } => {
            // A value that matches no branch: report the branch that got furthest, so a typo
            // inside a nullable struct reads as the typo, not as "not valid under anyOf".
            match best_branch(context) {
                Some(branch) => {
                    for e in branch {
                        push_error(e, document, out);
                    }
                }
                None => out.push(Diagnostic::new(Code::InvalidValue, error.to_string()).at_pointer(pointer.clone())),
            }
        }
        _ => out.push(Diagnostic::new(Code::InvalidValue, error.to_string()).at_pointer(pointer.clone())),
    }
}

/// Among failed `anyOf` branches, the one whose errors are not a plain type mismatch at the
/// value itself (that branch was never the intended one), preferring the fewest errors.
fn best_branch<'a, 'b>(
    context: &'a [Vec<jsonschema::ValidationError<'b>>],
) -> Option<&'a Vec<jsonschema::ValidationError<'b>>> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let shallow_type_miss = |branch: &Vec<jsonschema::ValidationError<'_>>| {
        branch.len() == 1 && matches!(branch[0].kind(), Kind::Type { .. } | Kind::Constant { .. } | Kind::Enum { .. })
    };
    context
        .iter()
        .filter(|b| !b.is_empty() && !shallow_type_miss(b))
        .min_by_key(|b| b.len())
        .or_else(|| context.iter().find(|b| !b.is_empty()))
}

/// True when every branch failed only because the value is not that branch's constant.
fn is_choice(context: &[Vec<jsonschema::ValidationError<'_>>]) -> bool {
    use jsonschema::error::ValidationErrorKind as Kind;
    !context.is_empty()
        && context.iter().all(|b| {
            b.len() == 1 && matches!(b[0].kind(), Kind::Constant { expected_value } if expected_value.is_string())
        })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The schema's checks that typing a complete profile does not make: its `pattern`s. Typing
/// covers everything else the schema says about a complete profile (types, required keys,
/// unknown keys, enums, integer ranges); a test keeps this list equal to the schema's patterns.
pub(crate) fn typed_profile_holds_patterns(profile: &Profile) -> bool {
    is_profile_id(&profile.id)
        && profile.docs.iter().all(|d| d.url.starts_with("https://"))
        && profile.actions.values().all(|a| a.path.starts_with('/'))
        && profile.api.as_ref().and_then(|api| api.verify.as_ref()).is_none_or(|v| v.path.starts_with('/'))
}

/// `^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$`, the schema's pattern for `id`.
fn is_profile_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_lowercase) {
        return false;
    }
    let mut after_separator = false;
    for &c in &bytes[1..] {
        match c {
            b'a'..=b'z' | b'0'..=b'9' => after_separator = false,
            b'-' | b'_' if !after_separator => after_separator = true,
            _ => return false,
        }
    }
    !after_separator
}

/// The keys the schema allows for the object at `pointer`.
pub(crate) fn allowed_keys(pointer: &str, is_patch: bool) -> Vec<String> {
    let schema = profile_schema();
    let root = if is_patch { "#/$defs/ProfilePatch" } else { "#/$defs/Profile" };
    let start = json!({ "$ref": root });
    let mut node = resolve(schema, &start);
    for token in pointer.split('/').skip(1) {
        let Some(next) = child_schema(schema, node, token) else {
            return Vec::new();
        };
        node = next;
    }
    object_schema(schema, node)
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(p) => node = root.pointer(p).unwrap_or(&Value::Null),
            None => break,
        }
    }
    node
}

/// The branch of `node` that describes an object (through refs and nullable wrappers).
fn object_schema<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    let node = resolve(root, node);
    if node.get("properties").is_some() || node.get("additionalProperties").is_some() {
        return Some(node);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            if let Some(found) = branches.iter().find_map(|b| object_schema(root, b)) {
                return Some(found);
            }
        }
    }
    None
}

fn child_schema<'a>(root: &'a Value, node: &'a Value, token: &str) -> Option<&'a Value> {
    let node = resolve(root, node);
    if let Some(obj) = object_schema(root, node) {
        if let Some(p) = obj.get("properties").and_then(|p| p.get(token)) {
            return Some(p);
        }
        if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            return Some(ap);
        }
    }
    let items = |n: &'a Value| n.get("items");
    if let Some(i) = items(node) {
        return Some(i);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            if let Some(found) = branches.iter().find_map(|b| items(resolve(root, b))) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles_and_has_both_forms() {
        let _ = validator();
        let defs = profile_schema()["$defs"].as_object().expect("defs");
        assert!(defs.contains_key("Profile") && defs.contains_key("ProfilePatch"));
        assert!(defs.contains_key("Action") && defs.contains_key("ActionPatch"));
        assert!(defs["ActionPatch"].get("required").is_none());
    }

    #[test]
    fn allowed_keys_follow_refs_and_maps() {
        let keys = allowed_keys("/actions/create_case", false);
        assert!(keys.contains(&"scopes".to_owned()), "{keys:?}");
        let keys = allowed_keys("/guide/sections/x/steps/y", true);
        assert!(keys.contains(&"items".to_owned()), "{keys:?}");
    }

    /// The fast path checks a typed profile against exactly these patterns; a new `pattern` in
    /// the schema must be added to [`typed_profile_holds_patterns`] (and here).
    #[test]
    fn the_fast_path_checks_every_pattern_of_a_complete_profile() {
        fn patterns(node: &Value, at: &str, out: &mut Vec<(String, String)>) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::String(p)) = map.get("pattern") {
                        out.push((at.to_owned(), p.clone()));
                    }
                    for (k, v) in map {
                        patterns(v, &format!("{at}/{k}"), out);
                    }
                }
                Value::Array(items) => {
                    items.iter().enumerate().for_each(|(i, v)| patterns(v, &format!("{at}/{i}"), out))
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        for (name, def) in profile_schema()["$defs"].as_object().expect("defs") {
            if !name.ends_with(PATCH) {
                patterns(def, &format!("/$defs/{name}"), &mut found);
            }
        }
        let expected = [
            ("/$defs/Action/properties/path", "^/"),
            ("/$defs/DocLink/properties/url", "^https://"),
            ("/$defs/Profile/properties/id", "^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"),
            ("/$defs/Verify/properties/path", "^/"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(a, p)| ((*a).to_owned(), (*p).to_owned())).collect();
        assert_eq!(found, expected);
        // Every struct refuses unknown keys, as the schema does.
        for (name, def) in profile_schema()["$defs"].as_object().expect("defs") {
            if def.get("properties").is_some() {
                assert_eq!(def.get("additionalProperties"), Some(&json!(false)), "{name} accepts unknown keys");
            }
        }
    }

    #[test]
    fn profile_ids_follow_the_schema_pattern() {
        let id_schema =
            json!({ "type": "string", "pattern": profile_schema()["$defs"]["Profile"]["properties"]["id"]["pattern"] });
        let validator = jsonschema::validator_for(&id_schema).expect("compiles");
        for id in [
            "a",
            "salesforce",
            "a1",
            "a-b",
            "a_b",
            "a-1-b_c",
            "",
            "A",
            "1a",
            "a-",
            "a--b",
            "a-_b",
            "a.b",
            "é",
            "ab_",
            "-a",
            "a b",
        ] {
            assert_eq!(is_profile_id(id), validator.is_valid(&json!(id)), "{id:?}");
        }
    }
}
