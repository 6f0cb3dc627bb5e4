//! Fuzzes templates: validation (parsing, the variables read, the bounds on what reaches
//! the engine, the check that URLs insert parameters as typed) and rendering, with deep
//! inputs. The input is `[n_lo, n_hi, a \0 b \0 c]`, and the template is `a`, then `b`
//! repeated `n` times (up to 65,535), then `c`: libFuzzer finds `{{ 1`, ` + 1`, ` }}` and
//! the template holds tens of thousands of operators, which a byte-by-byte search would not
//! reach.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The guide context of the bundled Salesforce profile with every action selected: every
/// variable a guide template can read.
fn context() -> &'static minijinja::Value {
    static CONTEXT: OnceLock<minijinja::Value> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let profile = keyway_tests::bundled_profile("salesforce");
        let actions: Vec<String> = profile.actions.keys().cloned().collect();
        let selection = keyway_validate::Selection { actions: actions.clone(), ..Default::default() };
        let (plan, _) = keyway_validate::plan_scopes(profile, &selection);
        let scopes = keyway_validate::templates::scope_entries(profile, &plan);
        let target = keyway_validate::templates::GuideTarget {
            environment: "production",
            variant: None,
            plan: &plan,
            scopes: &scopes,
            actions: &actions,
            callback_url: "https://platform.example/oauth/callback",
            app_name: "Fuzz",
            refresh_sends_secret: true,
            sends_pkce: true,
        };
        keyway_validate::templates::guide_context(profile, &target)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[lo, hi], rest)) = data.split_first_chunk::<2>().map(|(n, rest)| (n, rest)) else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let mut parts = text.splitn(3, '\0');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let n = usize::from(u16::from_le_bytes([lo, hi]));
    if b.len().saturating_mul(n) > 4 * 1024 * 1024 {
        return;
    }
    let template = format!("{a}{}{c}", b.repeat(n));

    // Rendered as guide text is: an error or a string, never a crash.
    let _ = keyway_validate::templates::render(&template, context());

    // Validated where a profile holds it: guide text, an error fix, and an endpoint (where
    // the URL checks run). As JSON strings, which YAML reads as double-quoted scalars.
    let Ok(quoted) = serde_json::to_string(&template) else { return };
    let profile = keyway_tests::MINIMAL
        .replace("title: Save", &format!("title: {quoted}"))
        .replace("token: \"https://{{ env.host }}/token\"", &format!("token: {quoted}"));
    let mut loaded = keyway_manifest::load_str("base.yaml", &profile);
    keyway_validate::check_loaded(&mut loaded);
    for d in &loaded.diagnostics {
        std::hint::black_box(keyway_diagnostics::render_human(d, Some(&profile), keyway_diagnostics::Color::Never));
    }
});
