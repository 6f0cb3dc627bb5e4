//! The fast reader: the plain block YAML profiles are written in, read in one pass straight
//! into serde, without a tree in between.
//!
//! It declines ([`Declined`]) anything outside its subset, and anything wrong; the caller then
//! uses serde_yaml, which also words the diagnostics. So it never has to be right about an
//! error, only about the documents it accepts, which must read exactly as serde_yaml reads
//! them (tests compare the two on every YAML file in the repository and on variations).
//!
//! A [`Reader`] is a serde `Deserializer`, so the same pass gives either the JSON value the
//! schema check and `extends` work on (`serde_json::Value::deserialize`), or a typed profile.
//! It is never more lenient than the schema: it gives a struct only from a mapping, an enum
//! only from a string or a one-entry mapping, and refuses duplicate keys wherever they are.

use serde::de::{self, DeserializeSeed, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Deeper documents are left to serde_yaml, which refuses them past its own limit.
const MAX_DEPTH: usize = 64;

/// The indentation of the line that holds a block scalar's body, raw (from the line after its
/// header to the last line that is not blank, with its line break), right after its header. Deeper than any
/// other line, so a body nothing asked for makes the reader decline.
const BODY: usize = usize::MAX;

struct Line<'a> {
    indent: usize,
    content: &'a str,
}

/// A document split into its significant lines, ready to be read once.
pub(crate) struct Reader<'a> {
    lines: Vec<Line<'a>>,
    /// The next line to read.
    at: usize,
}

impl<'a> Reader<'a> {
    /// Splits `text` into lines, or declines a document the reader cannot read.
    pub(crate) fn new(text: &'a str) -> Option<Self> {
        // Only YAML's printable characters (and no tab, CR or BOM); serde_yaml words the rest.
        let printable = |c: char| match c {
            '\n' | ' '..='~' => true,
            '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}' => true,
            c => c >= '\u{10000}',
        };
        if !printable_ascii(text.as_bytes()) && !text.chars().all(printable) {
            return None;
        }
        let mut lines = Vec::with_capacity(text.len() / 24);
        let mut start = 0;
        // Inside a block scalar (`key: >-`): the indentation of its parent, where its body
        // starts and where its last line that is not blank ends. Blank and comment-like lines
        // are content there.
        let mut block: Option<(usize, usize, Option<usize>)> = None;
        let bytes = text.as_bytes();
        while start <= text.len() {
            let end = line_end(bytes, start);
            let raw = &text[start..end];
            start = end + 1;
            let content = skip_spaces(raw);
            let indent = raw.len() - content.len();
            if let Some((parent, from, to)) = &mut block {
                if content.is_empty() || indent > *parent {
                    if !content.is_empty() {
                        // With its line break, if it has one: clipping keeps only that.
                        *to = Some((end + 1).min(text.len()));
                    }
                    continue;
                }
                if let Some(to) = *to {
                    lines.push(Line { indent: BODY, content: &text[*from..to] });
                }
                block = None;
            }
            // One look at the first byte sorts out nearly every line.
            match content.as_bytes().first() {
                None | Some(b'#') => continue,
                Some(b'%') => return None,
                Some(b'-') if content.starts_with("---") => return None,
                Some(b'.') if content.starts_with("...") => return None,
                Some(_) => {}
            }
            let content = trim_spaces_end(content);
            lines.push(Line { indent, content });
            if let Some(parent) = block_parent(indent, content) {
                block = Some((parent, start.min(text.len()), None));
            }
        }
        if let Some((_, from, Some(to))) = block {
            lines.push(Line { indent: BODY, content: &text[from..to] });
        }
        let first = lines.first()?;
        if first.indent != 0 || first.content.starts_with('-') {
            return None;
        }
        Some(Reader { lines, at: 0 })
    }

    /// Whether the top-level mapping has `key` (before reading).
    pub(crate) fn has_top_level_key(&self, key: &str) -> bool {
        self.lines.iter().any(|l| {
            l.indent == 0
                && l.content.starts_with(|c| c == '\'' || c == '"' || key.starts_with(c))
                && entry(l.content).is_some_and(|(k, _)| k == key)
        })
    }

