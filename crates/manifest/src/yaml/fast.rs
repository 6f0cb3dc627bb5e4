//! The fast reader: the plain block YAML profiles are written in, read in one pass into a tree
//! that borrows from the text.
//!
//! It declines (`None`) anything outside its subset, and anything wrong; the caller then uses
//! serde_yaml, which also words the diagnostics. So it never has to be right about an error,
//! only about the documents it accepts, which must read exactly as serde_yaml reads them (a
//! test compares the two on every YAML file in the repository and on variations of them).
//!
//! The tree has two consumers: [`Node::into_value`], the JSON value the schema check and
//! `extends` work on, and serde: a `&Node` is a [`serde::Deserializer`], so a profile can be
//! typed straight from the text without building that JSON value at all. That deserializer is
//! never more lenient than the schema: it reads a struct only from a mapping and an enum only
//! from a string or a one-entry mapping, and any failure sends the document down the full path.

use serde::de::{self, DeserializeSeed, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// Deeper documents are left to serde_yaml, which refuses them past its own limit.
const MAX_DEPTH: usize = 64;

/// A YAML node as the fast reader reads it.
#[derive(Debug, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Int(u64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    /// Entries in document order; keys are unique.
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'_> {
    /// The value at `key`, for a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The JSON value of the node (what serde_yaml's reading converts to).
    pub(crate) fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) => Value::Number(Number::from(n)),
            Node::Str(s) => Value::String(s.into_owned()),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.into_owned(), value.into_value());
                }
                Value::Object(map)
            }
        }
    }
}

struct Line<'a> {
    indent: usize,
    content: &'a str,
}

/// Reads `text`, or declines.
pub(crate) fn parse(text: &str) -> Option<Node<'_>> {
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
    for end in memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]) {
        let raw = &text[start..end];
        start = end + 1;
        let content = raw.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.starts_with("---") || content.starts_with("...") || content.starts_with('%') {
            return None;
        }
        lines.push(Line { indent: raw.len() - content.len(), content: content.trim_end_matches(' ') });
    }
    let first = lines.first()?;
    if first.indent != 0 || first.content.starts_with('-') {
        return None;
    }
    let mut i = 0;
    let node = map(&mut lines, &mut i, 0, 0)?;
    (i == lines.len()).then_some(node)
}

/// Whether every byte is a newline or printable ASCII. In blocks, without stopping early, so
/// the compiler can check many bytes at once.
fn printable_ascii(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|chunk| chunk.iter().fold(true, |ok, &b| ok & ((b' '..=b'~').contains(&b) | (b == b'\n'))))
}

/// A block mapping whose keys sit at `indent`.
fn map<'a>(lines: &mut [Line<'a>], i: &mut usize, indent: usize, depth: usize) -> Option<Node<'a>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut out = Vec::new();
    while *i < lines.len() {
        let line = &lines[*i];
        if line.indent < indent {
            break;
        }
        if line.indent > indent || is_item(line.content) {
            return None;
        }
        let (key, rest) = entry(line.content)?;
        *i += 1;
        let value = if rest.is_empty() || rest.starts_with('#') {
            match lines.get(*i) {
                Some(next) if next.indent > indent => node(lines, i, depth + 1)?,
                // A sequence may sit at its key's indentation.
                Some(next) if next.indent == indent && is_item(next.content) => seq(lines, i, indent, depth + 1)?,
                _ => Node::Null,
            }
        } else {
            let value = scalar(rest)?;
            if lines.get(*i).is_some_and(|next| next.indent > indent) {
                return None; // a multi-line scalar
            }
            value
        };
        out.push((key, value));
    }
    if has_duplicate_keys(&out) {
        return None;
    }
    Some(Node::Map(out))
}

