//! What a template's tags hold, read before the engine sees them: minijinja parses and
//! evaluates expressions recursively, so a tag with tens of thousands of operators overflows
//! the stack. This scan is one linear pass with no recursion; it bounds each tag's operators
//! (which bound the depth of the tree the engine builds) and tells which tags transform a
//! parameter rather than insert it as typed.

/// The most operators one tag (`{{ ... }}` or `{% ... %}`) may hold. Real templates use a
/// handful; the engine's own nesting guard (150 levels) covers brackets and blocks, and this
/// bounds the chains it builds without recursion (`a + b + c ...`, `x | f | g ...`).
pub const MAX_TAG_OPERATORS: usize = 200;

/// A tag of a template: what it is, its body between the delimiters (whitespace control
/// marks included), and the line it starts on within the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag<'a> {
    pub(crate) statement: bool,
    pub(crate) body: &'a str,
    pub(crate) line: usize,
}

/// A token of a tag's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    Name(&'a str),
    /// A string literal, quotes included.
    Str(&'a str),
    Number,
    /// Any other character: operators, brackets, `.`, `|`, `,`, whitespace-control `-`.
    Punct(u8),
}

/// Words that are operators in expressions.
const OPERATOR_WORDS: [&str; 7] = ["not", "and", "or", "if", "else", "is", "in"];

/// The tags of `source`, in order; comments are skipped. A tag left open runs to the end.
pub(crate) fn tags(source: &str) -> Vec<Tag<'_>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let (mut at, mut line, mut counted_to) = (0, 1, 0);
    while let Some(open) = memchr::memchr(b'{', &bytes[at..]).map(|i| at + i) {
        let statement = match bytes.get(open + 1) {
            Some(b'{') => false,
            Some(b'%') => true,
            Some(b'#') => {
                let end = find(bytes, open + 2, b"#}").map_or(bytes.len(), |e| e + 2);
                at = end;
                continue;
            }
            _ => {
                at = open + 1;
                continue;
            }
        };
        line += bytecount(&bytes[counted_to..open]);
        counted_to = open;
        let start = open + 2;
        let end = tag_end(bytes, start, if statement { b'%' } else { b'}' });
        out.push(Tag { statement, body: &source[start..end.min(bytes.len())], line });
        at = (end + 2).min(bytes.len());
    }
    out
}

fn bytecount(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&bytes[from..], needle).map(|i| from + i)
}

/// Where a tag's body ends (the index of its closing delimiter, or the end of the text):
/// string literals are skipped, and braces of dictionary literals are balanced, so a `}}`
/// inside either does not end it.
fn tag_end(bytes: &[u8], mut i: usize, close: u8) -> usize {
    let mut braces = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => i = string_end(bytes, i, quote),
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' if close == b'}' && braces == 0 && bytes.get(i + 1) == Some(&b'}') => return i,
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            b'%' if close == b'%' && bytes.get(i + 1) == Some(&b'}') => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the string literal opening at `i`.
fn string_end(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The tokens of a tag's body.
pub(crate) fn tokens(body: &str) -> Vec<Token<'_>> {
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token::Name(&body[start..i]));
        } else if b.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token::Number);
        } else if b == b'\'' || b == b'"' {
            let end = string_end(bytes, i, b).min(bytes.len());
            out.push(Token::Str(&body[i..end]));
            i = end;
        } else {
            // Multi-byte characters are one token per byte: only ever more operators, never fewer.
            out.push(Token::Punct(b));
            i += 1;
        }
    }
    out
}

