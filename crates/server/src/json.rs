//! JSON input (request bodies, merge patches): bounded, typed, with a located refusal that
//! never quotes the input (a wrong-typed secret must not come back in an error).

use crate::error::{HubError, ProblemCode, ProblemDiagnostic};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The largest JSON body the API reads.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// The deepest JSON the API reads (serde_json's own limit is 128).
const MAX_DEPTH: usize = 32;

/// The refusal of a body over [`MAX_JSON_BYTES`].
pub fn too_large() -> HubError {
    HubError::new(ProblemCode::BodyTooLarge, format!("request bodies are limited to {MAX_JSON_BYTES} bytes"))
}

fn depth(bytes: &[u8]) -> usize {
    // Counts nesting outside strings: enough to refuse deep input before serde recurses.
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses and types a JSON body.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HubError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(too_large());
    }
    if depth(bytes) > MAX_DEPTH {
        return Err(HubError::new(ProblemCode::MalformedJson, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let malformed = |e: &serde_json::Error| {
        HubError::new(
            ProblemCode::MalformedJson,
            format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()),
        )
    };
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, Strict>(&mut reader) {
        Ok(Strict(value)) => value,
        Err(e) if e.inner().is_data() => {
            // A key given twice: which one, where (never its values).
            let message = e.inner().to_string();
            let key = message.split('`').nth(1).unwrap_or_default();
            let mut pointer = pointer_of(e.path());
            if pointer == "/" {
                pointer.clear();
            }
            pointer.push('/');
            pointer.push_str(&keyway_manifest::escape_pointer_token(key));
            return Err(HubError::invalid_field(&pointer, format!("`{key}` is given twice")));
        }
        Err(e) => return Err(malformed(e.inner())),
    };
    reader.end().map_err(|e| malformed(&e))?;
    from_value(value)
}

/// A JSON value read refusing a key given twice in any object (serde_json keeps the last,
/// so `{"return_url": "javascript:...", "return_url": "https://..."}` would be judged by one
/// value and could be read by another system as the other).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Types a JSON value, pointing at the first field that does not fit.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, HubError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = pointer_of(e.path());
        let message = safe_message(&e.inner().to_string());
        HubError::new(ProblemCode::InvalidRequest, format!("{pointer}: {message}")).with_diagnostics(vec![
            ProblemDiagnostic {
                code: "request".to_owned(),
                severity: "error".to_owned(),
                message,
                fix: None,
                pointer: Some(pointer),
            },
        ])
    })
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&keyway_manifest::escape_pointer_token(key));
            }
            Segment::Unknown => out.push_str("/?"),
        }
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// serde's message without the offending value: "invalid type: string \"s3cret\", expected a
/// boolean" becomes "invalid type: expected a boolean". Field names (unknown or missing) are
/// kept: they are the request's keys, not its values.
fn safe_message(message: &str) -> String {
    for prefix in ["invalid type", "invalid value", "invalid length"] {
        if message.starts_with(prefix) {
            return match message.rsplit_once(", expected ") {
                Some((_, expected)) => format!("{prefix}: expected {expected}"),
                None => prefix.to_owned(),
            };
        }
    }
    if message.starts_with("unknown field")
        || message.starts_with("missing field")
        || message.starts_with("duplicate field")
    {
        return message.to_owned();
    }
    if message.starts_with("unknown variant") {
        return match message.split_once(", expected ") {
            Some((_, expected)) => format!("unknown variant: expected {expected}"),
            None => "unknown variant".to_owned(),
        };
    }
    "the value does not fit the expected type".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        flag: Option<bool>,
        items: Option<Vec<u32>>,
    }

    #[test]
    fn refusals_point_at_the_field_and_never_quote_values() {
        let cases: [(&[u8], &str, &str); 9] = [
            (br#"{"name": "a", "name": "s3cret-value"}"#, "invalid_request", "/name"),
            (br#"{"name": "a", "items": [1], "flag": true, "flag": false}"#, "invalid_request", "/flag"),
            (br#"{"name": "a"} {"name": "b"}"#, "malformed_json", ""),
            (br#"{"name": "a", "flag": "s3cret-value"}"#, "invalid_request", "/flag"),
            (br#"{"name": "a", "items": [1, "s3cret-value"]}"#, "invalid_request", "/items/1"),
            (br#"{"name": "a", "nmae": "x"}"#, "invalid_request", "/nmae"),
            (br#"{"flag": true}"#, "invalid_request", "/"),
            (br#"{"name": "s3cret-value""#, "malformed_json", ""),
            (
                b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
                "malformed_json",
                "",
            ),
        ];
        for (body, code, pointer) in cases {
            let e = from_slice::<Sample>(body).expect_err("refused");
            assert_eq!(e.code().as_str(), code, "{}", String::from_utf8_lossy(body));
            let text = format!("{e} {:?}", e.diagnostics());
            assert!(!text.contains("s3cret"), "{text}");
            if !pointer.is_empty() {
                assert_eq!(e.diagnostics()[0].pointer.as_deref(), Some(pointer), "{text}");
            }
        }
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert_eq!(from_slice::<Sample>(&big).expect_err("too large").code(), ProblemCode::BodyTooLarge);
        let unknown = from_slice::<Sample>(br#"{"name": "a", "nmae": "x"}"#).expect_err("unknown");
        assert!(unknown.detail().contains("unknown field `nmae`"), "{}", unknown.detail());
    }
}
