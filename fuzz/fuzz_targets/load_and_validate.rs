//! Fuzzes loading, `extends` resolution, validation and diagnostic rendering.
//!
//! Each input is used twice:
//! 1. alone, as `fuzz.yaml`, through `keyway_manifest::load_str`;
//! 2. as `child.yaml` next to a valid parent `base.yaml` (id `base`), so inputs with
//!    `extends: base` exercise merging, `replace` pointers and placement.
//! Every diagnostic is then rendered for humans and serialized to JSON.

#![no_main]

use keyway_diagnostics::{Color, render_human};
use keyway_manifest::Loaded;
use libfuzzer_sys::fuzz_target;

/// A minimal complete profile, copied from `tests/lib.rs` (`MINIMAL`).
const BASE: &str = r#"id: base
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

fn render_all(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        let source = loaded.source_text(d.file.as_deref().unwrap_or(""));
        let human = render_human(d, source, Color::Never);
        std::hint::black_box(human);
        let json = serde_json::to_string(d).expect("a diagnostic always serializes");
        std::hint::black_box(json);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // One file on its own.
    let mut loaded = keyway_manifest::load_str("fuzz.yaml", text);
    keyway_validate::check_loaded(&mut loaded);
    render_all(&loaded);

    // A child of a valid parent.
    let mut loader = keyway_manifest::Loader::new();
    loader.add_str("base.yaml", BASE);
    loader.add_str("child.yaml", text);
    let mut loaded = loader.load();
    keyway_validate::check_loaded(&mut loaded);
    render_all(&loaded);
});
