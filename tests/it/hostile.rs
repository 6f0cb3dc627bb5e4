//! Hostile input, round two: each class of input that once crashed, hung, shadowed a profile
//! or slipped a URL past the checks, generated here at several sizes (far past every limit
//! too), each with its expected code and a snapshot of what is reported.
//!
//! The sizes are made at run time; nothing large is committed. Each case runs on a test
//! thread's ordinary 2 MiB stack, where the unbounded engine overflowed at about 10,000
//! operators.

use keyway_diagnostics::Diagnostic;
use keyway_manifest::{Loaded, Loader, load_str};
use keyway_tests::{MINIMAL, TempDir};

/// What a load reports, one line a diagnostic, long messages cut (a message may quote a
/// megabyte of input back): `CODE file:line:col pointer | message`.
fn summary(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let at = d.span.map(|s| format!(":{}:{}", s.line, s.column)).unwrap_or_default();
            let mut message = d.message.clone();
            if message.chars().count() > 240 {
                message = format!("{}...", message.chars().take(240).collect::<String>());
            }
            // A pointer names a key, which may be a megabyte long too.
            let mut pointer = d.pointer.clone().unwrap_or_else(|| "-".to_owned());
            if pointer.chars().count() > 120 {
                pointer = format!("{}...", pointer.chars().take(120).collect::<String>());
            }
            format!("{} {}{at} {pointer} | {message}\n", d.code, d.file.as_deref().unwrap_or("-"))
        })
        .collect()
}

fn checked(loaded: Loaded) -> Loaded {
    let mut loaded = loaded;
    keyway_validate::check_loaded(&mut loaded);
    loaded
}

fn check_str(text: &str) -> Loaded {
    checked(load_str("base.yaml", text))
}

