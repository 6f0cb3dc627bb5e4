//! The one module that reads YAML.
//!
//! Two jobs, kept apart so the fast path stays fast:
//! - [`parse`] turns text into a JSON value (the form every later stage works on), rejecting
//!   duplicate keys, tags and non-scalar keys, with a located diagnostic; [`parse_typed`]
//!   types a document straight from its text when the fast reader ([`fast`]) can, and is
//!   [`parse`] otherwise;
//! - [`SourceMap`] maps JSON pointers back to spans of the text. It is built only when there is
//!   something to report, by a second, span-aware pass over the same text.

use keyway_diagnostics::{Code, Diagnostic, LineIndex, Span, offset_of, span_of};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Profiles larger than this are refused before parsing: no real profile comes close, and the
/// limit bounds the time and memory a hostile file can cost.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;

/// A problem found while parsing, before any file name is attached.
pub(crate) type ParseError = Box<Diagnostic>;

/// Parses one YAML document into a JSON value.
///
/// Refused with a diagnostic: malformed YAML (KW0101), duplicate keys (KW0102), several
/// documents, tags, non-scalar keys, non-finite numbers, and alias expansion or nesting past
/// serde_yaml's limits (KW0104). Positions come from the parser where it gives them, and are
/// otherwise left to the caller's [`SourceMap`] through the diagnostic's pointer.
pub(crate) fn parse(text: &str) -> Result<Value, ParseError> {
    // Most profiles are plain block YAML: read those with the fast reader below, and anything
    // it does not handle (or any error) with serde_yaml, which also words the diagnostics.
    if let Some(value) = fast::Reader::new(text).and_then(|reader| reader.read::<Value>().ok()) {
        return Ok(value);
    }
    check_flow_depth(text)?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Box::new(yaml_error(text, &e)))?;
    let mut pointer = String::new();
    let value = to_json(yaml, &mut pointer)?;
    // serde_yaml resolves the standard tags (`!!str`, `!!binary`, ...) and directives
    // silently; the scanner sees every one, wherever it is.
    match tag_or_directive(text) {
        Some(d) => Err(Box::new(d)),
        None => Ok(value),
    }
}

/// The first tag (`!x`, `!!binary`, `!<...>`) or directive (`%TAG`, `%YAML`) in a document,
/// as a located diagnostic. One pass of yaml-rust2's scanner, which reads them exactly as
/// YAML does: a `!` inside a scalar is text. Run only on the full path (the fast reader
/// declines both) and after serde_yaml has accepted the text, so the scanner never meets
/// what serde_yaml refused (deep flow nesting among it).
fn tag_or_directive(text: &str) -> Option<Diagnostic> {
    use yaml_rust2::scanner::{Scanner, TokenType};
    for token in Scanner::new(text.chars()) {
        let (message, help) = match &token.1 {
            TokenType::Tag(handle, suffix) => {
                let shown = if handle.is_empty() { format!("!<{suffix}>") } else { format!("{handle}{suffix}") };
                (
                    format!("YAML tags are not used in profiles (found `{shown}`)"),
                    "remove the tag; write the plain value",
                )
            }
            TokenType::TagDirective(..) | TokenType::VersionDirective(..) => (
                "YAML directives (`%TAG`, `%YAML`) are not used in profiles".to_owned(),
                "remove the directive and the `---` after it",
            ),
            _ => continue,
        };
        let start = char_offset_to_byte(text, token.0.index());
        let end = text[start..].find([' ', '\n']).map_or(text.len(), |i| start + i.max(1));
        return Some(
            Diagnostic::new(Code::UnsupportedYaml, message).with_span(span_of(text, start, end)).with_help(help),
        );
    }
    None
}

/// yaml-rust2's markers count characters; spans are in bytes.
fn char_offset_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

/// A document read by [`parse_typed`].
pub(crate) enum Read<T> {
    /// Typed straight from the text.
    Typed(T),
    /// Read by the fast reader as a tree (for the fast path of `extends`).
    Tree(tree::Tree),
    /// Read as a JSON value, for the full path.
    Value(Value),
}

