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
        Some(Reader { lines, at: 0 })
    }

    /// Whether the top-level mapping has `key` (before reading).
    pub(crate) fn has_top_level_key(&self, key: &str) -> bool {
        self.lines.iter().any(|l| l.indent == 0 && entry(l.content).is_some_and(|(k, _)| k == key))
    }

    /// Reads the whole document as a `T`.
    pub(crate) fn read<T: de::DeserializeOwned>(mut self) -> Result<T, Declined> {
        let value = T::deserialize(Node { reader: &mut self, kind: Kind::Map { indent: 0 }, depth: 0 })?;
        if self.at == self.lines.len() { Ok(value) } else { Err(Declined) }
    }

    fn next_line(&self) -> Option<&Line<'a>> {
        self.lines.get(self.at)
    }

    /// The kind of a mapping entry's value, `rest` being what follows the key on its line
    /// (which has been read), for a mapping whose keys sit at `indent`.
    fn value_after_key(&self, rest: &'a str, indent: usize) -> Result<Kind<'a>, Declined> {
        if rest.is_empty() || rest.starts_with('#') {
            return Ok(match self.next_line() {
                Some(next) if next.indent > indent => Kind::block(next),
                // A sequence may sit at its key's indentation.
                Some(next) if next.indent == indent && is_item(next.content) => Kind::Seq { indent },
                _ => Kind::Scalar(Scalar::Null),
            });
        }
        let value = scalar(rest).ok_or(Declined)?;
        if self.next_line().is_some_and(|next| next.indent > indent) {
            return Err(Declined); // a multi-line scalar
        }
        Ok(Kind::Scalar(value))
    }
}

/// What the node at the reader's position is.
enum Kind<'a> {
    /// A block mapping whose keys sit at `indent`, from the next line.
    Map { indent: usize },
    /// A block sequence whose dashes sit at `indent`, from the next line.
    Seq { indent: usize },
    /// An inline scalar, already read.
    Scalar(Scalar<'a>),
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
fn scalar(text: &str) -> Option<Scalar<'_>> {
    if text.starts_with(['\'', '"']) {
        let (value, after) = quoted(text)?;
        let rest = after.trim_start_matches(' ');
        let ends = rest.is_empty() || (rest.starts_with('#') && after.starts_with(' '));
        return ends.then_some(Scalar::Str(value));
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
            Kind::Map { indent } if self.depth <= MAX_DEPTH => Ok(Entries {
                reader: self.reader,
                indent,
                depth: self.depth,
                value: None,
                keys: (!duplicates_checked_by_visitor).then(Vec::new),
                done: false,
            }),
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

    fn visit_map<'de, V: Visitor<'de>>(self, visitor: V, checked: bool) -> Result<V::Value, Declined> {
        let mut entries = self.map(checked)?;
        let value = visitor.visit_map(&mut entries)?;
        if entries.done { Ok(value) } else { Err(Declined) }
    }
}

impl<'de> de::Deserializer<'de> for Node<'_, '_> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.kind {
            Kind::Map { .. } => self.visit_map(visitor, false),
            Kind::Seq { .. } => {
                let mut items = self.seq()?;
                let value = visitor.visit_seq(&mut items)?;
                if items.done { Ok(value) } else { Err(Declined) }
            }
            Kind::Scalar(scalar) => scalar.visit(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.kind {
            Kind::Scalar(Scalar::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // serde's derived struct visitors also accept a sequence (fields by position), which the
    // schema does not: only a mapping is a struct here. They refuse duplicate fields
    // themselves.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        self.visit_map(visitor, true)
    }

    fn deserialize_enum<V: Visitor<'de>>(
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

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    // Nothing in a profile is skipped (every struct refuses unknown keys).
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

impl Scalar<'_> {
    /// Hands the scalar to a visitor as the value it is. Options, enums and structs are the
    /// node's to decide ([`Node`]), so this is all a scalar needs.
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self {
            Scalar::Null => visitor.visit_unit(),
            Scalar::Bool(b) => visitor.visit_bool(b),
            Scalar::Int(n) => visitor.visit_u64(n),
            Scalar::Str(s) => visitor.visit_str(&s),
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
    /// Every entry was read.
    done: bool,
}

impl<'de, 'a> de::MapAccess<'de> for Entries<'_, 'a> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
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
        let found = seed.deserialize(de::value::StrDeserializer::<Declined>::new(&key))?;
        if let Some(keys) = &mut self.keys {
            keys.push(key);
        }
        Ok(Some(found))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        let kind = self.value.take().ok_or(Declined)?;
        seed.deserialize(Node { reader: &mut *self.reader, kind, depth: self.depth + 1 })
    }
}

fn has_duplicates(keys: &[Cow<'_, str>]) -> bool {
    if keys.len() <= 8 {
        return keys.iter().enumerate().any(|(i, key)| keys[..i].contains(key));
    }
    let mut sorted: Vec<&str> = keys.iter().map(|k| k.as_ref()).collect();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

/// An enum written as a one-entry mapping: `{before: id}`.
impl<'de, 'r, 'a> de::EnumAccess<'de> for Entries<'r, 'a> {
    type Error = Declined;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(mut self, seed: V) -> Result<(V::Value, Self), Declined> {
        let variant = de::MapAccess::next_key_seed(&mut self, seed)?.ok_or(Declined)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Entries<'_, '_> {
    type Error = Declined;

    // A unit variant is written as a plain string; `{name: ...}` is not one.
    fn unit_variant(self) -> Result<(), Declined> {
        Err(Declined)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(mut self, seed: T) -> Result<T::Value, Declined> {
        let value = de::MapAccess::next_value_seed(&mut self, seed)?;
        // The mapping must end there.
        match de::MapAccess::next_key_seed(&mut self, std::marker::PhantomData::<de::IgnoredAny>)? {
            None => Ok(value),
            Some(_) => Err(Declined),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn struct_variant<V: Visitor<'de>>(
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

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        let reader = &mut *self.reader;
        let indent = self.indent;
        let Some(line) = reader.next_line().filter(|l| l.indent == indent && is_item(l.content)) else {
            self.done = true;
            // Anything deeper here belongs to no item.
            return if reader.next_line().is_some_and(|l| l.indent > indent) { Err(Declined) } else { Ok(None) };
        };
        let content = line.content;
        let rest = content[1..].trim_start_matches(' ');
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
            let value = scalar(rest).ok_or(Declined)?;
            reader.at += 1;
            if reader.next_line().is_some_and(|next| next.indent > indent) {
                return Err(Declined);
            }
            Kind::Scalar(value)
        };
        seed.deserialize(Node { reader: &mut *self.reader, kind, depth: self.depth + 1 }).map(Some)
    }
}
