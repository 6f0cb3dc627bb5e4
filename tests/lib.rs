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

/// `../shared/` beside the project root, when it is there (it is on CI and developer machines;
/// a bare clone elsewhere may not have it).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = root().parent()?.join("shared");
    dir.join("seeds").is_dir().then_some(dir)
}

/// The seed document whose file name starts with `prefix` (`001`).
pub fn seed(prefix: &str) -> Option<String> {
    let dir = shared_dir()?.join("seeds");
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().starts_with(prefix))?;
    std::fs::read_to_string(entry.path()).ok()
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