/// The codes reported, in order, without repeats.
fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in diagnostics {
        if !out.contains(&d.code.as_str()) {
            out.push(d.code.as_str());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Stack exhaustion: templates and `extends` chains.
// ---------------------------------------------------------------------------------------------

/// Long expressions of every shape that nests, at sizes just past the limit and far past it.
fn long_expressions(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("plus", format!("{{{{ 1{} }}}}", " + 1".repeat(n))),
        ("concat", format!("{{{{ 'a'{} }}}}", " ~ 'a'".repeat(n))),
        ("not", format!("{{{{ {}true }}}}", "not ".repeat(n))),
        ("negate", format!("{{{{ {}1 }}}}", "-".repeat(n))),
        ("filters", format!("{{{{ 'a'{} }}}}", " | lower".repeat(n))),
        ("attributes", format!("{{{{ env{} }}}}", ".id".repeat(n))),
        ("and", format!("{{% if true{} %}}x{{% endif %}}", " and true".repeat(n))),
        ("ternary", format!("{{{{ 1{} }}}}", " if true else 1".repeat(n))),
    ]
}

#[test]
fn long_template_expressions_are_refused_before_the_engine_sees_them() {
    // At the limit, a tag still renders.
    let fine = format!("{{{{ 1{} }}}}", " + 1".repeat(keyway_validate::templates::MAX_TAG_OPERATORS));
    let text = MINIMAL.replace("title: Save", &format!("title: \"{fine}\""));
    assert!(!check_str(&text).has_errors(), "{}", summary(&check_str(&text).diagnostics));
    let mut snapshot = String::new();
    for n in [201, 1_000, 10_000, 100_000] {
        for (shape, expression) in long_expressions(n) {
            // In guide text, an endpoint and an error fix: every kind of template.
            for (place, text) in [
                ("guide", MINIMAL.replace("title: Save", &format!("title: \"{expression}\""))),
                (
                    "endpoint",
                    MINIMAL.replace(
                        "token: \"https://{{ env.host }}/token\"",
                        &format!("token: \"https://{{{{ env.host }}}}/{expression}\""),
                    ),
                ),
                (
                    "fix",
                    format!(
                        "{MINIMAL}errors:\n  boom:\n    match: {{error: boom}}\n    kind: reauthorize\n    meaning: Boom.\n    fix: \"{expression}\"\n"
                    ),
                ),
            ] {
                let loaded = check_str(&text);
                let found = codes(&loaded.diagnostics);
                assert_eq!(found, ["KW0407"], "{shape} x{n} in {place}: {}", summary(&loaded.diagnostics));
                if n == 1_000 {
                    snapshot.push_str(&format!("## {shape} in {place}\n{}", summary(&loaded.diagnostics)));
                }
            }
        }
    }
    insta::assert_snapshot!(snapshot);
}

/// Found by the `templates` fuzz target: minijinja keeps columns in 16 bits, and a longer
/// line overflowed its lexer (a panic where overflow is checked).
#[test]
fn templates_longer_than_the_engine_can_locate_are_refused() {
    let context = minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"x": "y"})));
    let mut snapshot = String::new();
    for n in [32_768, 40_000, 100_000, 1_000_000] {
        for (shape, source) in [
            // What the fuzzer found, then the shapes around it. Plain substitutions
            // (`{{ x }}` alone) never reach the engine; a filter sends each to it.
            ("braces", format!("{}{{{{ notrname}}", "{ ".repeat(n))),
            ("text then tag", format!("{}{{{{ x | upper }}}}", "a".repeat(2 * n))),
            ("tag then text", format!("{{{{ x | upper }}}}{}", "a".repeat(2 * n))),
            ("many tags", "{{ x | upper }}".repeat(n / 7)),
            ("lines", format!("{}{{{{ x | upper }}}}", "\n".repeat(2 * n))),
        ] {
            let result = keyway_validate::templates::render(&source, &context);
            let error = result.as_ref().err().map(String::as_str).unwrap_or("rendered");
            assert!(error.contains("at most 65535"), "{shape} x{n}: {error}");
            // In block context, where a quoted scalar's braces are text to the YAML reader.
            let quoted = serde_json::to_string(&source).expect("json");
            let text = MINIMAL.replace("save: {title: Save}", &format!("save:\n          title: {quoted}"));
            let loaded = check_str(&text);
            assert_eq!(codes(&loaded.diagnostics), ["KW0407"], "{shape} x{n}: {}", summary(&loaded.diagnostics));
            if n == 40_000 {
                snapshot.push_str(&format!("## {shape}\n{}", summary(&loaded.diagnostics)));
            }
        }
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn rendering_refuses_what_validation_refuses() {
    // A service that renders a template it did not validate (the runtime's, the guide's) gets
    // an error, not a crash.
    let context = minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"profile": {"id": "x"}})));
    for n in [201, 50_000, 1_000_000] {
        for (shape, expression) in long_expressions(n) {
            let error = keyway_validate::templates::render(&expression, &context).expect_err(shape);
            assert!(error.contains("operators") || error.contains("bytes"), "{shape} x{n}: {error}");
        }
    }
}

/// A chain of `depth` children over the minimal profile: `c1` extends `base`, `c2` extends
/// `c1`, and so on; each adds a scope, so each level has something to merge.
fn chain(depth: usize) -> Loader {
    let mut loader = Loader::new();
    loader.add_str("base.yaml", MINIMAL);
    for i in 1..=depth {
        let parent = if i == 1 { "base".to_owned() } else { format!("c{}", i - 1) };
        loader.add_str(
            format!("c{i}.yaml"),
            format!("id: c{i}\nextends: {parent}\nscopes:\n  s{i}: {{label: S{i}, custom_only: true}}\n"),
        );
    }
    loader
}

