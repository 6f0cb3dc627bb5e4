//! Human rendering: the source line with the span underlined, like rustc.

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
/// without it (or without a span) only the header, location and help are printed.
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
    match (source, diagnostic.span) {
        (Some(text), Some(span)) => {
            let mut snippet = Snippet::source(text)
                .path(path)
                .fold(true)
                .annotation(AnnotationKind::Primary.span(span.start..span.end.max(span.start)));
            for label in diagnostic.labels.iter().filter(|l| l.file.is_none()) {
                snippet = snippet.annotation(
                    AnnotationKind::Context.span(label.span.start..label.span.end).label(label.message.as_str()),
                );
            }
            group = group.element(snippet);
        }
        _ => {
            location_note = format!("in {}", diagnostic.location());
            group = group.element(Level::NOTE.message(location_note.as_str()));
        }
    }
    let pointer_note;
    if let Some(pointer) = &diagnostic.pointer {
        if !pointer.is_empty() {
            pointer_note = format!("at {pointer}");
            group = group.element(Level::NOTE.message(pointer_note.as_str()));
        }
    }
    let other_file_labels: Vec<String> = diagnostic
        .labels
        .iter()
        .filter_map(|l| l.file.as_ref().map(|f| format!("{}: {f}:{}:{}", l.message, l.span.line, l.span.column)))
        .collect();
    for label in &other_file_labels {
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
