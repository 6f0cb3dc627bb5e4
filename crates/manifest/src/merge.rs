//! `extends`: how a child profile is laid over its parent.
//!
//! The rules, also in `docs/profiles.md`:
//! 1. The child is a JSON Merge Patch (RFC 7396) over the resolved parent: a mapping merges
//!    key by key, recursively; any other value (string, number, list) replaces the parent's.
//! 2. `null` removes the inherited entry (`actions: {delete_account: null}`); a field set to
//!    `null` inside an entry drops that field.
//! 3. A new key is appended after the inherited ones, unless its value has
//!    `place: {before: ID}` or `place: {after: ID}`, which puts it next to that sibling.
//! 4. Each JSON pointer listed in the child's `replace` takes the child's value outright,
//!    without merging (`replace: [/actions]` gives the child exactly its own actions).
//! 5. `id` and `extends` are always the child's own; `replace` is consumed by the merge.

use crate::yaml::escape_pointer_token;
use keyway_diagnostics::{Code, Diagnostic};
use serde_json::{Map, Value};

/// Merges `child` over `parent` (both documents as JSON values) and returns the result, with
/// any problems (bad `replace` pointers, bad placements) as diagnostics pointing into the child.
pub(crate) fn merge(parent: &Value, child: &Value) -> (Value, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let replace = replace_pointers(parent, child, &mut diagnostics);
    let mut pointer = String::new();
    let mut merged = kept(parent, child, &replace, &mut pointer);
    apply(&mut merged, child, &replace, &mut pointer, &mut diagnostics);
    if let Value::Object(map) = &mut merged {
        map.shift_remove("replace");
    }
    (merged, diagnostics)
}

/// The child's valid `replace` pointers; the rest are reported.
fn replace_pointers(parent: &Value, child: &Value, diagnostics: &mut Vec<Diagnostic>) -> Vec<String> {
    let Some(list) = child.get("replace").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut pointers = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let Some(p) = entry.as_str() else { continue }; // wrong types are the schema's to report
        let at = format!("/replace/{i}");
        if !p.starts_with('/') {
            diagnostics.push(
                Diagnostic::new(Code::BadReplacePointer, format!("`{p}` is not a JSON pointer"))
                    .at_pointer(at)
                    .with_help(format!("write it from the root: `/{}`", p.trim_start_matches(['#', '/']))),
            );
        } else if parent.pointer(p).is_none() {
            diagnostics.push(
                Diagnostic::new(Code::BadReplacePointer, format!("`{p}` is not in the parent profile"))
                    .at_pointer(at)
                    .with_help("`replace` names inherited values; to add a value, just write it"),
            );
        } else {
            pointers.push(p.to_owned());
        }
    }
    pointers
}

/// The part of `parent` that survives `patch`, cloned: what the child removes (`null`) or
/// replaces (a value that is not a mapping, or a `replace` pointer) is left out, as `null`
/// where [`apply`] puts the child's value. Cloning the whole parent and then dropping those
/// parts gives the same result; this skips the work (a child that replaces a large catalogue).
fn kept(parent: &Value, patch: &Value, replace: &[String], pointer: &mut String) -> Value {
    let (Value::Object(parent_map), Value::Object(patch_map)) = (parent, patch) else {
        return Value::Null; // the child's value replaces whatever this was
    };
    if replace.iter().any(|r| r == pointer) {
        return Value::Null;
    }
    // A placement looks for its sibling among the keys present when it is applied, so removals
    // are left to `apply` at a level where something is placed.
    let placing = patch_map.values().any(|v| v.get("place").is_some());
    let mut out = Map::with_capacity(parent_map.len());
    for (key, value) in parent_map {
        let kept_value = match patch_map.get(key) {
            None => value.clone(),
            Some(Value::Null) if !placing => continue,
            Some(patch_value) => {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_pointer_token(key));
                let kept_value = kept(value, patch_value, replace, pointer);
                pointer.truncate(len);
                kept_value
            }
        };
        out.insert(key.clone(), kept_value);
    }
    Value::Object(out)
}

