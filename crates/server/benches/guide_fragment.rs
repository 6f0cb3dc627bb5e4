//! How long the guide page's fragment endpoint (`GET /guide/{profile}/fragment`) takes on the
//! server, HTTP aside: the query read, the guide rendered, its HTML, the canonical URL, and the
//! fragment template, for the all-34-actions Salesforce Service Cloud guide, the largest of the
//! bundled profiles. The profiles are loaded once, outside the timed part.
//!
//!   cargo bench -p keyway-server --bench guide_fragment
//!
//! The target is under 1 ms.

use divan::{Bencher, black_box};
use keyway_manifest::model::Profile;
use keyway_server::views::Pages;
use keyway_server::views::guide::guide_result;
use std::path::Path;
use std::sync::OnceLock;

fn main() {
    divan::main();
}

struct Fixture {
    profile: Profile,
    query: String,
    pages: Pages,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let loaded = keyway_validate::validate_paths(&[dir]);
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        let profile =
            loaded.profile("salesforce-service-cloud").expect("the Service Cloud profile loads").profile.clone();
        // The form's shape, as the page's script sends it: every box ticked, every choice made.
        let mut query: Vec<String> = profile.actions.keys().map(|a| format!("actions={a}")).collect();
        query.extend(
            [
                "env=sandbox",
                "variant=external_client_app",
                "pkce=off",
                "refresh_secret=on",
                "callback=https%3A%2F%2Fapp.example.com%2Foauth%2Fcallback",
                "app=Acme+Integration",
                "scopes=",
                "param.my_domain=acme.my.salesforce.com",
                "sep=comma",
            ]
            .map(str::to_owned),
        );
        assert_eq!(profile.actions.len(), 34);
        Fixture { profile, query: query.join("&"), pages: Pages::new() }
    })
}

/// The whole server-side answer: model and template.
#[divan::bench]
fn fragment(bencher: Bencher) {
    let f = fixture();
    let base = "https://connect.example.com/guide/salesforce-service-cloud";
    let callback = "https://connect.example.com/v1/connect/oauth2/salesforce-service-cloud/callback";
    let check = guide_result(&f.profile, base, callback, &f.query);
    assert!(check.errors.is_empty(), "{:?}", check.errors.iter().map(|e| &e.message).collect::<Vec<_>>());
    bencher.bench(|| {
        let result = guide_result(black_box(&f.profile), base, callback, black_box(&f.query));
        f.pages.guide_result(&f.profile.id, &result)
    });
}