/// How many operators a tag's tokens hold: every punctuation mark and operator word. The
/// tree the engine builds for a tag is no deeper than this (plus its bracket nesting, which
/// the engine guards).
pub(crate) fn operators(tokens: &[Token<'_>]) -> usize {
    tokens
        .iter()
        .filter(|t| match t {
            Token::Punct(b) => *b != b',',
            Token::Name(word) => OPERATOR_WORDS.contains(word),
            Token::Str(_) | Token::Number => false,
        })
        .count()
}

/// The longest template handed to the engine, in bytes. minijinja keeps lines and columns in
/// 16 bits: past 65,535 of either it overflows (a panic where overflow is checked, a wrong
/// location where not). Guide text and URLs are far shorter.
pub const MAX_TEMPLATE_BYTES: usize = 65_535;

/// Why `source` is too complex or too large to hand to the engine, with the line of the tag
/// (or 1), or `None`.
pub(crate) fn too_complex(source: &str) -> Option<(String, usize)> {
    let operators = tags(source).into_iter().find_map(|tag| {
        let count = operators(&tokens(tag.body));
        (count > MAX_TAG_OPERATORS).then(|| {
            (format!("a tag holds {count} operators; at most {MAX_TAG_OPERATORS} are allowed in one tag"), tag.line)
        })
    });
    operators.or_else(|| {
        (source.len() > MAX_TEMPLATE_BYTES)
            .then(|| (format!("the template is {} bytes; at most {MAX_TEMPLATE_BYTES} are allowed", source.len()), 1))
    })
}

/// The first tag of a URL template that does more with a parameter than insert it as typed
/// (the value its pattern checked), with its line: output tags may only choose among
/// operands ([`selects_verbatim`]); in statements, parameters may only be tested (`if`,
/// `elif`), which outputs nothing of theirs.
pub(crate) fn transformed_parameter(source: &str) -> Option<(String, usize)> {
    for tag in tags(source) {
        let tokens = tokens(tag.body);
        if !tokens.contains(&Token::Name("params")) {
            continue;
        }
        let inner = trim_whitespace_control(&tokens);
        let mut shown: String = tag.body.trim().trim_matches('-').trim().chars().take(80).collect();
        if shown.len() < tag.body.trim().trim_matches('-').trim().len() {
            shown.push_str(" ...");
        }
        if tag.statement {
            if !matches!(inner.first(), Some(Token::Name("if" | "elif"))) {
                return Some((format!("`{{% {shown} %}}` sets or loops over a parameter"), tag.line));
            }
        } else if !selects_verbatim(inner) {
            return Some((format!("`{{{{ {shown} }}}}` transforms a parameter"), tag.line));
        }
    }
    None
}

fn trim_whitespace_control<'t, 'a>(tokens: &'t [Token<'a>]) -> &'t [Token<'a>] {
    let mut inner = tokens;
    if let [Token::Punct(b'-' | b'+'), rest @ ..] = inner {
        inner = rest;
    }
    if let [rest @ .., Token::Punct(b'-' | b'+')] = inner {
        inner = rest;
    }
    inner
}

