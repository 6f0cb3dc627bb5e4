//! Human rendering: the source lines with the span underlined, like rustc.

use crate::{Diagnostic, Severity};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// Whether to emit ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Plain text (files, pipes, snapshots).
    Never,
    /// ANSI styles (terminals).
    Always,
}

/// Renders one diagnostic. `source` is the text of `diagnostic.file`, when it is at hand;
/// without it (or without a span, or when the lines are too long to show) the header,
/// location and help are printed.
pub fn render_human(diagnostic: &Diagnostic, source: Option<&str>, color: Color) -> String {
    let level = match diagnostic.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Note => Level::NOTE,
    };
    let path = diagnostic.file.as_deref().unwrap_or("<input>");
    let title = level.primary_title(diagnostic.message.as_str()).id(diagnostic.code.as_str());
    let mut group = Group::with_title(title);
    let location_note;
    // Labels a few lines before the primary span are shown in the same excerpt.
    let excerpt_span = diagnostic.span.map(|span| {
        let near = diagnostic
            .labels
            .iter()
            .filter(|l| l.file.is_none() && l.span.start < span.start && span.line - l.span.line <= 8);
        near.fold(span, |acc, l| crate::Span { start: l.span.start, line: l.span.line, column: l.span.column, ..acc })
    });
    let excerpt = source.zip(excerpt_span).and_then(|(text, span)| Excerpt::of(text, span));
    let mut shown_labels = Vec::new();
    match (&excerpt, diagnostic.span) {
        (Some(excerpt), Some(span)) => {
            let mut snippet = Snippet::source(excerpt.text)
                .line_start(excerpt.first_line)
                .path(path)
                .fold(true)
                .annotation(AnnotationKind::Primary.span(excerpt.relative(span.start..span.end.max(span.start))));
            for (i, label) in diagnostic.labels.iter().enumerate() {
                if label.file.is_none() && excerpt.contains(label.span.start..label.span.end) {
                    shown_labels.push(i);
                    snippet = snippet.annotation(
                        AnnotationKind::Context
                            .span(excerpt.relative(label.span.start..label.span.end))
                            .label(label.message.as_str()),
                    );
                }
            }
            group = group.element(snippet);
        }
        _ => {
            location_note = format!("in {}", diagnostic.location());
            group = group.element(Level::NOTE.message(location_note.as_str()));
        }
    }
    let pointer_note;
    if let Some(pointer) = diagnostic.pointer.as_deref().filter(|p| !p.is_empty()) {
        pointer_note = format!("at {pointer}");
        group = group.element(Level::NOTE.message(pointer_note.as_str()));
    }
    let other_labels: Vec<String> = diagnostic
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| !shown_labels.contains(i))
        .map(|(_, l)| {
            let file = l.file.as_deref().or(diagnostic.file.as_deref()).unwrap_or("<input>");
            format!("{}: {file}:{}:{}", l.message, l.span.line, l.span.column)
        })
        .collect();
    for label in &other_labels {
        group = group.element(Level::NOTE.message(label.as_str()));
    }
    if let Some(help) = &diagnostic.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    let renderer = match color {
        Color::Never => Renderer::plain(),
        Color::Always => Renderer::styled(),
    };
    renderer.render(&[group])
}

/// The whole lines around a span, so rendering costs what the excerpt costs, not the file.
struct Excerpt<'a> {
    text: &'a str,
    /// Byte offset of `text` in the file.
    offset: usize,
    first_line: usize,
}

impl<'a> Excerpt<'a> {
    /// Lines longer than this (minified, generated files) are not shown; the location is.
    const MAX_BYTES: usize = 4096;
    /// Long multi-line spans show their first lines.
    const MAX_LINES: usize = 12;

    fn of(text: &'a str, span: crate::Span) -> Option<Excerpt<'a>> {
        let start = span.start.min(text.len());
        let end = span.end.clamp(start, text.len());
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return None;
        }
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        if let Some((i, _)) = text[line_start..line_end].match_indices('\n').nth(Self::MAX_LINES) {
            line_end = line_start + i;
        }
        if line_end - line_start > Self::MAX_BYTES {
            return None;
        }
        Some(Excerpt { text: &text[line_start..line_end], offset: line_start, first_line: span.line })
    }

    fn contains(&self, range: std::ops::Range<usize>) -> bool {
        range.start >= self.offset && range.end <= self.offset + self.text.len()
    }

    fn relative(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let clamp = |i: usize| i.saturating_sub(self.offset).min(self.text.len());
        clamp(range.start)..clamp(range.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, span_of};

    #[test]
    fn renders_the_lines_around_the_span_with_their_numbers() {
        let text = "id: x\nname: y\nnme: z\nauth: {}\n";
        let start = text.find("nme").expect("in text");
        let d = Diagnostic::new(Code::UnknownKey, "unknown key `nme`")
            .in_file("p.yaml")
            .with_span(span_of(text, start, start + 3))
            .with_help("did you mean `name`?");
        let out = render_human(&d, Some(text), Color::Never);
        assert!(out.contains("--> p.yaml:3:1"), "{out}");
        assert!(out.contains("3 | nme: z"), "{out}");
        assert!(!out.contains("auth"), "only the lines of the span: {out}");
        assert!(out.contains("help: did you mean `name`?"), "{out}");
    }

    #[test]
    fn very_long_lines_are_not_printed() {
        let text = format!("id: x\nname: {{{}}}\n", "a: 1, ".repeat(2000));
        let d = Diagnostic::new(Code::UnknownKey, "unknown key").in_file("p.yaml").with_span(span_of(&text, 20, 21));
        let out = render_human(&d, Some(&text), Color::Never);
        assert!(out.contains("in p.yaml:2:"), "{out}");
        assert!(out.len() < 500, "{out}");
    }
}
