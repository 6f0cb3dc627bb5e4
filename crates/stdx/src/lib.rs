//! General-purpose helpers keyway's crates share, in the spirit of rust-analyzer's `stdx`:
//! nothing here knows about profiles, OAuth or any other keyway notion.
//!
//! - [`read_limited`], [`read_limited_text`]: the bounded reader every file read outside the
//!   profile loader goes through (regular files only, opened without blocking, to a stated
//!   limit), and [`open_without_blocking`], the open both share; [`replace_file_privately`],
//!   the one way a file holding secrets is rewritten (a private file renamed over it);
//! - [`parallel_map`]: an order-keeping map over a slice on scoped threads;
//! - [`closest`]: did-you-mean suggestions by edit distance, bounded for hostile input;
//! - [`escape_html`]: the one HTML escaper;
//! - [`random_alphanumeric`]: the one generator of random identifiers and secrets.

mod fs;
mod html;
mod ids;
mod parallel;
mod suggest;

pub use fs::{open_without_blocking, read_limited, read_limited_text, replace_file_privately};
pub use html::{escape_html, escape_html_into};
pub use ids::random_alphanumeric;
pub use parallel::parallel_map;
pub use suggest::closest;