/// Reads a document with the fast reader when it can: as a tree when one of `tree_keys` is at
/// its top level, typed as `T` when none of `declined_keys` is and it types. Otherwise it is
/// read as a JSON value, as [`parse`] does, for the full path (schema, typing), which finds and
/// words whatever kept it off the fast one. Typing here is never more lenient than the schema
/// (see [`fast`]).
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(
    text: &str,
    tree_keys: &[&str],
    declined_keys: &[&str],
) -> Result<Read<T>, ParseError> {
    if let Some(reader) = fast::Reader::new(text) {
        if tree_keys.iter().any(|key| reader.has_top_level_key(key)) {
            if let Some(tree) = tree::Tree::read_with(reader, text) {
                return Ok(Read::Tree(tree));
            }
        } else if !declined_keys.iter().any(|key| reader.has_top_level_key(key)) {
            if let Ok(typed) = reader.read::<T>() {
                return Ok(Read::Typed(typed));
            }
        }
    }
    parse(text).map(Read::Value)
}

/// Reads any YAML document (not only a profile) into a JSON value, with the same refusals and
/// limits as profiles: for tools that read other YAML formats (the Nango importer). Errors
/// carry a span when the parser gives one, and otherwise a JSON pointer.
pub fn parse_value(text: &str) -> Result<Value, Box<Diagnostic>> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(Box::new(Diagnostic::new(
            Code::TooLarge,
            format!("the text is {} bytes; the limit is {MAX_SOURCE_BYTES} bytes", text.len()),
        )));
    }
    parse(text)
}

/// Flow nesting (`[[[[...`) past this is refused before parsing: libyaml re-checks every open
/// flow level on each token, so deep flow nesting costs quadratic time, and serde_yaml would
/// refuse the document anyway (its recursion limit is 128). Profiles nest a few levels.
const MAX_FLOW_DEPTH: usize = 64;

/// A linear pre-scan that tracks flow nesting the way YAML's scanner does, and errs on the
/// side of counting too deep: brackets in block plain scalars are text; in flow context every
/// bracket outside a quoted scalar counts; a quote opens a quoted scalar only where a node
/// starts (exactly as in YAML's flow context); brackets inside a quoted scalar in flow context
/// count as opening (never closing) while it lasts, so a quote the scan misreads cannot hide
/// nesting. In block context a quoted scalar's brackets are text.
fn check_flow_depth(text: &str) -> Result<(), ParseError> {
    let b = text.as_bytes();
    let too_deep = |i: usize| {
        Box::new(
            Diagnostic::new(
                Code::UnsupportedYaml,
                format!("flow collections nest deeper than {MAX_FLOW_DEPTH} levels"),
            )
            .with_span(span_of(text, i, i + 1))
            .with_help("profiles nest a few levels deep; flatten the document"),
        )
    };
    let mut depth = 0usize;
    let mut node_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let after_space = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r');
        match c {
            b'\n' => node_start |= depth == 0,
            b' ' | b'\t' | b'\r' => {}
            b'#' if after_space => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' if node_start => {
                // A quoted scalar: find its end, counting openers as if they were real.
                let mut inner = depth;
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' if c == b'"' => i += 1,
                        b'\'' if c == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 1,
                        q if q == c => break,
                        // In block context a quote at a node's start is a quoted scalar, as
                        // YAML reads it, and its brackets are text (a guide's `{{ tags }}`).
                        b'[' | b'{' if depth > 0 => {
                            inner += 1;
                            if inner > MAX_FLOW_DEPTH {
                                return Err(too_deep(i));
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                node_start = false;
            }
            b'[' | b'{' if depth > 0 || node_start => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(too_deep(i));
                }
                node_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                node_start = false;
            }
            b',' if depth > 0 => node_start = true,
            b'?' | b'-' | b':'
                if b.get(i + 1).is_none_or(|n| matches!(n, b' ' | b'\t' | b'\n' | b'\r'))
                    || (c == b':' && depth > 0) =>
            {
                node_start = true;
            }
            // Anchors and tags come before a node; the node still starts after them.
            b'&' | b'!' if node_start => {
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}') {
                    i += 1;
                }
                continue;
            }
            _ => node_start = false,
        }
        i += 1;
    }
    Ok(())
}

