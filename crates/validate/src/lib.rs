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

pub mod action_paths;
pub mod credentials;
mod links;
mod memo;
mod patterns;
mod rules;
mod selection;
mod template_shape;
pub mod templates;
pub mod urls;

pub use patterns::{compile as compile_pattern, url_safety};

/// Forgets what validation keeps by content (compiled patterns, URL-safety verdicts, parsed and
/// compiled templates), so the next load does that work again, as a fresh process would. For
/// benchmarks of startup.
#[doc(hidden)]
pub fn forget_kept_work() {
    patterns::forget();
    urls::forget();
    templates::forget();
}

/// Whether `value` matches a profile's regular expression, compiled with keyway's limits
/// (false when it does not compile).
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    patterns::compile(pattern, false).is_ok_and(|re| re.is_match(value))
}

pub use selection::{
    PlannedScope, ScopePlan, Selection, check_parameters, check_selection, needs_refresh, plan_scopes,
};

use keyway_diagnostics::{Code, Diagnostic, Label};
use keyway_manifest::{Loaded, LoadedProfile};
use std::collections::HashSet;
use std::path::Path;

/// Loads files and directories and runs every check. The returned [`Loaded`] carries all
/// diagnostics, from loading and from the rules, located and in source order.
pub fn validate_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    validate_paths_with(paths, 0)
}

/// [`validate_paths`] on `threads` threads (0: as many as the machine has). The result does
/// not depend on it.
pub fn validate_paths_with<P: AsRef<Path>>(paths: &[P], threads: usize) -> Loaded {
    let mut loader = keyway_manifest::Loader::new();
    loader.threads(threads);
    for p in paths {
        loader.add_path(p.as_ref());
    }
    let mut loaded = loader.load();
    check_loaded_with(&mut loaded, threads);
    loaded
}

/// Runs the semantic rules over every loaded profile and adds their diagnostics, located.
pub fn check_loaded(loaded: &mut Loaded) {
    check_loaded_with(loaded, 0);
}

/// [`check_loaded`] on `threads` threads (0: as many as the machine has).
pub fn check_loaded_with(loaded: &mut Loaded, threads: usize) {
    // Each rule runs on every resolved profile, so a problem in inherited content is found for
    // the parent and again for each child, at the same place in the parent's file.
    let per_profile = keyway_stdx::parallel_map(&loaded.profiles, threads, check_profile);
    let mut found: Vec<(usize, Diagnostic)> = Vec::new();
    for (i, diagnostics) in per_profile.into_iter().enumerate() {
        for d in diagnostics {
            found.push((i, loaded.locate_in_chain(d, &loaded.profiles[i].chain)));
        }
    }
    let own_file = |i: usize| loaded.sources[loaded.profiles[i].chain[0]].name.clone();
    // What each file's own profile says about it.
    let native: HashSet<Key> =
        found.iter().filter(|(i, d)| d.file.as_deref() == Some(own_file(*i).as_str())).map(|(_, d)| key(d)).collect();
    let mut seen: HashSet<Key> = loaded.diagnostics.iter().map(key).collect();
    for (i, d) in found {
        let own = own_file(i);
        let d = if d.file.as_deref() == Some(own.as_str()) || native.contains(&key(&d)) {
            d
        } else {
            // Only the child has this problem (it changed something the parent's content
            // depends on): report it in the child, pointing at what it inherits.
            blame_child(loaded, i, d)
        };
        if seen.insert(key(&d)) {
            loaded.diagnostics.push(d);
        }
    }
    let order: Vec<String> = loaded.sources.iter().map(|s| s.name.clone()).collect();
    loaded.diagnostics.sort_by_key(|d| {
        (d.file.as_ref().and_then(|f| order.iter().position(|o| o == f)), d.span.map(|s| s.start), d.code)
    });
}

/// Moves a diagnostic located in a parent's file to the child that caused it: the primary
/// location becomes the child's `extends`, and the inherited place a label.
fn blame_child(loaded: &Loaded, profile: usize, d: Diagnostic) -> Diagnostic {
    let child = &loaded.profiles[profile];
    let source = &loaded.sources[child.chain[0]];
    let mut moved = d.clone();
    moved.message = format!("{} (in `{}`)", d.message, child.profile.id);
    moved.file = Some(source.name.clone());
    moved.span = source.source_map().value(&source.text, "/extends");
    moved.labels.clear();
    if let (Some(file), Some(span)) = (d.file, d.span) {
        moved.labels.push(Label { file: Some(file), span, message: "inherited from here".to_owned() });
    }
    moved
}

type Key = (Code, Option<String>, Option<usize>, String);

fn key(d: &Diagnostic) -> Key {
    (d.code, d.file.clone(), d.span.map(|s| s.start), d.message.clone())
}

/// The semantic rules for one resolved profile. Diagnostics carry pointers; locate them with
/// [`Loaded::locate_in_chain`].
pub fn check_profile(loaded: &LoadedProfile) -> Vec<Diagnostic> {
    rules::check(&loaded.profile)
}
