//! Helpers shared by the workspace-level tests.

use keyway_diagnostics::{Code, Diagnostic};
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The bundled profiles directory.
pub fn profiles_dir() -> PathBuf {
    root().join("profiles")
}

/// `../shared/` beside the project root, for `check` (what a test checks against it, in a
/// few words). It is always there under CI (`CI=true`), so its absence fails the test there;
/// in a bare clone the test goes on without the check, which is recorded (see
/// [`unmade_check`]) for scripts/test.sh to list at the end of the run.
pub fn shared_dir(check: &str) -> Option<PathBuf> {
    let dir = root().parent().map_or_else(|| PathBuf::from("../shared"), |p| p.join("shared"));
    if dir.join("seeds").is_dir() {
        return Some(dir);
    }
    unmade_check(check, &format!("{} is not at hand", dir.display()));
    None
}

/// The seed document whose file name starts with `prefix` (`001`), for `check`; `None` only
/// when `../shared/` is not at hand ([`shared_dir`]). A seed missing from it fails.
pub fn seed(prefix: &str, check: &str) -> Option<String> {
    let dir = shared_dir(check)?.join("seeds");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let entry = entries
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no seed {prefix} in {}", dir.display()));
    Some(std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display())))
}

/// Where the checks a run could not make are listed, one a line (scripts/test.sh empties it
/// first and prints it last).
pub fn unmade_checks_file() -> PathBuf {
    root().join("target/unmade-checks.txt")
}

/// A check this run cannot make, and why: a failure under CI (`CI=true`), else a line in
/// [`unmade_checks_file`].
pub fn unmade_check(check: &str, why: &str) {
    record_unmade_check(check, why, std::env::var("CI").is_ok_and(|v| v == "true"), &unmade_checks_file());
}

fn record_unmade_check(check: &str, why: &str, ci: bool, file: &Path) {
    assert!(!ci, "{check}: {why}, and under CI it must be");
    use std::io::Write as _;
    let written = file.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
        // One write of one line: lines from tests running at once do not interleave.
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
        out.write_all(format!("{check} ({why})\n").as_bytes())
    });
    if let Err(e) = written {
        panic!("{check}: {why}, and it cannot be recorded in {}: {e}", file.display());
    }
}

/// `(code, line, column)` of each diagnostic, for compact assertions.
pub fn located(diagnostics: &[Diagnostic]) -> Vec<(Code, usize, usize)> {
    diagnostics.iter().map(|d| (d.code, d.span.map_or(0, |s| s.line), d.span.map_or(0, |s| s.column))).collect()
}

/// A fresh temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `target/tmp/<name>-<pid>-<n>`.
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = root().join("target/tmp").join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A minimal complete profile, for tests that need a valid parent.
pub const MINIMAL: &str = r#"id: base
name: Base
environments:
  production:
    label: Production
    default: true
    vars: {host: login.example.com}
auth:
  grants: [authorization_code, refresh_token]
  endpoints:
    authorize: "https://{{ env.host }}/authorize"
    token: "https://{{ env.host }}/token"
  pkce: required
  default_scopes: [read, offline]
scopes:
  read: {label: Read}
  write: {label: Write}
  offline: {label: Offline, grants_refresh: true}
actions:
  list_things: {name: List Things, method: GET, path: /things, scopes: [read]}
  create_thing: {name: Create Thing, method: POST, path: /things, scopes: [write]}
  delete_thing: {name: Delete Thing, method: DELETE, path: "/things/{id}", scopes: [write]}
guide:
  sections:
    create_app:
      title: Create the app
      steps:
        sign_in: {title: Sign in}
        open_console: {title: Open the console}
        save: {title: Save}
"#;