    /// Reads the whole document as a `T`.
    pub(crate) fn read<T: de::Deserialize<'a>>(self) -> Result<T, Declined> {
        self.read_seed(std::marker::PhantomData)
    }

    /// Reads the whole document with `seed`. Strings that need no unescaping are handed out
    /// borrowed from the text.
    pub(crate) fn read_seed<S: DeserializeSeed<'a>>(mut self, seed: S) -> Result<S::Value, Declined> {
        let value = seed.deserialize(Node { reader: &mut self, kind: Kind::Map { indent: 0 }, depth: 0 })?;
        if self.at == self.lines.len() { Ok(value) } else { Err(Declined) }
    }

    /// The lines from the next one on that sit at `indent`, up to the first one shallower: the
    /// keys of a block mapping whose keys sit there.
    fn keys_ahead(&self, indent: usize) -> usize {
        let ahead = self.lines.get(self.at..).unwrap_or_default();
        ahead.iter().take_while(|l| l.indent >= indent).filter(|l| l.indent == indent).count()
    }

    fn next_line(&self) -> Option<&Line<'a>> {
        self.lines.get(self.at)
    }

    /// The kind of a mapping entry's value, `rest` being what follows the key on its line
    /// (which has been read), for a mapping whose keys sit at `indent`.
    fn value_after_key(&mut self, rest: &'a str, indent: usize) -> Result<Kind<'a>, Declined> {
        if rest.is_empty() || rest.starts_with('#') {
            return Ok(match self.next_line() {
                Some(next) if next.indent > indent => Kind::block(next),
                // A sequence may sit at its key's indentation.
                Some(next) if next.indent == indent && is_item(next.content) => Kind::Seq { indent },
                _ => Kind::Scalar(Scalar::Null),
            });
        }
        self.inline(rest, indent)
    }

    /// The value written after a key or a dash, `rest` (which has been read), whose parent
    /// sits at `indent`: a scalar, a block scalar (its body is the next line), a flow
    /// sequence or an empty mapping (`{}`). Nothing deeper may follow.
    fn inline(&mut self, rest: &'a str, indent: usize) -> Result<Kind<'a>, Declined> {
        let kind = if let Some(style) = BlockStyle::of(rest) {
            let body = self.next_line().filter(|l| l.indent == BODY).ok_or(Declined)?.content;
            self.at += 1;
            Kind::Scalar(Scalar::Str(Cow::Owned(style.read(body).ok_or(Declined)?)))
        } else if rest.starts_with('[') {
            Kind::Flow(flow_sequence(rest).ok_or(Declined)?)
        } else if rest == "{}" {
            Kind::EmptyMap
        } else {
            Kind::Scalar(scalar(rest).ok_or(Declined)?)
        };
        if self.next_line().is_some_and(|next| next.indent > indent) {
            return Err(Declined); // a multi-line scalar
        }
        Ok(kind)
    }
}

/// Where a block scalar's parent sits, if `content` (at `indent`) ends with a block scalar
/// header: `key: >-`, `- key: |` or `- >-`. Its body is every following line that is blank
/// or indented deeper. A header that is not one after all (`key: x # see: >-`) leaves a body
/// no value asks for, and the reader declines.
fn block_parent(indent: usize, content: &str) -> Option<usize> {
    // Called on every line: look at the last bytes only.
    let header_len = match content.as_bytes() {
        [.., b' ', b'>' | b'|'] => 1,
        [.., b' ', b'>' | b'|', b'-'] => 2,
        _ => return None,
    };
    let before = &content[..content.len() - header_len];
    // The parent is the key, or the dash of an item that is only the scalar.
    let dashes = before.len() - before.trim_start_matches(['-', ' ']).len();
    if before.ends_with(": ") {
        Some(indent + dashes)
    } else if !before.is_empty() && dashes == before.len() {
        Some(indent + before.trim_end().len() - 1)
    } else {
        None
    }
}

/// The block scalar styles the fast reader reads: literal (`|`) or folded (`>`), with the
/// final line break clipped to one or stripped (`-`). Keep (`+`) and explicit indentation are
/// left to serde_yaml.
#[derive(Clone, Copy)]
struct BlockStyle {
    folded: bool,
    strip: bool,
}

impl BlockStyle {
    fn of(header: &str) -> Option<Self> {
        let (folded, strip) = match header {
            ">" => (true, false),
            ">-" => (true, true),
            "|" => (false, false),
            "|-" => (false, true),
            _ => return None,
        };
        Some(BlockStyle { folded, strip })
    }

    /// The scalar `body` holds (raw lines, the last not blank, with its line break if it has
    /// one). Declines what it
    /// does not read exactly as YAML does: lines indented unevenly in a folded scalar (YAML
    /// keeps their breaks), trailing spaces there, and blank lines holding more spaces than
    /// the indentation (content in a literal scalar).
    fn read(self, body: &str) -> Option<String> {
        let (body, ends_with_break) = match body.strip_suffix('\n') {
            Some(body) => (body, true),
            None => (body, false),
        };
        let first = body.split('\n').find(|line| !skip_spaces(line).is_empty())?;
        let indent = first.len() - skip_spaces(first).len();
        let mut out = String::with_capacity(body.len());
        let mut blank_lines = 0;
        let mut started = false;
        for line in body.split('\n') {
            let content = skip_spaces(line);
            if content.is_empty() {
                if line.len() > indent {
                    return None;
                }
                blank_lines += 1;
                continue;
            }
            let deeper = line.len() - content.len() != indent;
            if line.len() - content.len() < indent || (self.folded && (deeper || line.ends_with(' '))) {
                return None;
            }
            // Each blank line is a line break; so is the end of a line, which folding makes
            // a space unless blank lines follow it.
            let breaks = match (started, self.folded) {
                (false, _) => blank_lines,
                (true, true) if blank_lines == 0 => {
                    out.push(' ');
                    0
                }
                (true, true) => blank_lines,
                (true, false) => blank_lines + 1,
            };
            out.extend(std::iter::repeat_n('\n', breaks));
            started = true;
            blank_lines = 0;
            out.push_str(&line[indent..]);
        }
        if !self.strip && ends_with_break {
            out.push('\n');
        }
        Some(out)
    }
}

/// The inside of a one-line flow sequence of plain words (`[api, refresh_token]`), checked:
/// each item is a plain scalar of letters, digits and `_-./`. Anything else (quotes, nesting,
/// comments, empty items) is left to serde_yaml.
fn flow_sequence(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let word = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    if trim_spaces_end(skip_spaces(inner)).is_empty() {
        return Some("");
    }
    inner
        .split(',')
        .all(|item| {
            let item = trim_spaces_end(skip_spaces(item));
            !item.is_empty() && item.chars().all(word) && scalar(item).is_some()
        })
        .then_some(inner)
}

/// What the node at the reader's position is.
enum Kind<'a> {
    /// A block mapping whose keys sit at `indent`, from the next line.
    Map { indent: usize },
    /// A block sequence whose dashes sit at `indent`, from the next line.
    Seq { indent: usize },
    /// An inline scalar, already read.
    Scalar(Scalar<'a>),
    /// A one-line flow sequence: the checked text between its brackets.
    Flow(&'a str),
    /// `{}`: a scope or section with nothing to say but its key.
    EmptyMap,
}

impl Kind<'_> {
    /// The nested block that starts with `line`.
    fn block(line: &Line<'_>) -> Self {
        if is_item(line.content) { Kind::Seq { indent: line.indent } } else { Kind::Map { indent: line.indent } }
    }
}

/// An inline scalar, typed by YAML's core schema.
#[derive(Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(u64),
    Str(Cow<'a, str>),
}

/// Whether every byte is a newline or printable ASCII. In blocks, without stopping early, so
/// the compiler can check many bytes at once.
fn printable_ascii(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|chunk| chunk.iter().fold(true, |ok, &b| ok & ((b' '..=b'~').contains(&b) | (b == b'\n'))))
}