/// Whether an output tag's expression only chooses among its operands: operands are
/// `params.NAME`, `env.NAME` and literals, joined by `and`, `or`, `not`, `if`/`else`,
/// comparisons, `in` and `is` tests, grouped by parentheses. What such an expression outputs
/// is one operand as it is, or a boolean; never a changed parameter.
fn selects_verbatim(tokens: &[Token<'_>]) -> bool {
    const LITERALS: [&str; 6] = ["true", "false", "none", "True", "False", "None"];
    const CHOOSERS: [&str; 7] = ["and", "or", "not", "if", "else", "in", "is"];
    let mut i = 0;
    // Whether the token before was an operand or a closing parenthesis: a `(` there would be
    // a call, a `.` or `[` an attribute or item of it.
    let mut after_operand = false;
    while i < tokens.len() {
        match tokens[i..] {
            [Token::Name("params" | "env"), Token::Punct(b'.'), Token::Name(_), ..] if !after_operand => {
                i += 3;
                after_operand = true;
            }
            [Token::Str(_) | Token::Number, ..] if !after_operand => {
                i += 1;
                after_operand = true;
            }
            [Token::Name(word), ..] if LITERALS.contains(&word) && !after_operand => {
                i += 1;
                after_operand = true;
            }
            [Token::Name("is"), Token::Name("not"), Token::Name(test), ..]
            | [Token::Name("is"), Token::Name(test), ..]
                if after_operand && !matches!(test, "params" | "env") =>
            {
                // A test (`is defined`, `is none`) gives a boolean.
                i += if tokens[i + 1] == Token::Name("not") { 3 } else { 2 };
            }
            [Token::Name(word), ..] if CHOOSERS.contains(&word) => {
                i += 1;
                after_operand = false;
            }
            [Token::Punct(b'=' | b'!' | b'<' | b'>'), ..] => {
                i += 1;
                after_operand = false;
            }
            [Token::Punct(b'('), ..] if !after_operand => i += 1,
            [Token::Punct(b')'), ..] => {
                i += 1;
                after_operand = true;
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_skip_comments_strings_and_dictionary_braces() {
        let tags = tags("a {# {{ x }} #} {{ 'b }}' ~ {'k': {'j': 1}} }}\n{% if y %}c{% endif %} {{ open");
        let bodies: Vec<(bool, &str, usize)> = tags.iter().map(|t| (t.statement, t.body.trim(), t.line)).collect();
        assert_eq!(
            bodies,
            [(false, "'b }}' ~ {'k': {'j': 1}}", 1), (true, "if y", 2), (true, "endif", 2), (false, "open", 2)]
        );
    }

    #[test]
    fn operators_are_counted_per_tag() {
        let count = |s: &str| tags(s).iter().map(|t| operators(&tokens(t.body))).collect::<Vec<_>>();
        assert_eq!(count("{{ a + b ~ c | lower }}{{ not x and y }}{{ f(a, b) }}"), [3, 2, 2]);
        assert_eq!(count("{{ '+++' }}{{ 1.5 }}"), [0, 1]);
        assert!(too_complex(&format!("{{{{ 1{} }}}}", " + 1".repeat(MAX_TAG_OPERATORS))).is_none());
        let (message, line) =
            too_complex(&format!("x\n{{{{ 1{} }}}}", " + 1".repeat(MAX_TAG_OPERATORS + 1))).expect("too complex");
        assert_eq!(line, 2);
        assert!(message.contains("201 operators"), "{message}");
        // Long enough to overflow the engine's 16-bit columns (a panic where overflow is
        // checked): refused first, whatever it holds.
        for long in [format!("{}{{{{ x }}}}", "{ ".repeat(40_000)), format!("{{{{ x }}}}{}", "a".repeat(70_000))] {
            let (message, _) = too_complex(&long).expect("too large");
            assert!(message.contains("at most 65535"), "{message}");
        }
    }

    #[test]
    fn parameters_may_only_be_inserted_as_typed() {
        for fine in [
            "https://{{ params.host }}/x",
            "https://{{- params.host -}}/x",
            "https://{{ params.host or env.login_host }}/x",
            "https://{{ params.host or 'login.example.com' }}/x",
            "https://{% if params.a and not params.b %}{{ params.a }}{% else %}x{% endif %}.example.com",
            "https://{{ env.host | lower }}/x",
            "https://{{ env.scheme == \"https\" and params.host or env.login_host }}/x",
            "https://{{ (params.host) }}/x",
            "https://{{ params.host if params.host is defined and not (params.host is none) else 'x' }}/x",
            "https://{{ params.host if 'a' in env.id else env.id }}/x",
        ] {
            assert_eq!(transformed_parameter(fine), None, "{fine}");
        }
        for smuggled in [
            "https://{{ params.host | replace('x', '/') }}/",
            "https://{{ params.host ~ '.evil.com' }}/",
            "https://{{ params.host[1:] }}/",
            "https://{{ '%s' | format(params.host) }}/",
            "https://{{ params['host'] }}/",
            "https://{{ params.host.upper() }}/",
            "https://{{ params.host + 'x' }}/",
            "https://{% set h = params.host %}{{ h }}/",
            "https://{% for c in params.host %}{{ c }}{% endfor %}/",
            "https://{{ (params.host)[1:] }}/",
            "https://{{ (params.host).upper() }}/",
            "https://{{ params.host - 1 }}/",
            "https://{{ params.host.x.y }}/",
            "https://{{ params }}/",
            "https://{{ range(params.host) }}/",
        ] {
            assert!(transformed_parameter(smuggled).is_some(), "{smuggled}");
        }
    }
}
