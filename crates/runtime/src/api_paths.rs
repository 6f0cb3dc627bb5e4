//! Where a request to a provider's API goes, decided without trusting the caller: the
//! profile's actions as method and path templates (parsed by the validator's
//! `action_paths`), compiled once per profile
//! ([`ActionMatcher`]: which action a request is); an action's `{name}` placeholders filled
//! from input ([`fill_action_path`]: one whole segment each, never a `/`, `?`, `#` or a dot
//! segment); and a caller's path joined under the API base URL ([`join_under`]: the host,
//! port and base path are the base URL's, whatever the path says).

use keyway_manifest::model::{HttpMethod, Profile};
use std::collections::HashMap;

/// The longest caller path or query accepted, in bytes.
pub const MAX_API_PATH: usize = 8192;

/// Why a path or an input cannot go to the provider. Never quotes more than a short,
/// escaped piece of the caller's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A segment is `.` or `..` (written plainly or percent-encoded).
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    /// A segment is empty (`//`), which some servers read as a new authority.
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    /// A character that changes how a URL is read: a backslash, a control character, or a
    /// `/`, `?` or `#` encoded inside a segment.
    #[error("the path holds {0}, which could change where the request goes")]
    Delimiter(&'static str),
    /// The path is a URL of its own (`https://...`), or its first segment looks like a scheme.
    #[error("the path is a full URL; give a path under the API base URL")]
    FullUrl,
    /// A `%` not followed by two hexadecimal digits, or an encoding that is not UTF-8.
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
    /// Longer than [`MAX_API_PATH`].
    #[error("the path or query is longer than {MAX_API_PATH} bytes")]
    TooLong,
    /// An action's placeholder has no value, or one that is not text or a number.
    #[error("`{0}` is missing or not text or a number")]
    MissingInput(String),
    /// An action input holds a character that cannot be one path segment.
    #[error("`{name}` holds {what}; an input fills one path segment")]
    BadInput {
        /// The input's name.
        name: String,
        /// What it holds.
        what: &'static str,
    },
    /// The joined URL left the base URL (a guard: the checks above make it unreachable).
    #[error("the path leaves the API base URL")]
    LeavesBase,
}

use keyway_validate::action_paths::{Segment, template_segments};

/// A profile's actions compiled for matching requests: by method, each path template's
/// segments. Built once per profile.
#[derive(Debug, Clone, Default)]
pub struct ActionMatcher {
    by_method: HashMap<HttpMethod, Vec<(String, Vec<Segment>)>>,
}

impl ActionMatcher {
    /// Compiles `profile`'s actions. Actions whose template is malformed (refused by
    /// validation) match nothing.
    pub fn new(profile: &Profile) -> ActionMatcher {
        let mut by_method: HashMap<HttpMethod, Vec<(String, Vec<Segment>)>> = HashMap::new();
        for (id, action) in &profile.actions {
            if let Some(segments) = template_segments(&action.path) {
                by_method.entry(action.method).or_default().push((id.clone(), segments));
            }
        }
        ActionMatcher { by_method }
    }

    /// The action a request is: its method and its path's decoded segments (relative to the
    /// API base URL) against every template, among `allowed` (`None`: any action). The most
    /// specific match wins (most literal segments), then profile order.
    pub fn matching<'a>(
        &'a self,
        method: HttpMethod,
        segments: &[String],
        allowed: Option<&dyn Fn(&str) -> bool>,
    ) -> Option<&'a str> {
        let candidates = self.by_method.get(&method)?;
        let mut best: Option<(&str, usize)> = None;
        for (id, template) in candidates {
            if allowed.is_some_and(|allowed| !allowed(id)) || template.len() != segments.len() {
                continue;
            }
            let fits = template.iter().zip(segments).all(|(t, s)| match t {
                Segment::Literal(literal) => literal == s,
                Segment::Placeholder(_) => !s.is_empty(),
            });
            if !fits {
                continue;
            }
            let literals = template.iter().filter(|t| matches!(t, Segment::Literal(_))).count();
            if best.is_none_or(|(_, n)| literals > n) {
                best = Some((id, literals));
            }
        }
        best.map(|(id, _)| id)
    }
}

/// Characters an input may not hold, named for the refusal.
fn input_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("nothing");
    }
    if value == "." || value == ".." {
        return Some("a dot segment");
    }
    for (c, what) in [('/', "a `/`"), ('?', "a `?`"), ('#', "a `#`"), ('\\', "a backslash")] {
        if value.contains(c) {
            return Some(what);
        }
    }
    if value.chars().any(char::is_control) {
        return Some("a control character");
    }
    None
}