#[test]
fn extends_chains_are_bounded_and_each_profile_past_the_bound_is_reported() {
    let limit = keyway_manifest::MAX_EXTENDS_DEPTH;
    let loaded = checked(chain(limit).load());
    assert!(!loaded.diagnostics.iter().any(|d| d.code.as_str() == "KW0307"), "{}", summary(&loaded.diagnostics));
    assert_eq!(loaded.profiles.len(), limit + 1);
    let mut snapshot = String::new();
    for depth in [limit + 1, limit + 5, 1_000, 10_000] {
        let loaded = checked(chain(depth).load());
        let too_deep: Vec<&Diagnostic> = loaded.diagnostics.iter().filter(|d| d.code.as_str() == "KW0307").collect();
        assert_eq!(too_deep.len(), depth - limit, "every profile past the bound is reported");
        assert_eq!(loaded.profiles.len(), limit + 1, "those within it still load");
        if depth == limit + 1 {
            snapshot = summary(&loaded.diagnostics);
        }
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn a_cycle_inside_a_long_chain_is_still_a_cycle() {
    let mut loader = chain(3);
    loader.add_str("x.yaml", "id: x\nextends: y\n");
    loader.add_str("y.yaml", "id: y\nextends: x\n");
    let loaded = checked(loader.load());
    assert_eq!(codes(&loaded.diagnostics), ["KW0302"], "{}", summary(&loaded.diagnostics));
}

// ---------------------------------------------------------------------------------------------
// 2. Inputs that hang: symlink loops, deep directories.
// ---------------------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn symlinks_back_up_are_walked_once_and_no_file_is_its_own_duplicate() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("symlink-loops");
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b/c")).expect("dirs");
    std::fs::write(root.join("base.yaml"), MINIMAL).expect("write");
    // Every level points back at the top and at itself: walked by path, that is 4^n paths.
    for level in ["a", "a/b", "a/b/c"] {
        for (i, target) in [root.to_path_buf(), root.join(level), root.join("a")].iter().enumerate() {
            symlink(target, root.join(level).join(format!("loop{i}"))).expect("symlink");
        }
    }
    // The same file by two names, and a link to a file elsewhere in the tree.
    symlink(root.join("base.yaml"), root.join("a/again.yaml")).expect("symlink");
    symlink(root.join("a/b"), root.join("b-again")).expect("symlink");
    let loaded = keyway_validate::validate_paths(&[root]);
    assert!(loaded.diagnostics.is_empty(), "{}", summary(&loaded.diagnostics));
    assert_eq!(loaded.profiles.len(), 1);
    // Named twice on the command line, by two spellings: read once.
    let loaded = keyway_validate::validate_paths(&[
        root.join("base.yaml"),
        root.join("a/../base.yaml"),
        root.join("a/again.yaml"),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{}", summary(&loaded.diagnostics));
}

#[test]
fn a_directory_deeper_than_the_walk_is_reported_not_skipped() {
    let dir = TempDir::new("deep-dirs");
    let mut deep = dir.path().to_path_buf();
    for i in 0..keyway_manifest::MAX_WALK_DEPTH + 3 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).expect("dirs");
    std::fs::write(deep.join("base.yaml"), MINIMAL).expect("write");
    let loaded = keyway_validate::validate_paths(&[dir.path()]);
    assert_eq!(codes(&loaded.diagnostics), ["KW0004"], "{}", summary(&loaded.diagnostics));
    assert!(loaded.diagnostics[0].message.contains("16 directories deep"), "{}", loaded.diagnostics[0].message);
    // Named directly, it is read.
    let loaded = keyway_validate::validate_paths(&[&deep]);
    assert!(loaded.diagnostics.is_empty(), "{}", summary(&loaded.diagnostics));
}

// ---------------------------------------------------------------------------------------------
// 3. Shadowed profiles.
// ---------------------------------------------------------------------------------------------

fn load_files(files: &[(&str, &str)]) -> Loaded {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.add_str(*name, *text);
    }
    checked(loader.load())
}

#[test]
fn a_profile_another_file_shadows_is_not_usable_nor_are_its_children() {
    let evil = MINIMAL.replace("login.example.com", "login.evil.example");
    let child = "id: child\nextends: base\n";
    let other = MINIMAL.replace("id: base", "id: other");
    let mut snapshot = String::new();
    for (case, files) in [
        (
            "duplicate after",
            vec![
                ("base.yaml", MINIMAL),
                ("shadow.yaml", evil.as_str()),
                ("child.yaml", child),
                ("other.yaml", other.as_str()),
            ],
        ),
        (
            "duplicate before",
            vec![
                ("a-shadow.yaml", evil.as_str()),
                ("base.yaml", MINIMAL),
                ("child.yaml", child),
                ("other.yaml", other.as_str()),
            ],
        ),
        (
            "unparsable file",
            vec![
                ("base.yaml", MINIMAL),
                ("broken.yaml", "id: [unclosed\n"),
                ("child.yaml", child),
                ("other.yaml", other.as_str()),
            ],
        ),
        (
            "file without an id",
            vec![
                ("base.yaml", MINIMAL),
                ("noid.yaml", "name: No id\n"),
                ("child.yaml", child),
                ("other.yaml", other.as_str()),
            ],
        ),
        (
            "error in the parent",
            vec![
                ("base.yaml", &MINIMAL.replace("scopes: [write]}\n  delete", "scopes: [wirte]}\n  delete")),
                ("child.yaml", child),
                ("other.yaml", other.as_str()),
            ],
        ),
    ] {
        let loaded = load_files(&files);
        assert!(loaded.usable("base").is_err(), "{case}: base");
        assert!(loaded.usable("child").is_err(), "{case}: child");
        let blocking = loaded.usable("base").err().unwrap_or_default();
        assert!(!blocking.is_empty(), "{case}: says why");
        snapshot.push_str(&format!("## {case}\n{}", summary(&blocking.into_iter().cloned().collect::<Vec<_>>())));
        let other_usable = loaded.usable("other").is_ok();
        // A file whose id is unknown could be `other` too; a known duplicate of `base` is not.
        assert_eq!(other_usable, !matches!(case, "unparsable file" | "file without an id"), "{case}: other");
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn a_child_with_an_empty_or_null_id_is_an_error_not_a_dropped_file() {
    let mut snapshot = String::new();
    for (case, child) in [
        ("empty", "id: ''\nextends: base\n"),
        ("null", "id: null\nextends: base\n"),
        ("tilde", "id: ~\nextends: base\n"),
        ("missing", "extends: base\n"),
        ("blank", "id: ' '\nextends: base\n"),
        ("number", "id: 7\nextends: base\n"),
    ] {
        let loaded = load_files(&[("base.yaml", MINIMAL), ("child.yaml", child)]);
        let on_child: Vec<Diagnostic> =
            loaded.diagnostics.iter().filter(|d| d.file.as_deref() == Some("child.yaml")).cloned().collect();
        assert!(on_child.iter().any(Diagnostic::is_error), "{case}: {}", summary(&loaded.diagnostics));
        snapshot.push_str(&format!("## {case}\n{}", summary(&on_child)));
    }
    insta::assert_snapshot!(snapshot);
}

// ---------------------------------------------------------------------------------------------
// 4. URLs walked around the checks.
// ---------------------------------------------------------------------------------------------

const WITH_PARAMETER: &str = "parameters:\n  tenant: {label: Tenant, pattern: '^[a-z0-9-]+$', example: acme}\n";

fn with_token_endpoint(endpoint: &str) -> String {
    format!(
        "{}{WITH_PARAMETER}",
        MINIMAL.replace("token: \"https://{{ env.host }}/token\"", &format!("token: \"{endpoint}\""))
    )
}

#[test]
fn a_parameter_transformed_inside_a_url_is_refused() {
    let mut snapshot = String::new();
    for endpoint in [
        "https://{{ params.tenant | replace('-', '.evil.example/') }}.example.com/token",
        "https://{{ params.tenant ~ '.evil.example' }}/token",
        "https://{{ params.tenant[0:] }}.example.com/token",
        "https://{{ '%s.evil.example' | format(params.tenant) }}/token",
        "https://{{ params['tenant'] }}.example.com/token",
        "https://{% set t = params.tenant %}{{ t }}.example.com/token",
        "https://{{ params.tenant.replace('a', '/') }}.example.com/token",
        &format!("https://{{{{ params.tenant{} }}}}.example.com/token", " | lower".repeat(150)),
    ] {
        let loaded = check_str(&with_token_endpoint(endpoint));
        assert!(codes(&loaded.diagnostics).contains(&"KW0418"), "{endpoint}: {}", summary(&loaded.diagnostics));
        snapshot.push_str(&summary(
            &loaded.diagnostics.iter().filter(|d| d.code.as_str() == "KW0418").cloned().collect::<Vec<_>>(),
        ));
    }
    for fine in
        ["https://{{ params.tenant }}.example.com/token", "https://{{ params.tenant or 'login' }}.example.com/token"]
    {
        let loaded = check_str(&with_token_endpoint(fine));
        assert!(!loaded.has_errors(), "{fine}: {}", summary(&loaded.diagnostics));
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn endpoints_with_user_information_fragments_or_internal_hosts_are_refused_by_validate() {
    let mut snapshot = String::new();
    for endpoint in [
        "https://login.example.com@evil.example/token",
        "https://user:secret@login.example.com/token",
        "https://login.example.com/token#frag",
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.1.2.3/token",
        "https://[fd12::1]/token",
        "https://[::ffff:192.168.0.1]/token",
        "https://metadata.google.internal/token",
        "https://intranet/token",
        "https://2130706433.example.com@10.0.0.1/token",
    ] {
        let loaded =
            check_str(&MINIMAL.replace("token: \"https://{{ env.host }}/token\"", &format!("token: \"{endpoint}\"")));
        assert_eq!(codes(&loaded.diagnostics), ["KW0409"], "{endpoint}: {}", summary(&loaded.diagnostics));
        snapshot.push_str(&summary(&loaded.diagnostics));
    }
    // The same through an environment variable, rendered: the check is on what renders.
    let loaded = check_str(&MINIMAL.replace("vars: {host: login.example.com}", "vars: {host: 'x@169.254.169.254'}"));
    assert!(codes(&loaded.diagnostics).contains(&"KW0409"), "{}", summary(&loaded.diagnostics));
    // Loopback stays allowed, for tests.
    let loaded = check_str(&MINIMAL.replace("https://{{ env.host }}/token", "http://127.0.0.1:8080/token"));
    assert!(!loaded.has_errors(), "{}", summary(&loaded.diagnostics));
    insta::assert_snapshot!(snapshot);
}

#[test]
fn redirect_uris_with_user_information_or_past_the_stated_limit_are_refused() {
    let loaded = check_str(&format!("{MINIMAL}limits:\n  callback_urls_max_chars: 60\n"));
    assert!(!loaded.has_errors(), "{}", summary(&loaded.diagnostics));
    let profile = &loaded.profiles[0].profile;
    let bounded = check_str(MINIMAL);
    let unbounded = &bounded.profiles[0].profile;
    let mut snapshot = String::new();
    let long = |n: usize| format!("https://app.example.com/{}", "a".repeat(n));
    for (uri, under) in [
        ("https://evil.example@app.example.com/cb".to_owned(), unbounded),
        ("https://app.example.com:x@evil.example/cb".to_owned(), unbounded),
        ("http://user@127.0.0.1:8080/cb".to_owned(), unbounded),
        (long(40), profile),
        (long(4_000), unbounded),
        (long(1_000_000), unbounded),
    ] {
        let selection = keyway_validate::Selection { redirect_uri: Some(uri.clone()), ..Default::default() };
        let (_, diagnostics) = keyway_validate::check_selection(under, &selection);
        assert_eq!(codes(&diagnostics), ["KW0507"], "{}", &uri[..uri.len().min(80)]);
        snapshot.push_str(&summary(&diagnostics));
    }
    insta::assert_snapshot!(snapshot);
}

// ---------------------------------------------------------------------------------------------
// 5. Unsafe output: links in guide text (the guide's own tests cover `guide --url` and the
//    app name).
// ---------------------------------------------------------------------------------------------

#[test]
fn guide_text_links_only_to_web_pages() {
    let with_text = |text: &str| {
        MINIMAL.replace(
            "save: {title: Save}",
            &format!("save:\n          title: Save\n          text: {}", serde_json::to_string(text).expect("json")),
        )
    };
    let mut snapshot = String::new();
    let long = format!("[x](javascript:{})", "a".repeat(100_000));
    for text in [
        "Open [the console](javascript:alert(document.cookie)).",
        "Open [the console]( <JaVaScRiPt:alert(1)> ).",
        "[console]: data:text/html;base64,PHNjcmlwdD4=\n\nSee [console].",
        "Or <vbscript:msgbox> here.",
        "<a href=\"file:///etc/passwd\">the file</a>",
        "<img src='javascript:alert(1)'>",
        "[sign in]({{ callback_url }})",
        "[relative](setup/app.html)",
        &long,
    ] {
        let loaded = check_str(&with_text(text));
        assert_eq!(
            codes(&loaded.diagnostics),
            ["KW0419"],
            "{}: {}",
            &text[..text.len().min(60)],
            summary(&loaded.diagnostics)
        );
        snapshot.push_str(&summary(&loaded.diagnostics));
    }
    for fine in [
        "See [Salesforce Help](https://help.salesforce.com/s/articleView?id=x) and <https://example.com>.",
        "Write to [support](mailto:help@example.com) or jump to [the top](#top).",
        "[sign in](https://{{ env.host }}/)",
        "a < b and 2<3: plain text, [not a link] (really)",
    ] {
        let loaded = check_str(&with_text(fine));
        assert!(!loaded.has_errors(), "{fine}: {}", summary(&loaded.diagnostics));
    }
    let docs = MINIMAL
        .replace("name: Base\n", "name: Base\ndocs:\n  - {title: Docs, url: 'https://user:pw@docs.example.com/'}\n");
    let loaded = check_str(&docs);
    assert_eq!(codes(&loaded.diagnostics), ["KW0419"], "{}", summary(&loaded.diagnostics));
    snapshot.push_str(&summary(&loaded.diagnostics));
    insta::assert_snapshot!(snapshot);
}

// ---------------------------------------------------------------------------------------------
// 6. YAML tags, anywhere.
// ---------------------------------------------------------------------------------------------

#[test]
fn yaml_tags_and_directives_are_refused_everywhere() {
    let mut snapshot = String::new();
    for (case, text) in [
        ("binary on a value", MINIMAL.replace("name: Base", "name: !!binary aGVsbG8=")),
        ("timestamp", MINIMAL.replace("name: Base", "name: !!timestamp 2001-12-14")),
        ("set", MINIMAL.replace("scopes:\n  read:", "scopes: !!set\n  read:")),
        ("python object", MINIMAL.replace("name: Base", "name: !!python/object:os.system x")),
        ("str on a value", MINIMAL.replace("name: Base", "name: !!str Base")),
        ("on a key", MINIMAL.replace("name: Base", "!!str name: Base")),
        ("local tag deep", MINIMAL.replace("label: Read", "label: !secret Read")),
        ("verbatim tag", MINIMAL.replace("name: Base", "name: !<tag:yaml.org,2002:str> Base")),
        ("on a sequence", MINIMAL.replace("default_scopes: [read, offline]", "default_scopes: !!seq [read, offline]")),
        ("on a flow item", MINIMAL.replace("default_scopes: [read, offline]", "default_scopes: [!!str read, offline]")),
        ("TAG directive", format!("%TAG !e! tag:example.com,2000:\n---\n{MINIMAL}")),
        ("YAML directive", format!("%YAML 1.2\n---\n{MINIMAL}")),
        ("second document", format!("{MINIMAL}---\nid: other\n")),
    ] {
        let loaded = check_str(&text);
        assert_eq!(codes(&loaded.diagnostics), ["KW0104"], "{case}: {}", summary(&loaded.diagnostics));
        snapshot.push_str(&format!("## {case}\n{}", summary(&loaded.diagnostics)));
    }
    insta::assert_snapshot!(snapshot);
}

// ---------------------------------------------------------------------------------------------
// 7. Sizes.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_reader_bounds_what_it_reads_and_names_the_limit() {
    let dir = TempDir::new("bounded-reads");
    for size in [0u64, 1, 1024, 1024 * 1024] {
        let path = dir.write("input", vec![b'x'; size as usize]);
        assert_eq!(keyway_stdx::read_limited(&path, 1024 * 1024).expect("within").len() as u64, size);
    }
    for (limit, size) in [(0u64, 1usize), (10, 11), (1024, 4096), (1024 * 1024, 3 * 1024 * 1024)] {
        let path = dir.write("input", vec![b'x'; size]);
        let error = keyway_stdx::read_limited(&path, limit).expect_err("past the limit");
        assert_eq!(error.to_string(), format!("larger than the limit of {limit} bytes"));
    }
    // A directory, or a FIFO, is not read (the FIFO would block forever).
    let error = keyway_stdx::read_limited(dir.path(), 10).expect_err("a directory");
    assert!(error.to_string().contains("regular") || error.kind() == std::io::ErrorKind::IsADirectory, "{error}");
    #[cfg(unix)]
    {
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(status.success());
        let error = keyway_stdx::read_limited(&fifo, 10).expect_err("a FIFO");
        assert_eq!(error.to_string(), "not a regular file");
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials other than OAuth 2.0: the new keys hold to the same classes.
// ---------------------------------------------------------------------------------------------

/// A complete API-key profile whose `auth` is `auth` (indented two spaces).
fn keyed(auth: &str) -> String {
    format!(
        "id: base\nname: Keyed\nenvironments:\n  production: {{label: Production, default: true, vars: {{host: api.example.com}}}}\nauth:\n{auth}api:\n  base_url: \"https://{{{{ env.host }}}}\"\n"
    )
}

#[test]
fn credential_keys_are_refused_with_located_codes_at_every_size() {
    let big = 200_000;
    let cases: Vec<(String, &str)> = vec![
        // Header names that are not names, and ones keyway frames the request with.
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply:\n    headers: {\"X Key\\r\\nHost\": \"{{ fields.k }}\"}\n".to_owned(), "KW0422"),
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply:\n    headers: {Host: \"{{ fields.k }}\"}\n".to_owned(), "KW0422"),
        // A name far longer than any header (an explicit key: YAML's implicit ones stop at 1,024).
        (format!("  kind: api_key\n  fields: {{k: {{label: K}}}}\n  apply:\n    headers:\n      ? {}\n      : \"{{{{ fields.k }}}}\"\n", "X".repeat(big)), "KW0422"),
        // A secret in the query, directly, through all fields, through a filter.
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply:\n    query: {key: \"{{ fields.k }}\"}\n".to_owned(), "KW0423"),
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply:\n    query: {key: \"{{ fields['k'] }}\"}\n".to_owned(), "KW0423"),
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply:\n    query: {key: \"{{ fields.k | upper }}\"}\n".to_owned(), "KW0423"),
        // Pointers: unrooted, badly escaped, far too long.
        ("  kind: token_exchange\n  fields: {p: {label: P}}\n  exchange: {url: \"https://{{ env.host }}/login\", body: {p: \"{{ fields.p }}\"}, token_pointer: token}\n  apply: {headers: {Authorization: \"Bearer {{ token.access_token }}\"}}\n".to_owned(), "KW0424"),
        ("  kind: token_exchange\n  fields: {p: {label: P}}\n  exchange: {url: \"https://{{ env.host }}/login\", body: {p: \"{{ fields.p }}\"}, token_pointer: /a~9}\n  apply: {headers: {Authorization: \"Bearer {{ token.access_token }}\"}}\n".to_owned(), "KW0424"),
        (format!("  kind: token_exchange\n  fields: {{p: {{label: P}}}}\n  exchange: {{url: \"https://{{{{ env.host }}}}/login\", body: {{p: \"{{{{ fields.p }}}}\"}}, token_pointer: /{}}}\n  apply: {{headers: {{Authorization: \"Bearer {{{{ token.access_token }}}}\"}}}}\n", "a".repeat(big)), "KW0424"),
        // An exchange URL to an internal host, and one built from a field (fields never reach URLs).
        ("  kind: token_exchange\n  fields: {p: {label: P}}\n  exchange: {url: \"https://169.254.169.254/login\", body: {p: \"{{ fields.p }}\"}, token_pointer: /t}\n  apply: {headers: {Authorization: \"Bearer {{ token.access_token }}\"}}\n".to_owned(), "KW0409"),
        ("  kind: token_exchange\n  fields: {p: {label: P}}\n  exchange: {url: \"https://{{ fields.p }}/login\", body: {p: \"{{ fields.p }}\"}, token_pointer: /t}\n  apply: {headers: {Authorization: \"Bearer {{ token.access_token }}\"}}\n".to_owned(), "KW0408"),
        // A field pattern the regex limits refuse, and an unanchored one.
        ("  kind: api_key\n  fields: {k: {label: K, pattern: '^(?:a{1000}){1000}$'}}\n  apply:\n    headers: {X-Key: \"{{ fields.k }}\"}\n".to_owned(), "KW0411"),
        ("  kind: api_key\n  fields: {k: {label: K, pattern: 'ak_'}}\n  apply:\n    headers: {X-Key: \"{{ fields.k }}\"}\n".to_owned(), "KW0411"),
        // A long template in a header is bounded before the engine sees it.
        (format!("  kind: api_key\n  fields: {{k: {{label: K}}}}\n  apply:\n    headers: {{X-Key: \"{{{{ fields.k{} }}}}\"}}\n", " ~ fields.k".repeat(20_000)), "KW0407"),
        // A signing key written into the profile; OAuth keys on another kind.
        ("  kind: signed_jwt\n  fields: {i: {label: I, secret: false}}\n  jwt: {algorithm: HS256, key: s3cret, claims: {iss: \"{{ fields.i }}\"}, lifetime_seconds: 60}\n  apply: {headers: {Authorization: \"Bearer {{ token.access_token }}\"}}\n".to_owned(), "KW0426"),
        ("  kind: api_key\n  fields: {k: {label: K}}\n  apply: {headers: {X-Key: \"{{ fields.k }}\"}}\n  endpoints: {token: \"https://{{ env.host }}/token\"}\n  refresh: {send_client_secret: true, rotation: never}\n".to_owned(), "KW0421"),
        // A renamed parameter that protects the flow.
        ("  grants: [authorization_code]\n  endpoints: {authorize: \"https://{{ env.host }}/a\", token: \"https://{{ env.host }}/t\"}\n  pkce: required\n  authorization_param_names: {code_challenge: cc}\n  callback_code_param: state\n".to_owned(), "KW0427"),
    ];
    let mut snapshot = String::new();
    for (auth, code) in cases {
        let text = keyed(&auth);
        let loaded = check_str(&text);
        let found = codes(&loaded.diagnostics);
        assert!(found.contains(&code), "{code} expected, found {found:?}: {}", summary(&loaded.diagnostics));
        let located = loaded
            .diagnostics
            .iter()
            .filter(|d| d.code.as_str() == code)
            .all(|d| d.pointer.is_some() && d.span.is_some());
        assert!(located, "{code} is located: {}", summary(&loaded.diagnostics));
        snapshot.push_str(&summary(
            &loaded.diagnostics.iter().filter(|d| d.code.as_str() == code).cloned().collect::<Vec<_>>(),
        ));
    }
    insta::assert_snapshot!(snapshot);
}

#[test]
fn entered_fields_are_bounded_and_never_quoted_when_secret() {
    let text = keyed(
        "  kind: api_key\n  fields:\n    k: {label: Key, pattern: '^k_[a-z]{4}$'}\n    user: {label: User, secret: false}\n  apply:\n    headers: {X-Key: \"{{ fields.k }}\", X-User: \"{{ fields.user }}\"}\n",
    );
    let loaded = check_str(&text);
    assert!(!loaded.has_errors(), "{}", summary(&loaded.diagnostics));
    let profile = &loaded.profiles[0].profile;
    let huge = "k".repeat(1 << 20);
    for (value, why) in [
        (huge.as_str(), "longer than 4096 bytes"),
        ("k_ab\r\ncd", "control character"),
        ("k_abc\u{0}", "control character"),
        ("k_toolong", "not a valid Key"),
        ("", "empty"),
    ] {
        let values: indexmap::IndexMap<String, String> =
            [("k".to_owned(), value.to_owned()), ("user".to_owned(), "ada".to_owned())].into_iter().collect();
        let found = keyway_validate::credentials::check_fields(profile, &values);
        assert_eq!(found.len(), 1, "{value:.40}: {found:?}");
        assert_eq!(found[0].code.as_str(), "KW0512");
        assert_eq!(found[0].pointer.as_deref(), Some("/fields/k"));
        assert!(found[0].message.contains(why), "{}", found[0].message);
        if !value.is_empty() {
            assert!(
                !found[0].message.contains(&value[..value.len().min(8)]),
                "a secret is never quoted: {}",
                found[0].message
            );
        }
    }
}