fn has_duplicate_keys(entries: &[(Cow<'_, str>, Node<'_>)]) -> bool {
    if entries.len() <= 8 {
        return entries.iter().enumerate().any(|(i, (key, _))| entries[..i].iter().any(|(k, _)| k == key));
    }
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// A nested block node starting at line `i`.
fn node<'a>(lines: &mut [Line<'a>], i: &mut usize, depth: usize) -> Option<Node<'a>> {
    let indent = lines[*i].indent;
    if is_item(lines[*i].content) { seq(lines, i, indent, depth) } else { map(lines, i, indent, depth) }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// A block sequence whose dashes sit at `indent`.
fn seq<'a>(lines: &mut [Line<'a>], i: &mut usize, indent: usize, depth: usize) -> Option<Node<'a>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut out = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent && is_item(lines[*i].content) {
        let content = lines[*i].content;
        let rest = content[1..].trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') {
            *i += 1;
            match lines.get(*i) {
                Some(next) if next.indent > indent => out.push(node(lines, i, depth + 1)?),
                _ => out.push(Node::Null),
            }
            continue;
        }
        if rest.starts_with('-') {
            return None; // a nested compact sequence
        }
        if entry(rest).is_some() {
            // A mapping that starts on the dash's line: its keys sit where `rest` starts.
            let column = indent + (content.len() - rest.len());
            lines[*i] = Line { indent: column, content: rest };
            out.push(map(lines, i, column, depth + 1)?);
            continue;
        }
        out.push(scalar(rest)?);
        *i += 1;
        if lines.get(*i).is_some_and(|next| next.indent > indent) {
            return None;
        }
    }
    if *i < lines.len() && lines[*i].indent > indent {
        return None;
    }
    Some(Node::Seq(out))
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
        return Some((key, rest.trim_start_matches(' ')));
    }
    // One pass: the first `:` followed by a space or the end of the line ends the key, which
    // may not hold a `#` (that also rules out a ` #` comment).
    let bytes = content.as_bytes();
    let at = memchr::memchr2_iter(b':', b'#', bytes)
        .find(|&i| bytes[i] == b'#' || bytes.get(i + 1).is_none_or(|&next| next == b' '))
        .filter(|&i| bytes[i] == b':')?;
    let key = content[..at].trim_end_matches(' ');
    let rest = content.get(at + 2..).unwrap_or("").trim_start_matches(' ');
    if key.ends_with(':') || !plain_start(key) {
        return None;
    }
    Some((Cow::Borrowed(key), rest))
}

/// An inline scalar value.
fn scalar(text: &str) -> Option<Node<'_>> {
    if text.starts_with(['\'', '"']) {
        let (value, after) = quoted(text)?;
        let rest = after.trim_start_matches(' ');
        let ends = rest.is_empty() || (rest.starts_with('#') && after.starts_with(' '));
        return ends.then_some(Node::Str(value));
    }
    // A comment ends a plain scalar; a `: ` before it (or a final `:`) makes it a mapping.
    let (comment, colon) = markers(text);
    let text = match comment {
        Some(at) => text[..at].trim_end_matches(' '),
        None => text,
    };
    if text.ends_with(':') || colon.is_some_and(|at| at < text.len()) {
        return None;
    }
    match text {
        "~" | "null" | "Null" | "NULL" => return Some(Node::Null),
        "true" | "True" | "TRUE" => return Some(Node::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Node::Bool(false)),
        _ => {}
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text.len() == 1 || !text.starts_with('0')) {
        return text.parse::<u64>().ok().map(Node::Int);
    }
    plain_start(text).then_some(Node::Str(Cow::Borrowed(text)))
}