/// An action's path with its `{name}` placeholders filled from `input`: each value (text or
/// a number) one whole segment, percent-encoded, refused when it holds `/`, `?`, `#`, a
/// backslash, a control character or is a dot segment. Returns the segments (decoded, for
/// [`join_under`]) and the names used.
pub fn fill_action_path(
    template: &str,
    input: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Vec<String>, Vec<String>), PathError> {
    let segments = template_segments(template).ok_or(PathError::Delimiter("a malformed template"))?;
    let mut out = Vec::with_capacity(segments.len());
    let mut used = Vec::new();
    for segment in segments {
        match segment {
            Segment::Literal(literal) => out.push(literal),
            Segment::Placeholder(name) => {
                let value = match input.get(&name) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(PathError::MissingInput(name)),
                };
                if value.len() > MAX_API_PATH {
                    return Err(PathError::TooLong);
                }
                if let Some(what) = input_problem(&value) {
                    return Err(PathError::BadInput { name, what });
                }
                out.push(value);
                used.push(name);
            }
        }
    }
    Ok((out, used))
}

/// A caller's path (`sobjects/Case/500xx`, with or without a leading `/`) as decoded
/// segments, refused when any could take the request elsewhere: dot segments (plain or
/// percent-encoded), empty segments, backslashes, control characters, an encoded `/`, `?` or
/// `#`, a scheme, or malformed encoding.
pub fn caller_segments(path: &str) -> Result<Vec<String>, PathError> {
    if path.len() > MAX_API_PATH {
        return Err(PathError::TooLong);
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.starts_with('/') {
        return Err(PathError::EmptySegment);
    }
    let first = path.split('/').next().unwrap_or_default();
    if first.contains(':')
        && first
            .split(':')
            .next()
            .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    {
        return Err(PathError::FullUrl);
    }
    let raw: Vec<&str> = path.split('/').collect();
    let last = raw.len() - 1;
    let mut out = Vec::with_capacity(raw.len());
    for (i, segment) in raw.into_iter().enumerate() {
        if segment.is_empty() {
            // A trailing slash is a path's own business; `//` anywhere else is not.
            if i == last {
                out.push(String::new());
                continue;
            }
            return Err(PathError::EmptySegment);
        }
        if segment.contains('\\') {
            return Err(PathError::Delimiter("a backslash"));
        }
        let decoded = percent_decode(segment)?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
        if let Some(what) = ['/', '?', '#', '\\'].iter().find(|c| decoded.contains(**c)).map(|c| match c {
            '/' => "an encoded `/`",
            '?' => "an encoded `?`",
            '#' => "an encoded `#`",
            _ => "an encoded backslash",
        }) {
            return Err(PathError::Delimiter(what));
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::Delimiter("a control character"));
        }
        out.push(decoded);
    }
    Ok(out)
}