/// `text` without its leading spaces. Byte by byte: indentation is what every line has, and
/// matching chars would decode UTF-8 for nothing.
fn skip_spaces(text: &str) -> &str {
    &text[text.bytes().take_while(|&b| b == b' ').count()..]
}

/// `text` without its trailing spaces.
fn trim_spaces_end(text: &str) -> &str {
    &text[..text.len() - text.bytes().rev().take_while(|&b| b == b' ').count()]
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Splits `key: rest` (rest may be empty), or `None` if the line is not a mapping entry the
/// fast reader handles.
fn entry(content: &str) -> Option<(Cow<'_, str>, &str)> {
    if content.starts_with(['\'', '"']) {
        let (key, after) = quoted(content)?;
        let rest = after.strip_prefix(':')?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        return Some((key, skip_spaces(rest)));
    }
    // One pass: the first `:` followed by a space or the end of the line ends the key, which
    // may not hold a `#` (that also rules out a ` #` comment).
    let bytes = content.as_bytes();
    let mut from = 0;
    let at = loop {
        let i = find_either(bytes, from, b':', b'#')?;
        if bytes[i] == b'#' {
            return None;
        }
        if bytes.get(i + 1).is_none_or(|&next| next == b' ') {
            break i;
        }
        from = i + 1;
    };
    let key = trim_spaces_end(&content[..at]);
    let rest = skip_spaces(content.get(at + 2..).unwrap_or(""));
    if key.ends_with(':') || !plain_start(key) {
        return None;
    }
    Some((Cow::Borrowed(key), rest))
}

/// An inline scalar value.
fn scalar(text: &str) -> Option<Scalar<'_>> {
    if text.is_empty() {
        return None;
    }
    if text.starts_with(['\'', '"']) {
        let (value, after) = quoted(text)?;
        let rest = skip_spaces(after);
        let ends = rest.is_empty() || (rest.starts_with('#') && after.starts_with(' '));
        return ends.then_some(Scalar::Str(value));
    }
    // A comment ends a plain scalar; a `: ` before it (or a final `:`) makes it a mapping.
    let (comment, colon) = markers(text);
    let text = match comment {
        Some(at) => trim_spaces_end(&text[..at]),
        None => text,
    };
    if text.ends_with(':') || colon.is_some_and(|at| at < text.len()) {
        return None;
    }
    // Most values start with a letter: a string unless it is one of the words (no number
    // starts with a letter), which `plain_start` would also find.
    if text.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return Some(match text {
            "null" | "Null" | "NULL" => Scalar::Null,
            "true" | "True" | "TRUE" => Scalar::Bool(true),
            "false" | "False" | "FALSE" => Scalar::Bool(false),
            _ => Scalar::Str(Cow::Borrowed(text)),
        });
    }
    match text {
        "~" | "null" | "Null" | "NULL" => return Some(Scalar::Null),
        "true" | "True" | "TRUE" => return Some(Scalar::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Scalar::Bool(false)),
        _ => {}
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text.len() == 1 || !text.starts_with('0')) {
        return text.parse::<u64>().ok().map(Scalar::Int);
    }
    plain_start(text).then_some(Scalar::Str(Cow::Borrowed(text)))
}

