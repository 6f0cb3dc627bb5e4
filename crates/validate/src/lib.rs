//! keyway's checks beyond the format: semantic rules over resolved profiles.
//!
//! [`keyway_manifest`] already guarantees that every loaded profile parsed, matched the JSON
//! Schema and resolved its `extends`. The rules here check what a schema cannot: that names
//! refer to things that exist. Each rule has its own code (`KW04xx`).
//!
//! ```no_run
//! let report = keyway_validate::validate_paths(&["profiles"]);
//! for d in &report.diagnostics {
//!     eprintln!("{d}");
//! }
//! ```

use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::{Loaded, LoadedProfile, escape_pointer_token};
use std::path::Path;

/// Loads files and directories and runs every check. The returned [`Loaded`] carries all
/// diagnostics, from loading and from the rules, located and in source order.
pub fn validate_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut loaded = keyway_manifest::load_paths(paths);
    check_loaded(&mut loaded);
    loaded
}

/// Runs the semantic rules over every loaded profile and adds their diagnostics.
pub fn check_loaded(loaded: &mut Loaded) {
    let mut found = Vec::new();
    for profile in &loaded.profiles {
        for d in check_profile(profile) {
            found.push(loaded.locate_in_chain(d, &profile.chain));
        }
    }
    loaded.diagnostics.extend(found);
    let order: Vec<String> = loaded.sources.iter().map(|s| s.name.clone()).collect();
    loaded.diagnostics.sort_by_key(|d| {
        (d.file.as_ref().and_then(|f| order.iter().position(|o| o == f)), d.span.map(|s| s.start), d.code)
    });
}

/// The semantic rules for one resolved profile. Diagnostics carry pointers; locate them with
/// [`Loaded::locate_in_chain`].
pub fn check_profile(loaded: &LoadedProfile) -> Vec<Diagnostic> {
    let profile = &loaded.profile;
    let mut out = Vec::new();
    // KW0401: every scope an action names is in the catalogue.
    for (action_id, action) in &profile.actions {
        for (i, scope) in action.scopes.iter().enumerate() {
            if !profile.scopes.contains_key(scope) {
                let mut d = Diagnostic::new(
                    Code::UnknownScope,
                    format!("action `{action_id}` needs scope `{scope}`, which is not in the scope catalogue"),
                )
                .at_pointer(format!("/actions/{}/scopes/{i}", escape_pointer_token(action_id)));
                d = match keyway_manifest::closest(scope, profile.scopes.keys().map(String::as_str)) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help(format!(
                        "declare it under `scopes:` or use one of the {} declared scopes",
                        profile.scopes.len()
                    )),
                };
                out.push(d);
            }
        }
    }
    out
}
