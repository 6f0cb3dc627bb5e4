//! keyway-tests' integration tests, one binary: the bundled profiles, the seed documents,
//! inheritance, bad input, the loader's fast paths and docs/diagnostics.md.

mod bad_input;
mod bundled_profiles;
mod corpus;
mod diagnostics_doc;
mod fast_path;
mod guide_fidelity;
mod guide_html;
mod guides;
mod hostile;
mod inheritance;
mod schema;
