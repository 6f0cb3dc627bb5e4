//! Links in guide text: every output (Markdown, HTML, JSON) carries them to a browser, where
//! `javascript:`, `data:` and `file:` targets run code or open local files. A linear scan
//! finds every link target Markdown or HTML would follow; only http(s), `mailto:` and
//! in-page (`#...`) targets are allowed, and a target must say so literally: a template
//! that builds the scheme (`({{ x }})`) could become anything.

/// The link targets in Markdown text: inline links `[t](target)`, reference definitions
/// `[t]: target`, autolinks `<scheme:...>`, and HTML `href`/`src` attributes.
pub(crate) fn targets(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    // Only a target's start decides: each is read to at most this many bytes, so the scan
    // stays linear however many links (or `](`) the text holds.
    const WINDOW: usize = 256;
    let cut = |from: usize| -> &str {
        let mut to = (from + WINDOW).min(text.len());
        while !text.is_char_boundary(to) {
            to -= 1;
        }
        let rest = text[from..to].trim_start_matches([' ', '\t']);
        let rest = rest.strip_prefix('<').unwrap_or(rest);
        if rest.starts_with("{{") {
            return rest.find("}}").map_or(rest, |end| &rest[..end + 2]);
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ')' || c == '>' || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    for (i, _) in text.match_indices("](") {
        out.push(cut(i + 2));
    }
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some(close) = rest.find("]:") {
                out.push(cut(line_start + (line.len() - rest.len()) + close + 2));
            }
        }
        line_start += line.len();
    }
    let mut at = 0;
    while let Some(open) = memchr::memchr(b'<', &bytes[at..]).map(|i| at + i) {
        at = open + 1;
        let rest = &text[open + 1..];
        let scheme_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c))).unwrap_or(rest.len());
        if scheme_end > 0 && rest[..1].chars().all(|c| c.is_ascii_alphabetic()) && rest[scheme_end..].starts_with(':') {
            out.push(cut(open));
        }
    }
    let lower = text.to_ascii_lowercase();
    for attribute in ["href", "src"] {
        for (i, _) in lower.match_indices(attribute) {
            let rest = lower[i + attribute.len()..].trim_start();
            if let Some(value) = rest.strip_prefix('=') {
                let start = text.len() - value.len();
                let value = text[start..].trim_start().trim_start_matches(['"', '\'']);
                out.push(cut(text.len() - value.len()));
            }
        }
    }
    out
}

/// Whether a link target is one a guide may carry.
pub(crate) fn allowed(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["https://", "http://", "mailto:", "#"].iter().any(|prefix| lower.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_link_is_found_and_only_web_links_pass() {
        let text = "See [docs](https://help.example.com/x) and [mail](mailto:a@b.example) and [top](#top).\n\
                    [ref]: javascript:alert(1)\n\
                    Or <data:text/html,x> or <https://ok.example>.\n\
                    <a HREF = \"vbscript:x\">x</a> <img src='file:///etc/passwd'> [t]( <JaVaScRiPt:alert(1)> )\n\
                    [tpl]({{ params.x }}) [rel](relative/path)";
        let found = targets(text);
        let mut refused: Vec<&str> = found.iter().copied().filter(|t| !allowed(t)).collect();
        refused.sort_unstable();
        refused.dedup();
        assert_eq!(
            refused,
            [
                "JaVaScRiPt:alert(1",
                "data:text/html,x",
                "file:///etc/passwd",
                "javascript:alert(1",
                "relative/path",
                "vbscript:x",
                "{{ params.x }}"
            ]
        );
        assert!(found.contains(&"https://help.example.com/x") && found.contains(&"https://ok.example"));
        assert!(targets("a < b and 2<3: fine, [x] (y)").iter().all(|t| allowed(t)), "{:?}", targets("a < b"));
        // Linear: a megabyte of `](` and spaces is scanned in one pass each.
        let hostile = format!("{}{}", "](".repeat(500_000), " ".repeat(1_000_000));
        assert_eq!(targets(&hostile).len(), 500_000);
    }
}
