//! Platform-supplied text (the app name) made safe for the Markdown it lands in.

/// Longest app name accepted, in characters.
pub const MAX_APP_NAME_CHARS: usize = 255;

/// Why `name` cannot be an app name, or `None`. Names are one line of text: a line break or
/// another control character would end the Markdown construct it is written into.
pub(crate) fn app_name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Some("is empty".to_owned());
    }
    if chars > MAX_APP_NAME_CHARS {
        return Some(format!("is {chars} characters long; at most {MAX_APP_NAME_CHARS} are accepted"));
    }
    name.chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        .map(|c| format!("contains the control character {}", c.escape_unicode()))
}

/// `text` as Markdown that renders as exactly `text`: every ASCII punctuation character that
/// Markdown (CommonMark, GFM, common extensions) could read as syntax (emphasis, links,
/// code, HTML, entities, escapes, list and heading markers, tables, math) is escaped with a
/// backslash, which CommonMark allows before any ASCII punctuation. Plain words pass
/// unchanged (and unallocated where possible).
pub fn markdown_text(text: &str) -> String {
    const SYNTAX: &[char] = &[
        '\\', '`', '*', '_', '{', '}', '[', ']', '<', '>', '(', ')', '#', '+', '-', '.', '!', '|', '~', '&', '$', '=',
    ];
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if SYNTAX.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A user's value as an error message quotes it: control characters escaped, cut after
/// `max` characters.
pub(crate) fn shown(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect();
    if value.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pulldown-cmark makes of the escaped text is the text itself.
    #[test]
    fn escaped_text_renders_as_itself() {
        for text in ["Acme", "a*b*", "[x](javascript:alert(1))", "<script>", "`code`", "&amp;", "_a_ \\ ~~s~~", "# h"] {
            let mut html = String::new();
            pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(&markdown_text(text)));
            let plain = html.trim().trim_start_matches("<p>").trim_end_matches("</p>").to_owned();
            let expected = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            assert_eq!(plain, expected, "{text}");
        }
    }
}
