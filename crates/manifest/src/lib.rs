//! keyway's profile model and loader.
//!
//! A provider profile is a YAML manifest describing how to connect to a provider through
//! OAuth 2.0. This crate owns the format:
//! - [`model`]: the typed profile (serde + schemars), the single source of truth for the
//!   format and its JSON Schema;
//! - [`load_paths`], [`load_str`], [`Loader`]: text to resolved, typed profiles, with every
//!   problem reported as a located [`keyway_diagnostics::Diagnostic`];
//! - [`profile_schema`]: the JSON Schema, checked against each file as written.
//!
//! ```
//! let loaded = keyway_manifest::load_str("demo.yaml", "id: demo\nname: Demo\n");
//! assert!(loaded.has_errors()); // no environments, no auth
//! assert_eq!(loaded.diagnostics[0].code.as_str(), "KW0202");
//! ```

mod files;
mod load;
mod merge;
pub mod model;
mod overlay;
mod schema;
mod yaml;

pub use files::MAX_WALK_DEPTH;
pub use load::{
    Loaded, LoadedProfile, Loader, MAX_EXTENDS_DEPTH, Source, SourceId, compare_fast_path, load_paths, load_str,
};
pub use schema::{profile_schema, profile_schema_json};
pub use yaml::{MAX_SOURCE_BYTES, SourceMap, escape_pointer_token, parse_value as parse_yaml};