fn apply(
    target: &mut Value,
    patch: &Value,
    replace: &[String],
    pointer: &mut String,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Value::Object(patch_map) = patch else {
        *target = without_nulls(patch);
        return;
    };
    if !target.is_object() || replace.iter().any(|r| r == pointer) {
        *target = without_nulls(patch);
        return;
    }
    let Value::Object(target_map) = target else {
        return;
    };
    // Many removals at one level (a child dropping most of a large catalogue) in one pass
    // instead of one shift per key. Only when nothing at this level is placed, since a
    // placement looks for its sibling among the keys present at that point.
    let removals = patch_map.values().filter(|v| v.is_null()).count();
    let batched = removals > 8 && !patch_map.values().any(|v| v.get("place").is_some());
    if batched {
        target_map.retain(|k, _| !patch_map.get(k).is_some_and(Value::is_null));
    }
    for (key, value) in patch_map {
        if pointer.is_empty() && key == "replace" {
            continue;
        }
        if batched && value.is_null() {
            continue;
        }
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&escape_pointer_token(key));
        if value.is_null() {
            target_map.shift_remove(key);
        } else if value.get("place").is_some() && target_map.contains_key(key) {
            // An inherited entry given a `place` moves there after merging.
            if let Some(mut existing) = target_map.shift_remove(key) {
                apply(&mut existing, value, replace, pointer, diagnostics);
                insert_placed(target_map, key, existing, pointer, diagnostics);
            }
        } else if let Some(existing) = target_map.get_mut(key) {
            apply(existing, value, replace, pointer, diagnostics);
        } else {
            insert_placed(target_map, key, without_nulls(value), pointer, diagnostics);
        }
        pointer.truncate(len);
    }
}

/// Inserts a new entry, honouring its `place` if it has one.
fn insert_placed(
    map: &mut Map<String, Value>,
    key: &str,
    value: Value,
    pointer: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let place = value.get("place").and_then(Value::as_object).and_then(|p| {
        let (how, anchor) = p.iter().next()?;
        Some((how.clone(), anchor.as_str()?.to_owned()))
    });
    let Some((how, anchor)) = place else {
        map.insert(key.to_owned(), value);
        return;
    };
    match map.keys().position(|k| *k == anchor) {
        Some(index) => {
            let at = if how == "after" { index + 1 } else { index };
            map.shift_insert(at, key.to_owned(), value);
        }
        None => {
            let siblings: Vec<&str> = map.keys().map(String::as_str).collect();
            diagnostics.push(
                Diagnostic::new(Code::BadPlacement, format!("`place` names `{anchor}`, which is not a sibling"))
                    .at_pointer(format!("{pointer}/place/{how}"))
                    .with_help(format!("one of: {}", siblings.join(", "))),
            );
            map.insert(key.to_owned(), value);
        }
    }
}