fn percent_decode(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let text = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
            out.push(u8::from_str_radix(text, 16).map_err(|_| PathError::BadEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::BadEncoding)
}

/// `segments` (decoded) joined under `base` (the API base URL, already held to the URL
/// rules), each percent-encoded as one segment, with `query` (the caller's, re-encoded pair
/// by pair). The result keeps the base's scheme, host, port and path prefix: that is checked,
/// not assumed.
pub fn join_under(base: &url::Url, segments: &[String], query: Option<&str>) -> Result<url::Url, PathError> {
    if query.is_some_and(|q| q.len() > MAX_API_PATH) {
        return Err(PathError::TooLong);
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|()| PathError::LeavesBase)?;
        path.pop_if_empty();
        path.extend(segments);
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let base_path = base.path().trim_end_matches('/');
    let same_origin = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    if !same_origin || !url.path().starts_with(base_path) {
        return Err(PathError::LeavesBase);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> url::Url {
        url::Url::parse("https://acme.my.salesforce.com/services/data/v62.0").expect("base")
    }

    #[test]
    fn hostile_caller_paths_never_leave_the_base() {
        for (path, expected) in [
            ("/../../evil", PathError::DotSegment),
            ("/sobjects/%2e%2e/x", PathError::DotSegment),
            ("/sobjects/%2E%2e", PathError::DotSegment),
            ("//evil.example/x", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a\\..\\b", PathError::Delimiter("a backslash")),
            ("/a%2Fb", PathError::Delimiter("an encoded `/`")),
            ("/a%3Fb", PathError::Delimiter("an encoded `?`")),
            ("/a%23b", PathError::Delimiter("an encoded `#`")),
            ("/a%5Cb", PathError::Delimiter("an encoded backslash")),
            ("/a%0d%0aHost:x", PathError::Delimiter("a control character")),
            ("https://evil.example/x", PathError::FullUrl),
            ("http:evil", PathError::FullUrl),
            ("/a%zz", PathError::BadEncoding),
            ("/a%c3", PathError::BadEncoding),
        ] {
            assert_eq!(caller_segments(path), Err(expected), "{path}");
        }
        assert_eq!(caller_segments(&"a/".repeat(5000)), Err(PathError::TooLong));
        // What passes stays under the base, `@` and `:` included.
        for path in ["/sobjects/Case/500xx", "sobjects/Account", "/user@evil.example/x", "/a/b:c", "/query/", "/"] {
            let segments = caller_segments(path).expect(path);
            let url = join_under(&base(), &segments, Some("q=SELECT Id FROM Case&x=%2F..")).expect(path);
            assert_eq!(url.host_str(), Some("acme.my.salesforce.com"), "{path} -> {url}");
            assert!(url.path().starts_with("/services/data/v62.0"), "{path} -> {url}");
            assert!(url.fragment().is_none());
        }
        let url = join_under(&base(), &caller_segments("/user@evil.example/x").expect("ok"), None).expect("url");
        assert_eq!(url.as_str(), "https://acme.my.salesforce.com/services/data/v62.0/user@evil.example/x");
    }

    #[test]
    fn inputs_fill_one_segment_each_or_are_refused() {
        let template = "/sobjects/Case/{id}/CaseComments";
        let (segments, used) =
            fill_action_path(template, json!({"id": "500xx", "Subject": "s"}).as_object().expect("object"))
                .expect("filled");
        assert_eq!(segments, ["sobjects", "Case", "500xx", "CaseComments"]);
        assert_eq!(used, ["id"]);
        let (segments, _) =
            fill_action_path("/items/{n}", json!({"n": 42}).as_object().expect("object")).expect("number");
        assert_eq!(segments, ["items", "42"]);
        for (value, what) in [
            ("a/b", "a `/`"),
            ("a?b", "a `?`"),
            ("a#b", "a `#`"),
            ("..", "a dot segment"),
            ("", "nothing"),
            ("a\nb", "a control character"),
        ] {
            let err = fill_action_path(template, json!({"id": value}).as_object().expect("object")).expect_err(value);
            assert_eq!(err, PathError::BadInput { name: "id".into(), what }, "{value:?}");
        }
        assert_eq!(fill_action_path(template, &serde_json::Map::new()), Err(PathError::MissingInput("id".into())));
        assert_eq!(
            fill_action_path(template, json!({"id": true}).as_object().expect("object")),
            Err(PathError::MissingInput("id".into()))
        );
        // A value the URL encodes stays inside its segment.
        let (segments, _) =
            fill_action_path(template, json!({"id": "a b%2F"}).as_object().expect("object")).expect("encoded");
        let url = join_under(&base(), &segments, None).expect("url");
        assert_eq!(url.path(), "/services/data/v62.0/sobjects/Case/a%20b%252F/CaseComments");
    }

    #[test]
    fn the_most_specific_selected_action_matches() {
        let text = "id: m\nname: M\nenvironments:\n  production: {label: P, default: true}\nauth:\n  kind: none\nactions:\n  describe: {name: Describe, method: GET, path: '/sobjects/{sobject}/describe', scopes: []}\n  describe_case: {name: Describe Case, method: GET, path: /sobjects/Case/describe, scopes: []}\n  get_case: {name: Get Case, method: GET, path: '/sobjects/Case/{id}', scopes: []}\n  create_case: {name: Create Case, method: POST, path: /sobjects/Case, scopes: []}\n";
        let loaded = keyway_manifest::load_str("m.yaml", text);
        let profile = &loaded.profiles.first().expect("loads").profile;
        let matcher = ActionMatcher::new(profile);
        let seg = |p: &str| caller_segments(p).expect(p);
        assert_eq!(matcher.matching(HttpMethod::Get, &seg("/sobjects/Case/describe"), None), Some("describe_case"));
        assert_eq!(matcher.matching(HttpMethod::Get, &seg("/sobjects/Lead/describe"), None), Some("describe"));
        assert_eq!(matcher.matching(HttpMethod::Get, &seg("/sobjects/Case/500xx"), None), Some("get_case"));
        assert_eq!(matcher.matching(HttpMethod::Post, &seg("/sobjects/Case"), None), Some("create_case"));
        assert_eq!(matcher.matching(HttpMethod::Delete, &seg("/sobjects/Case/500xx"), None), None);
        assert_eq!(matcher.matching(HttpMethod::Get, &seg("/sobjects/Case/500xx/extra"), None), None);
        let only_describe = |id: &str| id == "describe";
        assert_eq!(
            matcher.matching(HttpMethod::Get, &seg("/sobjects/Case/describe"), Some(&only_describe)),
            Some("describe")
        );
        assert_eq!(matcher.matching(HttpMethod::Get, &seg("/sobjects/Case/500xx"), Some(&only_describe)), None);
    }
}