/// Whether a plain scalar with no ` #` and no `: ` in it reads as a string whatever its
/// content: it starts with a letter (or a character that cannot start a number, null, boolean
/// or indicator) and is not one of the null and boolean words.
fn plain_start(text: &str) -> bool {
    let Some(first) = text.chars().next() else { return false };
    // A digit or dot starts a number unless a character no number has follows, or a sign
    // sits where no number has one (not first, not after the exponent's `e`); hex, octal and
    // binary prefixes aside. `9a8b-...`, `.default` and `0000-00-00` are strings; `.5`,
    // `1e5`, `1e-5`, `0x1f` and `.inf` are left to serde_yaml.
    let not_a_number = || {
        let bytes = text.as_bytes();
        let prefixed = bytes.len() > 1 && bytes[0] == b'0' && b"xXoObB".contains(&bytes[1]);
        let special = |word: &[u8]| bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(word);
        let misplaced_sign = bytes.windows(2).any(|w| matches!(w[1], b'+' | b'-') && !matches!(w[0], b'e' | b'E'));
        !prefixed
            && (misplaced_sign || !bytes.iter().all(|b| b.is_ascii_digit() || b".eE+-_".contains(b)))
            && !special(b".inf")
            && !special(b".nan")
    };
    // A `+` starts a number (or `+.inf`) only if a digit or a dot follows somewhere.
    let signed_word = || !text.bytes().any(|b| b.is_ascii_digit() || b == b'.');
    let safe_start = first.is_ascii_alphabetic()
        || "/^($<=_\\;()".contains(first)
        || !first.is_ascii()
        || ((first.is_ascii_digit() || first == '.') && not_a_number())
        || (first == '+' && signed_word());
    safe_start && !matches!(text, "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE")
}

