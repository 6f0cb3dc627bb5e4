//! docs/server.md lists every problem code the server can answer with.

use std::path::Path;

/// Every `"code"` that follows a `StatusCode::...` in the server's source.
fn codes_in_source() -> Vec<String> {
    let mut codes = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let mut rest = text.as_str();
            while let Some(at) = rest.find("StatusCode::") {
                rest = &rest[at + "StatusCode::".len()..];
                let after_name = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
                let Some(after_comma) = after_name.trim_start().strip_prefix(',') else { continue };
                let Some(literal) = after_comma.trim_start().strip_prefix('"') else { continue };
                let code: String = literal.chars().take_while(|c| *c != '"').collect();
                if !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    codes.push(code);
                }
            }
            // Codes given as struct fields.
            for line in text.lines() {
                if let Some(code) = line.trim().strip_prefix("code: \"").and_then(|c| c.split('"').next()) {
                    if code != "request" {
                        codes.push(code.to_owned());
                    }
                }
            }
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn every_problem_code_is_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md")).expect("docs");
    let codes = codes_in_source();
    assert!(codes.len() >= 30, "{codes:?}");
    for code in ["unauthorized", "state_unknown", "issuer_mismatch", "needs_reauth", "invalid_configuration"] {
        assert!(codes.iter().any(|c| c == code), "the scan finds {code}");
    }
    let missing: Vec<&String> = codes.iter().filter(|c| !doc.contains(&format!("| `{c}` |"))).collect();
    assert!(missing.is_empty(), "docs/server.md does not list {missing:?}");
}