/// Whether a plain scalar with no ` #` and no `: ` in it reads as a string whatever its
/// content: it starts with a letter (or a character that cannot start a number, null, boolean
/// or indicator) and is not one of the null and boolean words.
fn plain_start(text: &str) -> bool {
    let Some(first) = text.chars().next() else { return false };
    // A digit or dot starts a number unless a character no number has follows (hex, octal
    // and binary prefixes aside): `9a8b-...` and `.default` are strings; `.5`, `1e5`, `0x1f`
    // and `.inf` are left to serde_yaml.
    let not_a_number = || {
        let bytes = text.as_bytes();
        let prefixed = bytes.len() > 1 && bytes[0] == b'0' && b"xXoObB".contains(&bytes[1]);
        let special = |word: &[u8]| bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(word);
        !prefixed
            && !bytes.iter().all(|b| b.is_ascii_digit() || b".eE+-_".contains(b))
            && !special(b".inf")
            && !special(b".nan")
    };
    let safe_start = first.is_ascii_alphabetic()
        || "/^($<=_\\;()".contains(first)
        || !first.is_ascii()
        || ((first.is_ascii_digit() || first == '.') && not_a_number());
    safe_start && !matches!(text, "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE")
}

/// The offsets of the first ` #` and the first `: ` in `text`, in one pass.
fn markers(text: &str) -> (Option<usize>, Option<usize>) {
    let bytes = text.as_bytes();
    let (mut comment, mut colon) = (None, None);
    for i in memchr::memchr2_iter(b' ', b':', bytes) {
        match (bytes[i], bytes.get(i + 1)) {
            (b' ', Some(b'#')) if comment.is_none() => comment = Some(i),
            (b':', Some(b' ')) if colon.is_none() => colon = Some(i),
            _ => continue,
        }
        if comment.is_some() && colon.is_some() {
            break;
        }
    }
    (comment, colon)
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

/// Typing from the tree failed. Never shown: the document then takes the full path, which
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

impl<'de> de::Deserializer<'de> for &Node<'_> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(n) => visitor.visit_u64(*n),
            Node::Str(s) => visitor.visit_str(s),
            Node::Seq(items) => {
                let mut access = Items(items.iter());
                let value = visitor.visit_seq(&mut access)?;
                if access.0.len() == 0 { Ok(value) } else { Err(Declined) }
            }
            Node::Map(entries) => {
                let mut access = Entries { entries: entries.iter(), value: None };
                let value = visitor.visit_map(&mut access)?;
                if access.entries.len() == 0 { Ok(value) } else { Err(Declined) }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // serde's derived struct visitors also accept a sequence (fields by position), which the
    // schema does not: only a mapping is a struct here.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self {
            Node::Map(_) => self.deserialize_any(visitor),
            _ => Err(Declined),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self {
            Node::Str(s) => visitor.visit_enum(de::value::StrDeserializer::<Declined>::new(s)),
            Node::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(Variant { key, value })
            }
            _ => Err(Declined),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Items<'n, 'a>(std::slice::Iter<'n, Node<'a>>);

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        self.0.next().map(|node| seed.deserialize(node)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'n, 'a> {
    entries: std::slice::Iter<'n, (Cow<'a, str>, Node<'a>)>,
    value: Option<&'n Node<'a>>,
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(de::value::StrDeserializer::<Declined>::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(Declined),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a one-entry mapping: `{before: id}`.
struct Variant<'n, 'a> {
    key: &'n str,
    value: &'n Node<'a>,
}

impl<'de, 'n, 'a> de::EnumAccess<'de> for Variant<'n, 'a> {
    type Error = Declined;
    type Variant = VariantValue<'n, 'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), Declined> {
        let variant = seed.deserialize(de::value::StrDeserializer::<Declined>::new(self.key))?;
        Ok((variant, VariantValue(self.value)))
    }
}

struct VariantValue<'n, 'a>(&'n Node<'a>);

impl<'de> de::VariantAccess<'de> for VariantValue<'_, '_> {
    type Error = Declined;

    // A unit variant is written as a plain string; `{name: ...}` is not one.
    fn unit_variant(self) -> Result<(), Declined> {
        Err(Declined)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Declined> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Declined> {
        de::Deserializer::deserialize_seq(self.0, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        de::Deserializer::deserialize_struct(self.0, "", fields, visitor)
    }
}