/// The offsets of the first ` #` and the first `: ` in `text`, in one pass over its `#`s and
/// `:`s (rarer than spaces in the long texts this scans).
fn markers(text: &str) -> (Option<usize>, Option<usize>) {
    let bytes = text.as_bytes();
    let (mut comment, mut colon) = (None, None);
    let mut from = 0;
    while let Some(i) = find_either(bytes, from, b'#', b':') {
        from = i + 1;
        match bytes[i] {
            b'#' if comment.is_none() && i > 0 && bytes[i - 1] == b' ' => comment = Some(i - 1),
            b':' if colon.is_none() && bytes.get(i + 1) == Some(&b' ') => colon = Some(i),
            _ => continue,
        }
        if comment.is_some() && colon.is_some() {
            break;
        }
    }
    (comment, colon)
}

/// Where the line that starts at `from` ends: its line break, or the end of the text.
fn line_end(bytes: &[u8], from: usize) -> usize {
    find_in_words(bytes, from, b'\n', b'\n').unwrap_or(bytes.len())
}

/// The offset of the first `a` or `b` in `bytes` from `from` on. Keys and values are mostly
/// short, where setting up a vectorised search costs more than it saves: memchr only for long
/// texts.
fn find_either(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    let rest = bytes.get(from..)?;
    if rest.len() > 64 {
        return memchr::memchr2(a, b, rest).map(|i| from + i);
    }
    find_in_words(bytes, from, a, b)
}

/// The offset of the first `a` or `b` from `from` on, eight bytes at a time in a `u64`: a
/// zero-byte test on `word ^ a` and `word ^ b`, whose lowest flag is always right (a false flag
/// only sits above a zero byte).
fn find_in_words(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let (a8, b8) = (ONES * u64::from(a), ONES * u64::from(b));
    let mut chunks = bytes.get(from..)?.chunks_exact(8);
    let mut at = from;
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let hits = zero_bytes(word ^ a8) | zero_bytes(word ^ b8);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == a || c == b).map(|i| at + i)
}

/// A single-line quoted scalar at the start of `text`, and what follows it. Double-quoted
/// scalars with escapes are left to serde_yaml.
fn quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let quote = text.chars().next()?;
    let body = &text[1..];
    if quote == '"' {
        let end = body.find(['"', '\\'])?;
        if body.as_bytes()[end] == b'\\' {
            return None;
        }
        return Some((Cow::Borrowed(&body[..end]), &body[end + 1..]));
    }
    let end = body.find('\'')?;
    if !body[end + 1..].starts_with('\'') {
        return Some((Cow::Borrowed(&body[..end]), &body[end + 1..]));
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let end = rest.find('\'')?;
        out.push_str(&rest[..end]);
        if rest[end + 1..].starts_with('\'') {
            out.push('\'');
            rest = &rest[end + 2..];
        } else {
            return Some((Cow::Owned(out), &rest[end + 1..]));
        }
    }
}

/// Reading or typing on the fast path failed. Never shown: the document then takes the full path, which
/// finds the problem and words it.
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("declined by the fast path")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Declined
    }
}

/// The node at the reader's position, as serde sees it.
struct Node<'r, 'a> {
    reader: &'r mut Reader<'a>,
    kind: Kind<'a>,
    depth: usize,
}

