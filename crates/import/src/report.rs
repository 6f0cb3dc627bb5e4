//! The import report: every entry of the input, converted or skipped, and why.

use std::collections::BTreeMap;
use std::fmt::Write;

/// What an import did with each entry of its input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// What was imported and by which command, for the report's heading.
    pub source: String,
    /// Entries in the input.
    pub total: usize,
    /// Entries whose auth mode (after aliases) is OAuth 2.0: authorization code (Nango's MCP
    /// servers with fixed endpoints included) or client credentials.
    pub oauth2_total: usize,
    /// Converted entries, by input key.
    pub converted: Vec<Converted>,
    /// Entries not converted, by input key.
    pub skipped: Vec<Skipped>,
    /// Warnings `keyway validate` gives on the generated profiles (errors are never left in).
    pub warnings: usize,
}

/// An entry that became a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The entry's key in the input.
    pub key: String,
    /// The profile id.
    pub id: String,
    /// Whether the entry is an OAuth 2.0 one.
    pub oauth2: bool,
    /// The profile's `auth.kind`: `oauth2`, `api_key`, `basic`, `token_exchange`, `signed_jwt` or `none`.
    pub kind: &'static str,
    /// The parent profile, when the entry was an alias converted to `extends`.
    pub extends: Option<String>,
    /// What was adapted on the way: `(kind, detail)`.
    pub notes: Vec<(String, String)>,
}

/// An entry that did not become a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The entry's key in the input.
    pub key: String,
    /// Whether the entry is an OAuth 2.0 one.
    pub oauth2: bool,
    /// The reason, short and shared by entries skipped for the same cause.
    pub reason: String,
    /// The specifics for this entry.
    pub detail: String,
}

impl Report {
    /// Converted OAuth 2.0 entries.
    pub fn oauth2_converted(&self) -> usize {
        self.converted.iter().filter(|c| c.oauth2).count()
    }

    /// Converted entries by `auth.kind`, in the order of [`KINDS`](Self::KINDS), kinds with
    /// none left out.
    pub fn by_kind(&self) -> Vec<(&'static str, usize)> {
        Self::KINDS
            .iter()
            .map(|k| (*k, self.converted.iter().filter(|c| c.kind == *k).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The credential kinds an import can produce.
    pub const KINDS: [&'static str; 6] = ["oauth2", "api_key", "basic", "token_exchange", "signed_jwt", "none"];

    /// Skipped entries grouped by reason, reasons sorted by how many entries they cover
    /// (most first), then by name.
    pub fn by_reason(&self) -> Vec<(&str, Vec<&Skipped>)> {
        let mut groups: BTreeMap<&str, Vec<&Skipped>> = BTreeMap::new();
        for s in &self.skipped {
            groups.entry(s.reason.as_str()).or_default().push(s);
        }
        let mut groups: Vec<(&str, Vec<&Skipped>)> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        groups
    }

    /// Notes on converted entries grouped by kind: `(kind, [(key, detail)])`.
    pub fn by_note(&self) -> Vec<(&str, Vec<(&str, &str)>)> {
        let mut groups: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for c in &self.converted {
            for (kind, detail) in &c.notes {
                groups.entry(kind.as_str()).or_default().push((c.key.as_str(), detail.as_str()));
            }
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        groups
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} entries: {} converted ({} of {} OAuth 2.0 entries, {} as `extends`), {} not converted; {} warning(s)\n",
            self.total,
            self.converted.len(),
            self.oauth2_converted(),
            self.oauth2_total,
            self.converted.iter().filter(|c| c.extends.is_some()).count(),
            self.skipped.len(),
            self.warnings,
        );
        let kinds: Vec<String> = self.by_kind().iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(out, "  converted by kind: {}", kinds.join(", "));
        for (reason, entries) in self.by_reason() {
            let _ = writeln!(out, "  {:>4}  {reason}", entries.len());
        }
        out
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Import report\n");
        let _ = writeln!(out, "{}\n", self.source);
        let _ = writeln!(out, "| | entries |\n|---|---:|");
        let _ = writeln!(out, "| in the input | {} |", self.total);
        let _ = writeln!(
            out,
            "| OAuth 2.0 (authorization code, including MCP servers', and client credentials; aliases included) | {} |",
            self.oauth2_total
        );
        let _ = writeln!(out, "| converted | {} |", self.converted.len());
        let _ = writeln!(out, "| converted, OAuth 2.0 | {} |", self.oauth2_converted());
        for (kind, n) in self.by_kind() {
            let _ = writeln!(out, "| converted as `auth.kind: {kind}` | {n} |");
        }
        let _ = writeln!(
            out,
            "| converted as `extends` of another | {} |",
            self.converted.iter().filter(|c| c.extends.is_some()).count()
        );
        let _ = writeln!(out, "| not converted | {} |", self.skipped.len());
        let _ = writeln!(out, "| warnings from `keyway validate` on the output | {} |", self.warnings);
        let _ = writeln!(out, "\n## Not converted, by reason\n");
        for (reason, entries) in self.by_reason() {
            let oauth2 = entries.iter().filter(|s| s.oauth2).count();
            let _ = writeln!(out, "### {reason} ({}; OAuth 2.0: {oauth2})\n", entries.len());
            for s in entries {
                if s.detail.is_empty() {
                    let _ = writeln!(out, "- `{}`", s.key);
                } else {
                    let _ = writeln!(out, "- `{}`: {}", s.key, s.detail);
                }
            }
            out.push('\n');
        }
        let notes = self.by_note();
        if !notes.is_empty() {
            let _ = writeln!(out, "## Converted with adaptations, by kind\n");
            for (kind, entries) in notes {
                let _ = writeln!(out, "### {kind} ({})\n", entries.len());
                for (key, detail) in entries {
                    let _ = writeln!(out, "- `{key}`: {detail}");
                }
                out.push('\n');
            }
        }
        let _ = writeln!(out, "## Converted\n");
        for c in &self.converted {
            match &c.extends {
                Some(parent) => {
                    let _ = writeln!(out, "- `{}` → `{}` (extends `{parent}`)", c.key, c.id);
                }
                None => {
                    let _ = writeln!(out, "- `{}` → `{}`", c.key, c.id);
                }
            }
        }
        out
    }
}