fn yaml_error(text: &str, error: &serde_yaml::Error) -> Diagnostic {
    let message = error.to_string();
    // libyaml's message: "PROBLEM at line L column C, while CONTEXT at line L2 column C2".
    let bare = message.split(" at line ").next().unwrap_or(&message).to_owned();
    let context = message.split_once(", while ").map(|(_, rest)| {
        let (phrase, at) = rest.split_once(" at line ").unwrap_or((rest, ""));
        let mut numbers = at.split(" column ").map(|n| n.trim().parse::<usize>().ok());
        (format!("while {phrase}"), numbers.next().flatten().zip(numbers.next().flatten()))
    });
    let (code, help) = if bare.contains("duplicate entry") {
        (Code::DuplicateKey, None)
    } else if bare.contains("recursion limit exceeded") {
        (Code::UnsupportedYaml, Some("profiles nest a few levels deep; flatten the document"))
    } else if bare.contains("repetition limit exceeded") {
        (Code::UnsupportedYaml, Some("aliases expand to too much data; write the values out"))
    } else if bare.contains("more than one document") {
        (Code::UnsupportedYaml, Some("a profile file holds one YAML document; remove the `---` separators"))
    } else {
        (Code::YamlSyntax, None)
    };
    if code == Code::DuplicateKey {
        if let Some(d) = duplicate_key(text, &bare) {
            return d;
        }
    }
    let mut text_message = format!("invalid YAML: {bare}");
    if let Some((phrase, _)) = &context {
        text_message.push_str(&format!(", {phrase}"));
    }
    let mut diagnostic = Diagnostic::new(code, text_message);
    let start = match error.location() {
        Some(location) => Some(offset_of(text, location.line(), location.column())),
        // serde_yaml gives no position for a second document: point at its marker.
        None if bare.contains("more than one document") => second_document(text),
        None => None,
    };
    let mut tabbed = bare.contains("tab");
    if let Some(start) = start {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i.max(1));
        diagnostic = diagnostic.with_span(span_of(text, start, end));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..];
        tabbed |= line[..line.len() - line.trim_start_matches([' ', '\t']).len()].contains('\t');
    }
    if let Some((phrase, Some((line, column)))) = context {
        let at = offset_of(text, line, column);
        // A construct left open until the end of the file is best shown where it opens.
        if start.is_some_and(|s| s >= text.trim_end().len()) {
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i.max(1));
            diagnostic.span = Some(span_of(text, at, end));
            diagnostic.message = format!(
                "invalid YAML: {bare}: this {} is never closed",
                phrase.trim_start_matches("while scanning a ").trim_start_matches("while parsing a ")
            );
        } else if Some(at) != start {
            diagnostic = diagnostic.with_label(keyway_diagnostics::Label {
                file: None,
                span: span_of(text, at, at + 1),
                message: format!("{phrase} that starts here"),
            });
        }
    }
    match help {
        Some(help) => diagnostic.with_help(help),
        None if tabbed => diagnostic.with_help("YAML indents with spaces, never tabs"),
        None => diagnostic,
    }
}

/// The byte offset where a second document starts: its `---` marker, or its first content
/// after a `...` that ended the first. Read by yaml-rust2's scanner, which knows a `---` in a
/// block scalar from a marker.
fn second_document(text: &str) -> Option<usize> {
    use yaml_rust2::scanner::{Scanner, TokenType};
    let (mut seen_content, mut ended) = (false, false);
    for token in Scanner::new(text.chars()) {
        match token.1 {
            TokenType::StreamStart(_) | TokenType::StreamEnd => {}
            TokenType::VersionDirective(..) | TokenType::TagDirective(..) => {}
            TokenType::DocumentStart if seen_content => return Some(char_offset_to_byte(text, token.0.index())),
            TokenType::DocumentStart => {}
            TokenType::DocumentEnd => ended = seen_content,
            _ if ended => return Some(char_offset_to_byte(text, token.0.index())),
            _ => seen_content = true,
        }
    }
    None
}

