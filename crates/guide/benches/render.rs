//! How long a guide takes to render: the all-34-actions Salesforce Service Cloud guide, the
//! largest selection of the bundled profiles. The profiles are loaded and validated once,
//! outside the timed part.
//!
//!   cargo bench -p keyway-guide --bench render
//!
//! The target is under 100 µs for `render` + `to_markdown`.

use divan::{Bencher, black_box};
use keyway_guide::{Guide, GuideRequest, render};
use keyway_manifest::model::Profile;
use std::path::Path;
use std::sync::OnceLock;

fn main() {
    divan::main();
}

struct Fixture {
    profile: &'static Profile,
    request: GuideRequest,
    guide: Guide<'static>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let loaded = keyway_validate::validate_paths(&[dir]);
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        // A guide borrows its profile; the benchmark's profile lives as long as the process.
        let profile: &'static Profile = Box::leak(Box::new(
            loaded.profile("salesforce-service-cloud").expect("the Service Cloud profile loads").profile.clone(),
        ));
        let request = GuideRequest {
            actions: profile.actions.keys().cloned().collect(),
            callback_url: Some("https://app.example.com/oauth/callback".to_owned()),
            app_name: Some("Acme Integration".to_owned()),
            ..GuideRequest::default()
        };
        assert_eq!(request.actions.len(), 34);
        let guide = render(profile, &request).expect("the guide renders");
        Fixture { profile, request, guide }
    })
}

/// `render` alone: conditions, scope plan, templates.
#[divan::bench]
fn render_guide(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| render(black_box(f.profile), black_box(&f.request)));
}

/// `render` and then `to_markdown`: what `keyway guide` does for the default format.
#[divan::bench]
fn render_and_markdown(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| render(black_box(f.profile), black_box(&f.request)).map(|g| g.to_markdown()));
}

/// `to_markdown` alone, on a rendered guide.
#[divan::bench]
fn markdown_only(bencher: Bencher) {
    let f = fixture();
    bencher.bench(|| black_box(&f.guide).to_markdown());
}

/// `to_html` alone, on a rendered guide: the standalone page and the fragment.
#[divan::bench(args = [true, false])]
fn html_only(bencher: Bencher, standalone: bool) {
    let f = fixture();
    bencher.bench(|| black_box(&f.guide).to_html(standalone));
}