/// A merge patch applied to nothing: the value with every `null` member removed.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(value: &Value, pointer: &str) -> Vec<String> {
        value.pointer(pointer).and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn maps_merge_and_scalars_and_lists_replace() {
        let parent = json!({"id": "p", "auth": {"pkce": "optional", "default_scopes": ["api", "web"]}});
        let child = json!({"id": "c", "extends": "p", "auth": {"default_scopes": ["api"]}});
        let (merged, diags) = merge(&parent, &child);
        assert!(diags.is_empty());
        assert_eq!(merged, json!({"id": "c", "auth": {"pkce": "optional", "default_scopes": ["api"]}, "extends": "p"}));
    }

    #[test]
    fn null_removes_entries_and_fields() {
        let parent = json!({"actions": {"a": {"name": "A", "object": "X"}, "b": {"name": "B"}}});
        let child = json!({"actions": {"b": null, "a": {"object": null}}});
        let (merged, _) = merge(&parent, &child);
        assert_eq!(merged, json!({"actions": {"a": {"name": "A"}}}));
    }

    #[test]
    fn new_entries_append_or_follow_their_place() {
        let parent = json!({"steps": {"one": {}, "two": {}, "three": {}}});
        let child =
            json!({"steps": {"last": {}, "early": {"place": {"after": "one"}}, "first": {"place": {"before": "one"}}}});
        let (merged, diags) = merge(&parent, &child);
        assert!(diags.is_empty());
        assert_eq!(keys(&merged, "/steps"), ["first", "one", "early", "two", "three", "last"]);
    }

    #[test]
    fn an_inherited_entry_with_a_place_moves() {
        let parent = json!({"steps": {"one": {"t": 1}, "two": {}, "three": {}}});
        let child = json!({"steps": {"three": {"place": {"before": "one"}, "t": 3}}});
        let (merged, diags) = merge(&parent, &child);
        assert!(diags.is_empty());
        assert_eq!(keys(&merged, "/steps"), ["three", "one", "two"]);
        assert_eq!(merged["steps"]["three"]["t"], 3);
    }

    #[test]
    fn placement_next_to_an_unknown_sibling_is_reported() {
        let (merged, diags) = merge(&json!({"s": {"a": {}}}), &json!({"s": {"b": {"place": {"after": "zz"}}}}));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, Code::BadPlacement);
        assert_eq!(diags[0].pointer.as_deref(), Some("/s/b/place/after"));
        assert_eq!(keys(&merged, "/s"), ["a", "b"]);
    }

    #[test]
    fn replace_takes_the_childs_value_outright() {
        let parent = json!({"actions": {"a": {}, "b": {}}, "scopes": {"x": {}}});
        let child = json!({"replace": ["/actions"], "actions": {"c": {}}, "scopes": {"y": {}}});
        let (merged, diags) = merge(&parent, &child);
        assert!(diags.is_empty());
        assert_eq!(merged, json!({"actions": {"c": {}}, "scopes": {"x": {}, "y": {}}}));
    }

    /// Merging over the kept part of the parent gives what merging over all of it gives.
    #[test]
    fn skipping_what_the_child_drops_changes_nothing() {
        let parent = json!({
            "id": "p", "replace": ["/x"],
            "scopes": {"a": {"label": "A"}, "b": {"label": "B"}, "c": {"label": "C", "x": 1}},
            "steps": {"one": {}, "two": {}, "three": {}},
            "list": [1, 2], "n": {"m": {"o": 1, "p": 2}}, "s": "text", "k~/": {"v": 1}
        });
        let children = [
            json!({"id": "c", "extends": "p", "replace": ["/scopes"], "scopes": {"z": {"label": "Z"}}}),
            json!({"id": "c", "extends": "p", "scopes": {"a": null, "b": null, "c": {"x": null}, "d": {"label": "D"}}}),
            json!({"id": "c", "extends": "p", "steps": {"one": null, "new": {"place": {"after": "one"}}}}),
            json!({"id": "c", "extends": "p", "steps": {"new": {"place": {"before": "two"}}, "two": null}}),
            json!({"id": "c", "extends": "p", "list": {"a": 1}, "s": {"b": null}, "n": {"m": 3}}),
            json!({"id": "c", "extends": "p", "replace": ["/n/m", "/k~0~1"], "n": {"m": {"q": 1}}, "k~/": {"w": 2}}),
            json!({"id": "c", "extends": "p", "scopes": null, "n": {"m": {"o": null}}}),
        ];
        for child in children {
            let (merged, diags) = merge(&parent, &child);
            let mut by_clone = parent.clone();
            let mut diags_by_clone = Vec::new();
            let replace = replace_pointers(&parent, &child, &mut diags_by_clone);
            apply(&mut by_clone, &child, &replace, &mut String::new(), &mut diags_by_clone);
            if let Value::Object(map) = &mut by_clone {
                map.shift_remove("replace");
            }
            assert_eq!(merged, by_clone, "{child}");
            assert_eq!(diags, diags_by_clone, "{child}");
        }
    }

    #[test]
    fn replace_pointers_must_exist_in_the_parent() {
        let (_, diags) = merge(&json!({"a": {}}), &json!({"replace": ["/b", "a"]}));
        let codes: Vec<_> = diags.iter().map(|d| (d.code, d.pointer.clone())).collect();
        assert_eq!(
            codes,
            [
                (Code::BadReplacePointer, Some("/replace/0".into())),
                (Code::BadReplacePointer, Some("/replace/1".into()))
            ]
        );
    }
}
