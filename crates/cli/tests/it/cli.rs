//! The `keyway` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn keyway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .current_dir(root())
        .env_remove("KEYWAY_PROFILES")
        .env("NO_COLOR", "1")
        .output()
        .expect("keyway runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = root().join("target/tmp/cli");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(format!("{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("write scratch file");
    path
}

#[test]
fn validate_defaults_to_the_profiles_directory_and_passes() {
    let out = keyway(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("checked 2 profile(s) in 2 file(s): 0 error(s), 0 warning(s)"), "{}", stdout(&out));
    let out = keyway(&["validate", "profiles/"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn validate_prints_located_errors_and_exits_1() {
    let path = scratch("bad", "id: bad\nname: Bad\nenvironmints: {}\n");
    let out = keyway(&["validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("error[KW0201]: unknown key `environmints`"), "{text}");
    assert!(text.contains(&format!("{}:3:1", path.display())), "{text}");
    assert!(text.contains("help: did you mean `environments`?"), "{text}");
    assert!(text.contains("3 | environmints: {}"), "the source line is shown: {text}");
}

#[test]
fn validate_json_is_one_object_per_line() {
    let path = scratch("bad-json", "id: bad\nname: [\n");
    let out = keyway(&["validate", "--format", "json", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["code"], "KW0101");
    assert_eq!(lines[0]["span"]["line"], 3);
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(keyway(&["validate", "--format", "xml"]).status.code(), Some(2));
    assert_eq!(keyway(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(keyway(&["inspect", "salesforc"]).status.code(), Some(2));
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = keyway(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read_to_string(root().join("schemas/profile.schema.json")).expect("committed schema");
    assert_eq!(stdout(&out), committed);
}

#[test]
fn inspect_lists_and_shows_resolved_profiles() {
    let out = keyway(&["inspect"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("salesforce-service-cloud") && text.contains("salesforce "), "{text}");
    let out = keyway(&["inspect", "salesforce-service-cloud"]);
    let text = stdout(&out);
    assert!(text.contains("actions (34):"), "{text}");
    assert!(text.contains("profiles/salesforce-service-cloud.yaml <- profiles/salesforce.yaml"), "{text}");
    let out = keyway(&["inspect", "salesforce-service-cloud", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["extends"], "salesforce");
    assert_eq!(json["actions"].as_object().map(|a| a.len()), Some(34));
    assert_eq!(json["environments"]["sandbox"]["vars"]["login_host"], "test.salesforce.com", "inherited");
}

#[test]
fn the_profiles_directory_comes_from_the_flag_or_the_environment() {
    let missing = root().join("target/tmp/cli/no-such-dir");
    let out = keyway(&["validate", "--profiles", missing.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("KW0001"), "{}", stdout(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("validate")
        .current_dir(root())
        .env("KEYWAY_PROFILES", &missing)
        .output()
        .expect("keyway runs");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn scopes_prints_the_minimal_scope_string() {
    let out = keyway(&["scopes", "salesforce-service-cloud", "--actions", "create_case,list_cases"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "api refresh_token offline_access\n");
    let out = keyway(&["scopes", "salesforce", "--actions", "post_chatter_feed_item", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let values: Vec<&str> =
        plan["scopes"].as_array().expect("scopes").iter().filter_map(|s| s["value"].as_str()).collect();
    assert_eq!(values, ["refresh_token", "offline_access", "chatter_api"], "catalogue order");
    assert_eq!(plan["scopes"][2]["actions"][0], "post_chatter_feed_item");
    assert_eq!(plan["scopes"][0]["for_refresh"], true);
}

#[test]
fn scopes_reports_an_inconsistent_selection_and_exits_1() {
    let out = keyway(&[
        "scopes",
        "salesforce-service-cloud",
        "--actions",
        "create_cse",
        "--scopes",
        "api,chatter_api",
        "--param",
        "my_domain=x.lightning.force.com",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no scope string when the selection is wrong");
    let err = String::from_utf8_lossy(&out.stderr);
    for code in ["KW0501", "KW0503", "KW0506"] {
        assert!(err.contains(code), "{code} in {err}");
    }
    assert!(err.contains("did you mean `create_case`?"), "{err}");
    assert!(err.contains("Lightning Experience address"), "the profile's own explanation: {err}");
    assert_eq!(keyway(&["scopes", "salesforce", "--param", "nonsense"]).status.code(), Some(2));
}

#[test]
fn validate_sarif_is_a_sarif_log() {
    let path = scratch("bad-sarif", "id: bad\nname: Bad\nenvironmints: {}\n");
    let out = keyway(&["validate", "--format", "sarif", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert!(results.iter().any(|r| r["ruleId"] == "KW0201"), "{results:?}");
}

#[test]
fn import_nango_writes_profiles_and_a_report_that_validate() {
    let out_dir = root().join(format!("target/tmp/cli/nango-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let providers = "crates/import/tests/data/nango-sample/providers.yaml";
    let out = keyway(&["import", "nango", providers, "--out", out_dir.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("39 entries: 28 converted"), "{stderr}");
    assert!(out_dir.join("IMPORT-REPORT.md").is_file());
    assert!(out_dir.join("acme-crm-sandbox.yaml").is_file());
    // The scopes file beside providers.yaml is used unless --scopes says otherwise.
    let acme = std::fs::read_to_string(out_dir.join("acme-crm.yaml")).expect("written");
    assert!(acme.contains("admin:"), "{acme}");
    // An alias that keeps few of its parent's scopes replaces the catalogue instead of nulling it.
    let reports = std::fs::read_to_string(out_dir.join("acme-crm-reports.yaml")).expect("written");
    assert!(reports.contains("replace:\n- /scopes\n") && !reports.contains(": null"), "{reports}");
    let dir = out_dir.to_str().expect("utf-8 path");
    let out = keyway(&["validate", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Imported profiles offer no actions, so their catalogues draw no unused-scope warning.
    assert!(!stdout(&out).contains("KW0416"), "{}", stdout(&out));
    // Their scopes have no labels, and are listed by their value alone.
    let text = stdout(&keyway(&["inspect", "acme-crm", "--profiles", dir]));
    assert!(text.lines().any(|l| l == "  admin"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("  offline_access ") && l.ends_with(" [refresh]")), "{text}");
    let _ = std::fs::remove_dir_all(&out_dir);

    let bad = scratch("not-nango", "- a\n- b\n");
    let out = keyway(&["import", "nango", bad.to_str().expect("utf-8 path"), "--out", "target/tmp/cli/never"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KW0103"));
}

#[test]
fn a_repeated_param_is_refused_not_overwritten() {
    let twice = ["--param", "my_domain=acme.my.salesforce.com", "--param", "my_domain=evil.my.salesforce.com"];
    let mut scopes = vec!["scopes", "salesforce", "--actions", "list_accounts"];
    scopes.extend(twice);
    let out = keyway(&scopes);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--param my_domain` is given more than once"));
    let mut url =
        vec!["authorize-url", "salesforce", "--client-id", "3MVG9x", "--redirect-uri", "https://app.example.com/cb"];
    url.extend(twice);
    let out = keyway(&url);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("given more than once"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no URL printed");
    // Once is fine.
    let mut once = vec!["scopes", "salesforce", "--actions", "list_accounts"];
    once.extend(&twice[..2]);
    assert!(keyway(&once).status.success());
}

#[test]
fn a_fifo_among_the_profiles_is_reported_and_never_waited_on() {
    let dir = root().join(format!("target/tmp/fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(root().join("profiles/salesforce.yaml"), dir.join("salesforce.yaml")).expect("copy");
    for name in ["pipe.yaml", "named.yml"] {
        let made = Command::new("mkfifo").arg(dir.join(name)).status().expect("mkfifo runs");
        assert!(made.success());
    }
    for target in [dir.clone(), dir.join("pipe.yaml")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyway"));
        command.arg("validate").arg(&target).env("NO_COLOR", "1");
        let out = output_unless_it_hangs(command, &format!("keyway validate {}", target.display()));
        let status = out.status;
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(status.code(), Some(1), "{text}");
        assert!(text.contains("pipe.yaml") && text.contains("not a regular file"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `command` to its end, its output read as it comes; fails (and kills it) when it has
/// not ended within a minute: it waits on something it must never wait on.
fn output_unless_it_hangs(mut command: Command, what: &str) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    /// Killed when dropped: a failed wait leaves nothing behind.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut child = Running(child);
    let status =
        keyway_testkit::wait_until_blocking(&format!("{what} to end"), std::time::Duration::from_secs(60), || {
            child.0.try_wait().expect("wait")
        });
    Output { status, stdout: stdout.join().expect("stdout"), stderr: stderr.join().expect("stderr") }
}

/// Import inputs are read to a stated limit, and a FIFO in their place is refused at once.
#[test]
fn import_inputs_are_bounded_and_never_waited_on() {
    let dir = root().join(format!("target/tmp/import-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // Past the limit, without writing it all: a sparse file.
    let huge = dir.join("providers.yaml");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(keyway_import::MAX_INPUT_BYTES + 1).expect("grow");
    let out =
        keyway(&["import", "nango", huge.to_str().expect("utf-8"), "--out", dir.join("out").to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("larger than the limit of {} bytes", keyway_import::MAX_INPUT_BYTES)), "{text}");
    std::fs::remove_file(&huge).expect("remove");
    assert!(Command::new("mkfifo").arg(&huge).status().expect("mkfifo").success());
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyway"));
    command.args(["import", "nango"]).arg(&huge).arg("--out").arg(dir.join("out"));
    command.current_dir(root()).env_remove("KEYWAY_PROFILES").env("NO_COLOR", "1");
    let out = output_unless_it_hangs(command, "keyway import nango FIFO");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 18, part 3: a platform adds its own steps without copying the profile. The example
/// overlay (a child of `salesforce`) validates beside the bundled profiles, and its guide is
/// the parent's with the platform's ending instead of the generic one.
#[test]
fn a_platform_overlay_ends_the_guide_with_its_own_steps() {
    let out = keyway(&["validate", "profiles", "examples/platform-overlay"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("checked 3 profile(s)"), "{}", stdout(&out));

    let dir = root().join(format!("target/tmp/cli/overlay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for file in ["profiles/salesforce.yaml", "examples/platform-overlay/acme-salesforce.yaml"] {
        let from = root().join(file);
        std::fs::copy(&from, dir.join(from.file_name().expect("a file name"))).expect("copy");
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    let callback = "https://app.acme.example/oauth/callback";
    let overlay = keyway(&["--profiles", &dir_arg, "guide", "acme-salesforce", "--callback-url", callback]);
    assert_eq!(overlay.status.code(), Some(0), "{}", String::from_utf8_lossy(&overlay.stderr));
    let parent = keyway(&["--profiles", &dir_arg, "guide", "salesforce", "--callback-url", callback]);
    let (overlay, parent) = (stdout(&overlay), stdout(&parent));
    let _ = std::fs::remove_dir_all(&dir);

    // The platform's ending, last, with the connection's values filled in.
    let ending = overlay.find("## Create the Salesforce connector profile in Acme").expect("the platform's section");
    assert!(overlay[ending..].contains("**Scopes**: `api refresh_token offline_access`"));
    assert!(overlay[ending..].contains(&format!("Acme's callback URL is `{callback}`")));
    assert!(overlay.find("## Troubleshooting").is_some_and(|t| t > ending));
    // The generic ending is gone; everything before it is the parent's, unchanged.
    assert!(parent.contains("## Connect Salesforce CRM in the platform"));
    assert!(!overlay.contains("in the platform\n"));
    let body = |md: &str, until: &str| -> String {
        md.split_once("## Before you start")
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .split(until)
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        body(&overlay, "## Create the Salesforce connector profile in Acme"),
        body(&parent, "## Connect Salesforce CRM in the platform")
    );
}