/// serde_yaml reports a duplicate as `path: duplicate entry with key "k"` at the start of the
/// mapping. The diagnostic points at the second occurrence (the one to remove) and labels the
/// first, both found by the span-aware pass.
fn duplicate_key(text: &str, bare: &str) -> Option<Diagnostic> {
    let (path, rest) = bare
        .split_once(": duplicate entry with key ")
        .unwrap_or((".", bare.split_once("duplicate entry with key ")?.1));
    let key = rest.trim().trim_matches('"');
    let mut pointer = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        // `items[2]` is key `items`, index 2.
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next().filter(|n| !n.is_empty()) {
            pointer.push('/');
            pointer.push_str(&escape_pointer_token(name));
        }
        for index in pieces {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    pointer.push('/');
    pointer.push_str(&escape_pointer_token(key));
    let map = SourceMap::build(text);
    let second = map.key(text, &pointer)?;
    let mut d = Diagnostic::new(Code::DuplicateKey, format!("duplicate key `{key}`"))
        .with_span(second)
        .with_help("each key may appear once in a mapping; remove or rename one");
    // An aliased key has no text of its own, so it may have no first occurrence to show.
    if let Some((start, end)) = map.first_keys.get(&pointer) {
        let first = span_of(text, *start, *end);
        d = d.with_label(keyway_diagnostics::Label { file: None, span: first, message: "first defined here".into() });
    }
    Some(d.at_pointer(pointer))
}

fn to_json(yaml: serde_yaml::Value, pointer: &mut String) -> Result<Value, ParseError> {
    Ok(match yaml {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => Value::Number(number(&n).ok_or_else(|| {
            let d = Diagnostic::new(Code::UnsupportedYaml, format!("the number `{n}` has no JSON equivalent"))
                .at_pointer(pointer.clone());
            ParseError::new(d)
        })?),
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                out.push(to_json(item, pointer)?);
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        serde_yaml::Value::Mapping(mapping) => {
            let mut out = Map::with_capacity(mapping.len());
            for (key, value) in mapping {
                let key = match key {
                    serde_yaml::Value::String(s) => s,
                    // `401: ...` is a natural way to key by status code.
                    serde_yaml::Value::Number(n) => n.to_string(),
                    other => {
                        return Err(Diagnostic::new(
                            Code::UnsupportedYaml,
                            format!("mapping keys must be strings, found {}", kind_of(&other)),
                        )
                        .at_pointer(pointer.clone())
                        .with_help("quote the key")
                        .into());
                    }
                };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_pointer_token(&key));
                let value = to_json(value, pointer)?;
                pointer.truncate(len);
                out.insert(key, value);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(tagged) => {
            return Err(Diagnostic::new(
                Code::UnsupportedYaml,
                format!("YAML tags are not used in profiles (found `{}`)", tagged.tag),
            )
            .at_pointer(pointer.clone())
            .with_help("remove the tag; write the plain value")
            .into());
        }
    })
}

fn number(n: &serde_yaml::Number) -> Option<Number> {
    if let Some(u) = n.as_u64() {
        Some(Number::from(u))
    } else if let Some(i) = n.as_i64() {
        Some(Number::from(i))
    } else {
        n.as_f64().and_then(Number::from_f64)
    }
}

fn kind_of(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a sequence",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// Escapes one JSON pointer token (RFC 6901).
pub fn escape_pointer_token(token: &str) -> String {
    if token.contains(['~', '/']) { token.replace('~', "~0").replace('/', "~1") } else { token.to_owned() }
}

/// Where each value and key of a document is, by JSON pointer. Byte ranges are recorded while
/// parsing; lines and columns are computed only for the pointers asked about.
#[derive(Debug, Default)]
pub struct SourceMap {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
    /// For keys that appear more than once in their mapping, the first occurrence.
    first_keys: HashMap<String, (usize, usize)>,
    lines: LineIndex,
}

impl SourceMap {
    /// Builds the map with a span-aware pass over `text`. Malformed text yields a partial map.
    pub fn build(text: &str) -> SourceMap {
        let map = SourceMap { lines: LineIndex::new(text), ..SourceMap::default() };
        let mut builder = Builder { text, cursor: std::cell::Cell::new((0, 0)), map, stack: Vec::new(), skip_depth: 0 };
        let mut parser = Parser::new_from_str(text);
        // A parse error only truncates the map; `parse` has already reported it.
        let _ = parser.load(&mut builder, false);
        builder.map
    }

    /// The span of the value at `pointer`, or of its nearest located ancestor. `text` is the
    /// text the map was built from.
    pub fn value(&self, text: &str, pointer: &str) -> Option<Span> {
        self.lookup(&self.values, pointer).map(|(s, e)| self.lines.span(text, s, e))
    }

    /// The span of the key holding the value at `pointer` (the value itself for sequence items
    /// and the root), or of its nearest located ancestor.
    pub fn key(&self, text: &str, pointer: &str) -> Option<Span> {
        match self.keys.get(pointer) {
            Some((s, e)) => Some(self.lines.span(text, *s, *e)),
            None => self.value(text, pointer),
        }
    }

    /// Whether `pointer` itself (not an ancestor) is in the document.
    pub fn contains(&self, pointer: &str) -> bool {
        self.values.contains_key(pointer)
    }

    fn lookup(&self, table: &HashMap<String, (usize, usize)>, pointer: &str) -> Option<(usize, usize)> {
        let mut p = pointer;
        loop {
            if let Some(span) = table.get(p) {
                return Some(*span);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

enum Frame {
    Mapping { pointer: String, key: Option<String> },
    Sequence { pointer: String, index: usize },
}

struct Builder<'a> {
    text: &'a str,
    /// The last character index converted to a byte offset, and that offset: markers arrive
    /// in order, so conversion walks forward instead of from the start each time.
    cursor: std::cell::Cell<(usize, usize)>,
    map: SourceMap,
    stack: Vec<Frame>,
    /// Depth inside a complex (non-scalar) key, whose contents have no pointer.
    skip_depth: usize,
}

impl Builder<'_> {
    /// Called for each node in value position; returns its pointer.
    fn enter_value(&mut self, mark: Marker, scalar: Option<(&str, TScalarStyle)>) -> Option<String> {
        let span = match scalar {
            Some((value, style)) => self.scalar_span(mark, value, style),
            // A collection's marker is where its first entry was recognised; the root is
            // better shown at its first line.
            None if self.stack.is_empty() => self.line_span(first_content(self.text)),
            None => self.line_span(mark.index()),
        };
        let pointer = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Sequence { pointer, index }) => {
                let p = format!("{pointer}/{index}");
                *index += 1;
                p
            }
            Some(Frame::Mapping { pointer, key }) => match key.take() {
                Some(k) => format!("{pointer}/{}", escape_pointer_token(&k)),
                None => {
                    // Key position: remember the key and its span.
                    let (value, _) = scalar?;
                    let child = format!("{pointer}/{}", escape_pointer_token(value));
                    *key = Some(value.to_owned());
                    if let Some(first) = self.map.keys.insert(child.clone(), span) {
                        self.map.first_keys.entry(child).or_insert(first);
                    }
                    return None;
                }
            },
        };
        // A collection's marker is where its first entry was recognised, which reads badly;
        // the key that holds it is the better place to point at.
        let span = match (scalar, self.map.keys.get(&pointer)) {
            (None, Some(key)) => *key,
            _ => span,
        };
        self.map.values.insert(pointer.clone(), span);
        Some(pointer)
    }

    fn in_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }

    fn scalar_span(&self, mark: Marker, value: &str, style: TScalarStyle) -> (usize, usize) {
        let start = self.byte_offset(mark.index());
        let rest = &self.text[start..];
        let len = match style {
            TScalarStyle::Plain if rest.starts_with(value) => value.len(),
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let quote = rest.chars().next().unwrap_or('"');
                rest[1..].find(quote).map_or_else(|| line_len(rest), |i| i + 2)
            }
            _ => line_len(rest),
        };
        (start, start + len.max(1).min(rest.len()))
    }

    fn line_span(&self, char_index: usize) -> (usize, usize) {
        let start = self.byte_offset(char_index);
        let rest = &self.text[start..];
        (start, start + line_len(rest).max(1).min(rest.len()))
    }
}

/// The character index of the first character that is not blank, a comment or a document
/// marker.
fn first_content(text: &str) -> usize {
    let mut index = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            index += line.chars().count();
            continue;
        }
        index += line.chars().count() - trimmed.chars().count();
        break;
    }
    index
}

