//! keyway's checks beyond the format, and the tenant layer.
//!
//! [`keyway_manifest`] guarantees that every loaded profile parsed, matched the JSON Schema and
//! resolved its `extends`. This crate checks what a schema cannot (`KW04xx`): names that must
//! refer to things that exist, templates that must parse and see only what the profile can
//! supply, endpoints that must be https, parameter patterns that must be safe in a URL. It
//! also owns the tenant layer (`KW05xx`): a connection's [`Selection`] checked against its
//! profile, and [`plan_scopes`], the one scope resolution the guide and the runtime share.
//!
//! ```no_run
//! let report = keyway_validate::validate_paths(&["profiles"]);
//! for d in &report.diagnostics {
//!     eprintln!("{d}");
//! }
//! ```

mod patterns;
mod rules;
mod selection;
pub mod templates;

pub use selection::{
    PlannedScope, ScopePlan, Selection, check_parameters, check_selection, needs_refresh, plan_scopes,
    redirect_uri_problem,
};

use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::{Loaded, LoadedProfile};
use std::path::Path;

/// Loads files and directories and runs every check. The returned [`Loaded`] carries all
/// diagnostics, from loading and from the rules, located and in source order.
pub fn validate_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut loaded = keyway_manifest::load_paths(paths);
    check_loaded(&mut loaded);
    loaded
}

/// Runs the semantic rules over every loaded profile and adds their diagnostics, located.
pub fn check_loaded(loaded: &mut Loaded) {
    let mut found = Vec::new();
    for profile in &loaded.profiles {
        for d in check_profile(profile) {
            found.push(loaded.locate_in_chain(d, &profile.chain));
        }
    }
    // A rule about inherited content fires for the parent and for each child, at the same
    // place in the parent's file: report it once.
    let mut seen: std::collections::HashSet<(Code, Option<String>, Option<usize>, String)> =
        loaded.diagnostics.iter().map(key).collect();
    for d in found {
        if seen.insert(key(&d)) {
            loaded.diagnostics.push(d);
        }
    }
    let order: Vec<String> = loaded.sources.iter().map(|s| s.name.clone()).collect();
    loaded.diagnostics.sort_by_key(|d| {
        (d.file.as_ref().and_then(|f| order.iter().position(|o| o == f)), d.span.map(|s| s.start), d.code)
    });
}

fn key(d: &Diagnostic) -> (Code, Option<String>, Option<usize>, String) {
    (d.code, d.file.clone(), d.span.map(|s| s.start), d.message.clone())
}

/// The semantic rules for one resolved profile. Diagnostics carry pointers; locate them with
/// [`Loaded::locate_in_chain`].
pub fn check_profile(loaded: &LoadedProfile) -> Vec<Diagnostic> {
    rules::check(&loaded.profile)
}