/// A profile written out complete in the block style the importer writes (serde_yaml's): the
/// fast reader's subset, so the fast path types it when its file is named after its id.
/// Empty mappings come out in flow style (`tokens: {}`), which the fast reader declines; they
/// say what leaving them out says, so they are left out.
pub fn block_style(profile: &keyway_manifest::model::Profile) -> Option<String> {
    let yaml = serde_yaml::to_string(profile).ok()?;
    Some(yaml.lines().filter(|l| !l.ends_with(": {}")).map(|l| format!("{l}\n")).collect())
}

/// [`MINIMAL`] in block style ([`block_style`]): the fast path types it, so its children take
/// the overlay (the fuzz target's parent).
pub fn minimal_block() -> String {
    let loaded = keyway_manifest::load_str("base.yaml", MINIMAL);
    loaded.profiles.first().and_then(|p| block_style(&p.profile)).expect("the minimal profile loads")
}

/// Splits a multi-file example into `(name, text)` pairs at `# file: NAME` lines; text before
/// the first such line belongs to `default_name`.
pub fn split_files(example: &str, default_name: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in example.split_inclusive('\n') {
        match line.trim_end().strip_prefix("# file: ") {
            Some(name) => files.push((name.trim().to_owned(), String::new())),
            None => {
                if files.is_empty() {
                    files.push((default_name.to_owned(), String::new()));
                }
                if let Some((_, text)) = files.last_mut() {
                    text.push_str(line);
                }
            }
        }
    }
    // A preamble of comments (`# expect: ...`) before the first `# file:` is not a file.
    if files.len() > 1 && files[0].1.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        files.remove(0);
    }
    files
}

/// Renders diagnostics for a snapshot: a compact located list, then the human rendering.
pub fn snapshot_text(loaded_sources: &dyn Fn(&str) -> Option<String>, diagnostics: &[Diagnostic]) -> String {
    use keyway_diagnostics::{Color, render_human};
    let mut out = String::new();
    for d in diagnostics {
        let at = d.span.map(|s| format!(":{}:{}", s.line, s.column)).unwrap_or_default();
        out.push_str(&format!(
            "{} {:?} {}{at} {} | {}\n",
            d.code,
            d.severity,
            d.file.as_deref().unwrap_or("-"),
            d.pointer.as_deref().map_or("-", |p| if p.is_empty() { "(root)" } else { p }),
            d.message
        ));
    }
    out.push_str("\n---\n\n");
    for d in diagnostics {
        let source = d.file.as_deref().and_then(loaded_sources);
        out.push_str(&render_human(d, source.as_deref(), Color::Never));
        out.push_str("\n\n");
    }
    out
}

/// The bundled profiles, loaded and validated once per test binary; they must be clean.
pub fn bundled() -> &'static keyway_manifest::Loaded {
    static LOADED: std::sync::OnceLock<keyway_manifest::Loaded> = std::sync::OnceLock::new();
    LOADED.get_or_init(|| {
        let loaded = keyway_validate::validate_paths(&[profiles_dir()]);
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        loaded
    })
}

/// A bundled profile by id.
pub fn bundled_profile(id: &str) -> &'static keyway_manifest::model::Profile {
    &bundled().profile(id).unwrap_or_else(|| panic!("profile `{id}` loads")).profile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmade_check_is_a_line_outside_ci_and_a_failure_under_it() {
        let dir = TempDir::new("unmade");
        let file = dir.path().join("deeper/unmade-checks.txt");
        record_unmade_check("the seeds' quotes", "../shared is not at hand", false, &file);
        record_unmade_check("the facts' scopes", "../shared is not at hand", false, &file);
        assert_eq!(
            std::fs::read_to_string(&file).expect("written"),
            "the seeds' quotes (../shared is not at hand)\nthe facts' scopes (../shared is not at hand)\n"
        );
        let under_ci = std::panic::catch_unwind(|| record_unmade_check("x", "y", true, &file));
        assert!(under_ci.is_err(), "under CI an unmade check fails");
        assert_eq!(std::fs::read_to_string(&file).expect("written").lines().count(), 2, "and is not listed");
    }
}