fn line_len(rest: &str) -> usize {
    rest.find('\n').unwrap_or(rest.len())
}

impl Builder<'_> {
    /// yaml-rust2 counts its marker index in characters; spans are in bytes.
    fn byte_offset(&self, chars: usize) -> usize {
        let (mut char_index, mut byte_index) = self.cursor.get();
        if chars < char_index {
            (char_index, byte_index) = (0, 0);
        }
        let rest = &self.text[byte_index..];
        let byte = rest.char_indices().nth(chars - char_index).map_or(self.text.len(), |(i, _)| byte_index + i);
        self.cursor.set((chars, byte));
        byte
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.skip_depth > 0 {
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skip_depth += 1,
                Event::MappingEnd | Event::SequenceEnd => self.skip_depth -= 1,
                _ => {}
            }
            return;
        }
        match event {
            Event::Scalar(value, style, ..) => {
                self.enter_value(mark, Some((&value, style)));
            }
            Event::Alias(_) => {
                if self.in_key_position() {
                    // An aliased key has no text to point at; give it an unnamed slot.
                    if let Some(Frame::Mapping { key, .. }) = self.stack.last_mut() {
                        *key = Some(String::new());
                    }
                } else {
                    self.enter_value(mark, None);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.in_key_position() {
                    self.skip_depth = 1;
                    if let Some(Frame::Mapping { key, .. }) = self.stack.last_mut() {
                        *key = Some(String::new());
                    }
                    return;
                }
                let pointer = self.enter_value(mark, None).unwrap_or_default();
                self.stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Mapping { pointer, key: None }
                } else {
                    Frame::Sequence { pointer, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// A reader for the block-YAML subset profiles are written in, several times faster than
/// serde_yaml. It returns `None` for anything outside the subset, and the caller falls back
/// to serde_yaml: flow collections (but one-line sequences of plain words and the empty
/// mapping `{}`), block scalars (but literal and folded ones, clipped or stripped), anchors,
/// aliases, tags, directives, document markers, multi-line plain scalars, escapes in
/// double-quoted scalars, tabs, CR, duplicate keys, keys that are not plain or quoted strings,
/// and plain scalars that could resolve to anything but a string, `null`, a boolean or a small
/// decimal integer. Where it returns a value, that value is the one serde_yaml gives (a test
/// compares them).
mod fast;
pub(crate) mod tree;
pub(crate) use fast::Declined;

#[cfg(test)]
mod tests {
    /// The fast reader gives serde_yaml's value or declines, on every YAML file in the
    /// repository and on variations of them.
    #[test]
    fn the_fast_reader_agrees_with_serde_yaml_or_declines() {
        fn slow(text: &str) -> Option<serde_json::Value> {
            let yaml: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
            super::to_json(yaml, &mut String::new()).ok()
        }
        fn check(text: &str, accepted: &mut usize) {
            if let Some(fast) = super::fast::Reader::new(text).and_then(|r| r.read::<serde_json::Value>().ok()) {
                *accepted += 1;
                assert_eq!(Some(fast), slow(text), "fast and serde_yaml differ on:\n{text}");
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let mut dirs = vec![root.join("profiles"), root.join("tests"), root.join("crates")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() && !path.ends_with("target") {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "snap") {
                    files.push(path);
                }
            }
        }
        let mut accepted = 0;
        let mut cases = 0;
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else { continue };
            // Snapshots hold generated profiles after their header.
            let text = text.split("\n---\n").last().unwrap_or(&text).to_owned();
            for part in text.split("\n=== ") {
                let part = part.split_once('\n').map_or(part, |(_, rest)| rest);
                for variant in
                    [part.to_owned(), part.replace(": ", ":  "), part.replace("- ", "-   "), format!("{part}\nx: 1")]
                {
                    cases += 1;
                    check(&variant, &mut accepted);
                }
                // Truncations.
                for end in (0..part.len()).step_by(part.len() / 150 + 1).filter(|e| part.is_char_boundary(*e)) {
                    cases += 1;
                    check(&part[..end], &mut accepted);
                }
            }
        }
        for odd in [
            "a: 1\nb: 01\nc: 0x10\nd: -1\ne: 1.5\nf: .inf\ng: ~\nh: Null\ni: yes\nj: 'x''y'\nk: \"q\"",
            "a:\n- 1\n- b: 2\n  c: [3]\n",
            "a:\n  - x\n  -\n  - y: 'z' # c\n",
            "a: b # c\nd: 'e' #f\ng: \"h\"#i\n",
            "'k': v\n\"l\": w\nm n: o p\n",
            "a: b\n  c: d\n",
            "a:\n b: 1\n  c: 2\n",
            "a: 1\na: 2\n",
            "a: é\nb: ñ: x\n",
            "a: 9a8b\nb: .default\nc: .5\nd: 1e5\ne: 0x1f\nf: 12:30\ng: 1f\nh: .inf\ni: .Inf\nj: 1_0\nk: 2024-01-01\n",
            "a: 9a8b\nb: .default\ng: 1f\nf: 12:30\n",
            // Block scalars and flow sequences.
            "a: >-\n  x\n  y\n\n  z\n\n\n  w\nb: 1\n",
            "a: |\n  x\n   y\n  # not a comment\n\n  z\nb: [c, d]\n",
            "a:\n- >\n  folded\n  text\n- |-\n  lit\n- k: >-\n    v\n  j: 1\n- >-\n  last",
            "a: >\n  x\n  y\n\n\nb: |\n  x\n\n",
            "a: >-\n    x\n  y\n",
            "a: >\n  x \n  y\n",
            "a: |\n  x\n    \n  y\n",
            "a: >-\n\n  x\n",
            "a: >-\n  x\n   y\n",
            "a: >+\n  x\n\nb: |2\n   x\n",
            "a: >-\nb: 1\n",
            "a: x # c: >-\n\nb: 1\n",
            "a: x # c: >-\n  y\n",
            "a: >-\n  x\n# c\n  y\n",
            "a: >-\n  x\n# c\nb: y\n",
            "a: [ ]\nb: []\nc: [1, true, null, x.y, /p]\n",
            "a: [a, , b]\nb: [a, 'b']\nc: [a, [b]]\nd: [a: b]\ne: [a] # c\nf: [a,b,]\n",
            "- [a, b]\n",
            "a:\n  - [a, b]\n  - [c]\n",
            "a: {}\nb:\n- {}\n- {}\nc: {x: {}}\nd: { }\ne: {}#c\nf: {} # c\n",
        ] {
            cases += 1;
            check(odd, &mut accepted);
        }
        // Plain scalars that may or may not be numbers, alone as a value and as a key (a
        // document with one declined value is declined whole, so each stands alone).
        for scalar in [
            "00000000-0000-0000-0000-000000000000",
            "2024-01-01",
            "1-2",
            "1-",
            "0-0",
            "1-e5",
            "1e5-3",
            "1e-5",
            "1E+5",
            "1e-",
            "1e",
            "1.2.3",
            "1..2",
            ".5-1",
            "-1",
            "1_000",
            "+",
            "++",
            "+-",
            "+x",
            "+ x",
            "+inf",
            "+nan",
            "+Infinity",
            "+.inf",
            "+.5",
            "+1",
            "+1e5",
            "+0x1",
            "+_",
        ] {
            for text in [format!("a: {scalar}\n"), format!("{scalar}: a\n"), format!("a: [{scalar}]\n")] {
                cases += 1;
                check(&text, &mut accepted);
            }
        }
        eprintln!("the fast reader read {accepted} of {cases} cases");
        assert!(accepted > 100, "the fast reader declined almost everything ({accepted} of {cases})");
    }

    use super::*;

    #[test]
    fn parses_to_json_with_numeric_keys() {
        let value = parse("a: 1\nb:\n  401: x\n").expect("valid YAML");
        assert_eq!(value, serde_json::json!({"a": 1, "b": {"401": "x"}}));
    }

    #[test]
    fn duplicate_keys_are_located_errors() {
        let err = parse("a: 1\nb:\n  c: 2\n  c: 3\n").expect_err("duplicate key");
        assert_eq!(err.code, Code::DuplicateKey);
        let span = err.span.expect("located");
        assert_eq!((span.line, span.column), (4, 3), "the second occurrence, the one to remove");
        assert_eq!(err.labels[0].span.line, 3, "the first is labelled");
    }

    #[test]
    fn tags_are_refused_with_a_pointer() {
        let err = parse("a:\n  b: !secret x\n").expect_err("tag");
        assert_eq!(err.code, Code::UnsupportedYaml);
        assert_eq!(err.pointer.as_deref(), Some("/a/b"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text).expect_err("billion laughs");
        assert_eq!(err.code, Code::UnsupportedYaml);
    }

    #[test]
    fn brackets_in_a_quoted_block_scalar_are_text() {
        // A flow mapping keeps it off the fast reader; the guide text has 200 braces.
        let text = format!("a: {{b: 1}}\ntitle: \"{}\"\nplain: '{}'\n", "{{ x }}".repeat(100), "[[".repeat(100));
        assert!(parse(&text).is_ok(), "{:?}", parse(&text).err());
        // In flow context they still count, however they are quoted.
        let text = format!("a: [\"{}\"]\n", "{{".repeat(100));
        assert_eq!(parse(&text).expect_err("counted").code, Code::UnsupportedYaml);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&text).expect_err("too deep");
        assert_eq!(err.code, Code::UnsupportedYaml);
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_libyaml_sees_it() {
        let text = format!("b: {}", "[".repeat(40_000));
        let err = parse(&text).expect_err("too deep");
        assert_eq!(err.code, Code::UnsupportedYaml);
        assert_eq!(err.span.map(|s| s.column), Some(4 + MAX_FLOW_DEPTH));
        // Closing brackets inside quoted scalars do not close anything.
        let quoted = format!("b: {}{}", "[\"]\",".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse(&quoted).expect_err("too deep").code, Code::UnsupportedYaml);
        let anchored = format!("b: {}", "[&a ']', ".repeat(10_000));
        assert_eq!(parse(&anchored).expect_err("too deep").code, Code::UnsupportedYaml);
        let fake_quote = format!("d: |\n  \"\nk: {}", "[".repeat(200));
        assert_eq!(parse(&fake_quote).expect_err("too deep").code, Code::UnsupportedYaml);
        // Brackets in block text are text.
        assert!(parse(&format!("d: {}\n", "see [note ".repeat(200))).is_ok());
        // Brackets that close again do not add up.
        assert!(parse(&"a: [[1]]\n".repeat(1000)).is_err_and(|e| e.code == Code::DuplicateKey));
    }

    #[test]
    fn source_map_locates_keys_and_values() {
        let text = "id: x\nactions:\n  create_case:\n    scopes: [api, \"web\"]\n";
        let map = SourceMap::build(text);
        let span = map.value(text, "/actions/create_case/scopes/1").expect("located");
        assert_eq!((span.line, span.column), (4, 19));
        assert_eq!(&text[span.start..span.end], "\"web\"");
        let key = map.key(text, "/actions/create_case").expect("located");
        assert_eq!(&text[key.start..key.end], "create_case");
        // An unknown pointer falls back to its nearest ancestor.
        assert_eq!(map.value(text, "/actions/create_case/nope"), map.value(text, "/actions/create_case"));
    }

    #[test]
    fn source_map_counts_characters_not_bytes() {
        let text = "name: \"é\"\nid: x\n";
        let map = SourceMap::build(text);
        let span = map.value(text, "/id").expect("located");
        assert_eq!(&text[span.start..span.end], "x");
    }
}