impl<'r, 'a> Node<'r, 'a> {
    fn map(self, duplicates_checked_by_visitor: bool) -> Result<Entries<'r, 'a>, Declined> {
        match self.kind {
            Kind::Map { indent } if self.depth <= MAX_DEPTH => {
                // Maps (not structs) are sized up front: a look at the indentation of the
                // lines ahead is cheaper than growing a large catalogue step by step.
                let (keys, size) = if duplicates_checked_by_visitor {
                    (None, None)
                } else {
                    let size = self.reader.keys_ahead(indent);
                    (Some(Vec::with_capacity(size)), Some(size))
                };
                Ok(Entries { reader: self.reader, indent, depth: self.depth, value: None, keys, size, done: false })
            }
            _ => Err(Declined),
        }
    }

    fn seq(self) -> Result<Items<'r, 'a>, Declined> {
        match self.kind {
            Kind::Seq { indent } if self.depth <= MAX_DEPTH => {
                Ok(Items { reader: self.reader, indent, depth: self.depth, done: false })
            }
            _ => Err(Declined),
        }
    }

    fn visit_map<V: Visitor<'a>>(self, visitor: V, checked: bool) -> Result<V::Value, Declined> {
        if let Kind::EmptyMap = self.kind {
            return visitor.visit_map(de::value::MapDeserializer::<_, Declined>::new(std::iter::empty::<((), ())>()));
        }
        let mut entries = self.map(checked)?;
        let value = visitor.visit_map(&mut entries)?;
        if entries.done { Ok(value) } else { Err(Declined) }
    }
}

impl<'a> de::Deserializer<'a> for Node<'_, 'a> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.kind {
            Kind::Map { .. } | Kind::EmptyMap => self.visit_map(visitor, false),
            Kind::Seq { .. } => {
                let mut items = self.seq()?;
                let value = visitor.visit_seq(&mut items)?;
                if items.done { Ok(value) } else { Err(Declined) }
            }
            Kind::Scalar(scalar) => scalar.visit(visitor),
            Kind::Flow(inner) => {
                let depth = self.depth + 1;
                visitor.visit_seq(FlowItems { reader: self.reader, items: inner.split(','), depth })
            }
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.kind {
            Kind::Scalar(Scalar::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // serde's derived struct visitors also accept a sequence (fields by position), which the
    // schema does not: only a mapping is a struct here. They refuse duplicate fields
    // themselves.
    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        self.visit_map(visitor, true)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self.kind {
            Kind::Scalar(Scalar::Str(s)) => visitor.visit_enum(de::value::StrDeserializer::<Declined>::new(&s)),
            Kind::Map { .. } => visitor.visit_enum(self.map(true)?),
            _ => Err(Declined),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    // Nothing in a profile is skipped (every struct refuses unknown keys).
    fn deserialize_ignored_any<V: Visitor<'a>>(self, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    serde::forward_to_deserialize_any! {
        <V: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

impl<'a> Scalar<'a> {
    /// Hands the scalar to a visitor as the value it is. Options, enums and structs are the
    /// node's to decide ([`Node`]), so this is all a scalar needs.
    fn visit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self {
            Scalar::Null => visitor.visit_unit(),
            Scalar::Bool(b) => visitor.visit_bool(b),
            Scalar::Int(n) => visitor.visit_u64(n),
            Scalar::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Scalar::Str(Cow::Owned(s)) => visitor.visit_string(s),
        }
    }
}

/// The entries of a block mapping, read as serde asks for them.
struct Entries<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    depth: usize,
    /// The kind of the value whose key was just read.
    value: Option<Kind<'a>>,
    /// The keys so far, to refuse a duplicate (unless the visitor does: derived structs).
    keys: Option<Vec<Cow<'a, str>>>,
    /// How many keys the mapping has, as far as indentation tells (a hint for the visitor).
    size: Option<usize>,
    /// Every entry was read.
    done: bool,
}

impl<'a> de::MapAccess<'a> for Entries<'_, 'a> {
    type Error = Declined;

    fn size_hint(&self) -> Option<usize> {
        self.size
    }

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        let reader = &mut *self.reader;
        let Some(line) = reader.next_line().filter(|l| l.indent >= self.indent) else {
            self.done = true;
            return match &self.keys {
                Some(keys) if has_duplicates(keys) => Err(Declined),
                _ => Ok(None),
            };
        };
        if line.indent > self.indent || is_item(line.content) {
            return Err(Declined);
        }
        let (key, rest) = entry(line.content).ok_or(Declined)?;
        reader.at += 1;
        self.value = Some(reader.value_after_key(rest, self.indent)?);
        let found = match &key {
            Cow::Borrowed(key) => seed.deserialize(de::value::BorrowedStrDeserializer::<Declined>::new(key))?,
            Cow::Owned(key) => seed.deserialize(de::value::StrDeserializer::<Declined>::new(key))?,
        };
        if let Some(keys) = &mut self.keys {
            keys.push(key);
        }
        Ok(Some(found))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        let kind = self.value.take().ok_or(Declined)?;
        seed.deserialize(Node { reader: &mut *self.reader, kind, depth: self.depth + 1 })
    }
}

fn has_duplicates(keys: &[Cow<'_, str>]) -> bool {
    if keys.len() <= 8 {
        return keys.iter().enumerate().any(|(i, key)| keys[..i].contains(key));
    }
    // One pass through a set sized for all of them: cheaper than sorting hashes.
    let mut seen =
        std::collections::HashSet::with_capacity_and_hasher(keys.len(), foldhash::fast::FixedState::default());
    !keys.iter().all(|key| seen.insert(key.as_ref()))
}

/// An enum written as a one-entry mapping: `{before: id}`.
impl<'r, 'a> de::EnumAccess<'a> for Entries<'r, 'a> {
    type Error = Declined;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'a>>(mut self, seed: V) -> Result<(V::Value, Self), Declined> {
        let variant = de::MapAccess::next_key_seed(&mut self, seed)?.ok_or(Declined)?;
        Ok((variant, self))
    }
}

