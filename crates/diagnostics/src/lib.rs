//! The one diagnostic type of keyway.
//!
//! Every problem the engine reports (a YAML syntax error, a schema violation, an `extends`
//! cycle, an unknown scope) is a [`Diagnostic`]: a stable [`Code`], a [`Severity`], a message,
//! where it is (file, JSON pointer into the profile, and a resolved [`Span`] once located), and
//! help. Codes are listed in [`codes`] and documented in `docs/diagnostics.md`; a test keeps the
//! two in step.

mod codes;
mod render;
mod sarif;

pub use codes::Code;
pub use render::{Color, render_human};
pub use sarif::render_sarif;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The profile cannot be used.
    Error,
    /// The profile works but something is likely wrong.
    Warning,
    /// Background for another diagnostic.
    Note,
}

/// A located range of source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte (`end >= start`).
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, counted in characters.
    pub column: usize,
    /// 1-based line of `end`.
    pub end_line: usize,
    /// 1-based column of `end` (one past the last character), counted in characters.
    pub end_column: usize,
}

/// A secondary location with its own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// The file it is in, when not the diagnostic's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Where.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// One problem found in a profile or a connector configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, `KW0102`.
    pub code: Code,
    /// Error, warning or note.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file, as the user named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// JSON pointer (RFC 6901) to the offending value in the profile: `/actions/create_case/scopes/0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The primary location in `file`, once located.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Secondary locations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity and nothing located yet.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            file: None,
            pointer: None,
            span: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Sets the file.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Sets the JSON pointer.
    pub fn at_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    /// Sets the primary span.
    pub fn with_span(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, label: Label) -> Self {
        self.labels.push(label);
        self
    }

    /// Overrides the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` or as much of it as is known.
    pub fn location(&self) -> String {
        match (&self.file, &self.span) {
            (Some(f), Some(s)) => format!("{f}:{}:{}", s.line, s.column),
            (Some(f), None) => f.clone(),
            (None, Some(s)) => format!("<input>:{}:{}", s.line, s.column),
            (None, None) => "<input>".to_owned(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    /// One line: `file:line:col: error[KW0102]: message`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        write!(f, "{}: {sev}[{}]: {}", self.location(), self.code, self.message)
    }
}

/// A growing list of diagnostics, as every stage of the engine pushes them.
pub type Diagnostics = Vec<Diagnostic>;

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Computes a span covering `start..end` of `text`, with 1-based line and character column.
/// Offsets past the end or inside a UTF-8 sequence are clamped to a valid boundary.
pub fn span_of(text: &str, start: usize, end: usize) -> Span {
    let start = clamp_to_boundary(text, start);
    let end = clamp_to_boundary(text, end.max(start));
    let (line, column) = line_column(text, start);
    let (end_line, end_column) = line_column(text, end);
    Span { start, end, line, column, end_line, end_column }
}

/// Line starts and column checkpoints of a text, so spans of many offsets are computed
/// without rescanning the text each time (even when it is one long line).
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    line_starts: Vec<usize>,
    /// `(byte offset, 0-based column)` pairs, sorted, at every line start and every
    /// [`Self::STRIDE`] bytes within long lines.
    checkpoints: Vec<(usize, usize)>,
}

impl LineIndex {
    const STRIDE: usize = 1024;

    /// Indexes `text` in one pass.
    pub fn new(text: &str) -> LineIndex {
        let mut index = LineIndex { line_starts: vec![0], checkpoints: vec![(0, 0)] };
        let mut column = 0;
        for (i, c) in text.char_indices() {
            if c == '\n' {
                index.line_starts.push(i + 1);
                index.checkpoints.push((i + 1, 0));
                column = 0;
            } else {
                column += 1;
                let next = i + c.len_utf8();
                if next - index.checkpoints.last().map_or(0, |c| c.0) >= Self::STRIDE {
                    index.checkpoints.push((next, column));
                }
            }
        }
        index
    }

    /// The span of `start..end` in `text` (the text this index was built from), clamped to
    /// valid boundaries.
    pub fn span(&self, text: &str, start: usize, end: usize) -> Span {
        let start = clamp_to_boundary(text, start);
        let end = clamp_to_boundary(text, end.max(start));
        let (line, column) = self.line_column(text, start);
        let (end_line, end_column) = self.line_column(text, end);
        Span { start, end, line, column, end_line, end_column }
    }

    fn line_column(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|s| *s <= offset);
        let at = self.checkpoints.partition_point(|(b, _)| *b <= offset).saturating_sub(1);
        let (byte, column) = self.checkpoints.get(at).copied().unwrap_or((0, 0));
        (line, column + text[byte..offset].chars().count() + 1)
    }
}

fn clamp_to_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and character column of byte `offset` (a char boundary) in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// The byte offset of 1-based `line` and character `column` in `text`, clamped to the text.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match text[offset..].find('\n') {
            Some(i) => offset += i + 1,
            None => return text.len(),
        }
    }
    let line_text = &text[offset..];
    let line_end = line_text.find('\n').unwrap_or(line_text.len());
    offset + line_text[..line_end].char_indices().nth(column.saturating_sub(1)).map_or(line_end, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_counts_lines_and_characters() {
        let text = "a: 1\nbé: x\n";
        let start = text.find('x').expect("x is in the text");
        let span = span_of(text, start, start + 1);
        assert_eq!((span.line, span.column, span.end_line, span.end_column), (2, 5, 2, 6));
        assert_eq!(offset_of(text, 2, 5), start);
    }

    #[test]
    fn line_index_agrees_with_span_of_on_long_lines() {
        let text = format!("a: 1\n{}é{}\nend\n", "x".repeat(3000), "y".repeat(2000));
        let index = LineIndex::new(&text);
        for offset in [0, 3, 5, 1500, 3005, 3007, 4000, 5007, text.len() - 2] {
            let offset = clamp_to_boundary(&text, offset);
            assert_eq!(index.span(&text, offset, offset + 1), span_of(&text, offset, offset + 1), "{offset}");
        }
    }

    #[test]
    fn span_clamps_out_of_range_offsets() {
        let span = span_of("é", 1, 99);
        assert_eq!((span.start, span.end), (0, 2));
    }
}
