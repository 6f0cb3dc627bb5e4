//! Action path templates (`/sobjects/Case/{id}`): placeholders are whole segments named in
//! snake_case, and no segment can move a request elsewhere. The one parse of a template:
//! validation refuses what it refuses (KW0429), and the runtime matches and fills what it
//! accepts.

/// One segment of an action's path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text the request's segment must equal.
    Literal(String),
    /// `{name}`: any one non-empty segment, filled from an input named so.
    Placeholder(String),
}

/// A template's segments (`/sobjects/Case/{id}` → `sobjects`, `Case`, `{id}`); `None` for a
/// malformed template.
pub fn template_segments(template: &str) -> Option<Vec<Segment>> {
    let rest = template.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                is_placeholder_name(name).then(|| Segment::Placeholder(name.to_owned()))
            } else if segment.is_empty()
                || segment == "."
                || segment == ".."
                || segment.contains(['{', '}', '?', '#', '\\', '%'])
                || segment.chars().any(char::is_control)
            {
                None
            } else {
                Some(Segment::Literal(segment.to_owned()))
            }
        })
        .collect()
}

fn is_placeholder_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why an action's path template is malformed, or `None`.
pub fn action_path_problem(template: &str) -> Option<&'static str> {
    match template_segments(template) {
        Some(_) => None,
        None if !template.starts_with('/') => Some("it must start with `/`"),
        None => Some(
            "placeholders are whole segments named in snake_case (`/items/{id}`), and no segment is empty, `.`, `..`, or holds `?`, `#`, `%` or `\\`",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_templates_are_whole_segment_placeholders() {
        for good in ["/", "/sobjects", "/sobjects/{sobject}/describe", "/sobjects/Case/{id}"] {
            assert_eq!(action_path_problem(good), None, "{good}");
        }
        for bad in ["sobjects", "/a//b", "/a/{Id}", "/a/x{id}", "/a/{id}?q=1", "/a/../b", "/a/%2e"] {
            assert!(action_path_problem(bad).is_some(), "{bad}");
        }
    }
}