impl<'a> de::VariantAccess<'a> for Entries<'_, 'a> {
    type Error = Declined;

    // A unit variant is written as a plain string; `{name: ...}` is not one.
    fn unit_variant(self) -> Result<(), Declined> {
        Err(Declined)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(mut self, seed: T) -> Result<T::Value, Declined> {
        let value = de::MapAccess::next_value_seed(&mut self, seed)?;
        // The mapping must end there.
        match de::MapAccess::next_key_seed(&mut self, std::marker::PhantomData::<de::IgnoredAny>)? {
            None => Ok(value),
            Some(_) => Err(Declined),
        }
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }
}

/// The items of a block sequence, read as serde asks for them.
struct Items<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    depth: usize,
    /// Every item was read.
    done: bool,
}

impl<'a> de::SeqAccess<'a> for Items<'_, 'a> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        let reader = &mut *self.reader;
        let indent = self.indent;
        let Some(line) = reader.next_line().filter(|l| l.indent == indent && is_item(l.content)) else {
            self.done = true;
            // Anything deeper here belongs to no item.
            return if reader.next_line().is_some_and(|l| l.indent > indent) { Err(Declined) } else { Ok(None) };
        };
        let content = line.content;
        let rest = skip_spaces(&content[1..]);
        let kind = if rest.is_empty() || rest.starts_with('#') {
            reader.at += 1;
            match reader.next_line() {
                Some(next) if next.indent > indent => Kind::block(next),
                _ => Kind::Scalar(Scalar::Null),
            }
        } else if rest.starts_with('-') {
            return Err(Declined); // a nested compact sequence
        } else if entry(rest).is_some() {
            // A mapping that starts on the dash's line: its keys sit where `rest` starts.
            let column = indent + (content.len() - rest.len());
            reader.lines[reader.at] = Line { indent: column, content: rest };
            Kind::Map { indent: column }
        } else {
            reader.at += 1;
            reader.inline(rest, indent)?
        };
        seed.deserialize(Node { reader: &mut *self.reader, kind, depth: self.depth + 1 }).map(Some)
    }
}

/// The items of a one-line flow sequence (checked by [`flow_sequence`]): scalars, so their
/// nodes never move the reader.
struct FlowItems<'r, 'a> {
    reader: &'r mut Reader<'a>,
    items: std::str::Split<'a, char>,
    depth: usize,
}

