//! `keyway import oidc`: a draft profile from an issuer's metadata (fetched) or a file.

use keyway_diagnostics::{Color, render_human};
use keyway_import::oidc::{Options, draft, metadata_urls};
use keyway_runtime::{HttpClient, HttpOptions};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Metadata documents are a few kilobytes; Microsoft's is the longest known, under 4 KiB.
const MAX_METADATA: u64 = 1024 * 1024;

pub fn run(
    source: &str,
    id: Option<String>,
    dir: Option<&Path>,
    timeout: Duration,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    let fetched = source.starts_with("https://") || source.starts_with("http://");
    if fetched && !keyway_import::oidc::is_usable_url(source) {
        say!("keyway: `{source}` is not https (http is accepted for loopback hosts only)");
        return Ok(ExitCode::from(2));
    }
    let (text, from) = if fetched {
        match fetch(source, timeout) {
            Ok(found) => found,
            Err(message) => {
                say!("keyway: {message}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        match read_file(Path::new(source)) {
            Ok(text) => (text, source.to_owned()),
            Err(message) => {
                say!("keyway: {message}");
                return Ok(ExitCode::from(2));
            }
        }
    };
    let options = Options { id, expected_issuer: fetched.then(|| source.to_owned()), source: from.clone() };
    let draft = match draft(&text, &options) {
        Ok(draft) => draft,
        Err(e) => {
            say!("keyway: {from}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for d in &draft.diagnostics {
        say!("{}\n", render_human(d, Some(&draft.yaml), Color::Never));
    }
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{}.yaml", draft.id));
            std::fs::write(&path, &draft.yaml)?;
            say!("wrote {}", path.display());
        }
        None => out.write_all(draft.yaml.as_bytes())?,
    }
    say!("Still to fill in or check (also at the top of the draft):");
    for item in &draft.todo {
        say!("  - {item}");
    }
    let errors = draft.diagnostics.iter().any(|d| d.is_error());
    Ok(if errors { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The metadata of `issuer`: OpenID Connect discovery, else RFC 8414's well-known URI.
fn fetch(issuer: &str, timeout: Duration) -> Result<(String, String), String> {
    let options = HttpOptions { timeout, max_response_bytes: MAX_METADATA as usize, ..HttpOptions::default() };
    let http = HttpClient::new(&options).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut tried = Vec::new();
    for url in metadata_urls(issuer) {
        match rt.block_on(http.get(&url)) {
            Ok((200, body)) => {
                let text = String::from_utf8(body).map_err(|_| format!("{url}: the metadata is not UTF-8"))?;
                return Ok((text, url));
            }
            Ok((status, _)) => tried.push(format!("{url}: HTTP {status}")),
            Err(e) => tried.push(format!("{url}: {e}")),
        }
    }
    Err(format!("no metadata for {issuer}: {}", tried.join("; ")))
}

fn read_file(path: &Path) -> Result<String, String> {
    keyway_stdx::read_limited_text(path, MAX_METADATA).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
