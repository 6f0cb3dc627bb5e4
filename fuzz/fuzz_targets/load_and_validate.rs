//! Fuzzes loading, `extends` resolution, validation and diagnostic rendering.
//!
//! Each input is used twice:
//! 1. alone, as `fuzz.yaml`, through `keyway_manifest::load_str`;
//! 2. as `child.yaml` next to a valid parent `base.yaml` (id `base`), so inputs with
//!    `extends: base` exercise merging, `replace` pointers and placement.
//! Every diagnostic is then rendered for humans and serialized to JSON, and the loader's fast
//! path is compared with its full path on the input: alone, as a child of `base`, as a child
//! of a child of it (`extends: mid`), and as the middle of such a chain (a `leaf` extends it).

#![no_main]

use keyway_diagnostics::{Color, render_human};
use keyway_manifest::Loaded;
use libfuzzer_sys::fuzz_target;

/// A minimal complete profile, shared with the workspace tests; in block style, so the fast
/// path types it and its children take the overlay. Written out once.
fn base() -> &'static str {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BASE.get_or_init(keyway_tests::minimal_block)
}

/// A valid child of `base`, for inputs that extend it (`extends: mid`).
const MID: &str = "id: mid\nextends: base\nname: Mid\n";

/// A valid child of the input (whose id must then be `fuzz`, after its file).
const LEAF: &str = "id: leaf\nextends: fuzz\nname: Leaf\n";

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

    // The fast paths give exactly what the full path gives: on the file alone, and as a
    // child of a valid parent (named `base.yaml`, so its `extends: base` finds it).
    for files in [
        &[("fuzz.yaml", text)][..],
        &[("fuzz.yaml", text), ("base.yaml", base())],
        &[("fuzz.yaml", text), ("mid.yaml", MID), ("base.yaml", base())],
        &[("leaf.yaml", LEAF), ("fuzz.yaml", text), ("base.yaml", base())],
    ] {
        if let Err(problem) = keyway_manifest::compare_fast_path(files) {
            panic!("{problem}");
        }
    }

    // One file on its own.
    let mut loaded = keyway_manifest::load_str("fuzz.yaml", text);
    keyway_validate::check_loaded(&mut loaded);
    render_all(&loaded);

    // A child of a valid parent.
    let mut loader = keyway_manifest::Loader::new();
    loader.add_str("base.yaml", base());
    loader.add_str("child.yaml", text);
    let mut loaded = loader.load();
    keyway_validate::check_loaded(&mut loaded);
    render_all(&loaded);
});