impl<'a> de::SeqAccess<'a> for FlowItems<'_, 'a> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        let Some(item) = self.items.next().map(|item| trim_spaces_end(skip_spaces(item))).filter(|i| !i.is_empty())
        else {
            return Ok(None);
        };
        let kind = Kind::Scalar(scalar(item).ok_or(Declined)?);
        seed.deserialize(Node { reader: &mut *self.reader, kind, depth: self.depth }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn read(text: &str) -> Option<Value> {
        Reader::new(text)?.read().ok()
    }

    /// The hand-written profiles' block scalars and flow sequences are read, not declined (the
    /// test beside serde_yaml checks that what is read is right).
    #[test]
    fn reads_block_scalars_and_flow_sequences() {
        assert_eq!(read("a: >-\n  x\n  y\n\n  z\nb: 1\n"), Some(json!({"a": "x y\nz", "b": 1})));
        assert_eq!(read("a: |\n  x\n  # y\nb: |-\n  z\n"), Some(json!({"a": "x\n# y\n", "b": "z"})));
        assert_eq!(
            read("a:\n  - text: >-\n      x\n      y\n    kind: note\n"),
            Some(json!({"a": [{"text": "x y", "kind": "note"}]}))
        );
        assert_eq!(read("a: [api, web]\nb: []\n"), Some(json!({"a": ["api", "web"], "b": []})));
    }

    /// An empty flow mapping (imported scope catalogues write a scope with nothing but its
    /// value as `value: {}`) is read, as a value and as an item; anything else in braces is
    /// left to serde_yaml.
    #[test]
    fn reads_empty_mappings() {
        assert_eq!(read("a: {}\nb:\n  - {}\n  - x\n"), Some(json!({"a": {}, "b": [{}, "x"]})));
        for text in ["a: {x: 1}\n", "a: { }\n", "a: {} # c\n", "a: {}\n  b: 1\n", "a: {}}\n"] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    /// The word-at-a-time searches find what a byte-by-byte search finds, wherever the match
    /// falls in a word, with bytes around it that almost match (high bits, neighbours).
    #[test]
    fn word_searches_agree_with_byte_searches() {
        let alphabet = [b'a', b':', b'#', b'\n', b' ', 0x3b, 0xba, 0x0a ^ 0x80, b'9'];
        let mut seed = 7_u64;
        for len in 0..80 {
            for _ in 0..40 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        alphabet[(seed >> 33) as usize % alphabet.len()]
                    })
                    .collect();
                for from in 0..=len {
                    let naive = |a: u8, b: u8| bytes[from..].iter().position(|&c| c == a || c == b).map(|i| from + i);
                    assert_eq!(find_either(&bytes, from, b':', b'#'), naive(b':', b'#'), "{bytes:?} from {from}");
                    assert_eq!(line_end(&bytes, from), naive(b'\n', b'\n').unwrap_or(len), "{bytes:?} from {from}");
                }
            }
        }
        assert_eq!(find_either(b"ab", 3, b':', b'#'), None);
    }

    /// Plain scalars that look like numbers at first but cannot be one are read as strings
    /// (identifiers from Nango's catalogue: a nil UUID as an example, `+` as a separator).
    #[test]
    fn reads_strings_no_number_can_be() {
        assert_eq!(
            read("a: 00000000-0000-0000-0000-000000000000\nb: +\nc: 2024-01-01\nd: 1e5-3\n+x: 1\n"),
            Some(
                json!({"a": "00000000-0000-0000-0000-000000000000", "b": "+", "c": "2024-01-01", "d": "1e5-3", "+x": 1})
            )
        );
        for text in ["a: 1e-5\n", "a: 1E+5\n", "a: +1\n", "a: +.inf\n", "a: 1_000\n"] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    #[test]
    fn declines_what_it_does_not_read_exactly() {
        for text in ["a: >\n  x \n", "a: >-\n  x\n   y\n", "a: >+\n  x\n", "a: [a, 'b']\n", "a: >-\n"] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }
}
