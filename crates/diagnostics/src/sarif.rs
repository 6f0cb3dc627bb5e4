//! SARIF 2.1.0 output, so CI systems can annotate pull requests.

use crate::{Code, Diagnostic, Severity};
use serde_json::{Value, json};

/// Renders diagnostics as one SARIF 2.1.0 log with a single run. `version` is the tool's
/// version. File names are written as relative URI references (forward slashes, spaces and
/// other reserved characters percent-encoded).
pub fn render_sarif(diagnostics: &[Diagnostic], version: &str) -> Value {
    let mut rules: Vec<Code> = diagnostics.iter().map(|d| d.code).collect();
    rules.sort_unstable();
    rules.dedup();
    let rule_objects: Vec<Value> = rules
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "shortDescription": { "text": code.summary() },
                "helpUri": format!("https://github.com/keyway/keyway/blob/main/docs/diagnostics.md#{}", code.as_str().to_lowercase()),
                "defaultConfiguration": { "level": level(code.default_severity()) },
            })
        })
        .collect();
    let results: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let mut result = json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": rules.iter().position(|c| *c == d.code).unwrap_or(0),
                "level": level(d.severity),
                "message": { "text": text },
            });
            if let Some(file) = &d.file {
                let mut physical = json!({ "artifactLocation": { "uri": uri(file) } });
                if let Some(span) = d.span {
                    physical["region"] = region(&span);
                }
                let mut location = json!({ "physicalLocation": physical });
                if let Some(pointer) = &d.pointer {
                    location["logicalLocations"] = json!([{ "fullyQualifiedName": pointer, "kind": "member" }]);
                }
                result["locations"] = json!([location]);
                let related: Vec<Value> = d
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        json!({
                            "id": i,
                            "message": { "text": l.message },
                            "physicalLocation": {
                                "artifactLocation": { "uri": uri(l.file.as_deref().unwrap_or(file)) },
                                "region": region(&l.span),
                            },
                        })
                    })
                    .collect();
                if !related.is_empty() {
                    result["relatedLocations"] = Value::Array(related);
                }
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "keyway",
                "version": version,
                "informationUri": "https://github.com/keyway/keyway",
                "rules": rule_objects,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn region(span: &crate::Span) -> Value {
    json!({
        "startLine": span.line,
        "startColumn": span.column,
        "endLine": span.end_line,
        "endColumn": span.end_column.max(if span.end_line == span.line { span.column + 1 } else { 1 }),
        "byteOffset": span.start,
        "byteLength": span.end - span.start,
    })
}

/// A file name as a relative URI reference: forward slashes, and every byte outside the
/// unreserved set and `/` percent-encoded.
fn uri(file: &str) -> String {
    let path = file.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span_of;

    #[test]
    fn results_carry_rule_level_location_and_help() {
        let text = "id: x\nnme: y\n";
        let d = Diagnostic::new(Code::UnknownKey, "unknown key `nme`")
            .in_file("profiles/my profile.yaml")
            .at_pointer("/nme")
            .with_span(span_of(text, 6, 9))
            .with_help("did you mean `name`?");
        let log = render_sarif(&[d], "0.1.0");
        assert_eq!(log["version"], "2.1.0");
        let result = &log["runs"][0]["results"][0];
        assert_eq!(result["ruleId"], "KW0201");
        assert_eq!(result["level"], "error");
        assert_eq!(result["message"]["text"], "unknown key `nme`\nhelp: did you mean `name`?");
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "profiles/my%20profile.yaml");
        assert_eq!(location["region"]["startLine"], 2);
        assert_eq!(location["region"]["startColumn"], 1);
        assert_eq!(location["region"]["endColumn"], 4);
        assert_eq!(log["runs"][0]["tool"]["driver"]["rules"][0]["id"], "KW0201");
    }
}
