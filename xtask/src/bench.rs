//! `cargo xtask bench startup`: how long loading and fully validating a catalogue of over
//! 1,000 profiles takes, beside Nango's own loader of its `providers.yaml`.
//!
//! Steps: fetch Nango's catalogue (pinned; `scripts/fetch-nango.sh`, needs npm) unless it is
//! in `target/corpus/nango`; import it (`keyway import nango`, in process); top the imported
//! profiles up with copies under new ids to the size of Nango's catalogue; add the bundled
//! Salesforce profiles; then measure, in one release process:
//! - keyway in process: load + validate the directory, 1 thread and 2 threads (median);
//! - keyway as a whole `keyway validate DIR` process (release build; median);
//! - Nango's `loadProvidersYaml()` under node, when node and npm are present: in process,
//!   excluding node's start-up (the first call, median over fresh processes; warm calls), and
//!   as a whole process; and, right before each fresh node process, keyway's 1-thread load
//!   once more in this process, and once as the first call of a fresh process of this binary
//!   (the like-for-like counterpart of Nango's first call), for ratios of samples taken side by
//!   side (the machine's speed drifts);
//! - the memory the loaded registry holds (resident set growth while loading, and after).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub const HELP: &str = "\
usage: cargo xtask bench startup [--runs N]

Loads and fully validates over 1,000 profiles (Nango's catalogue imported by `keyway import
nango`, topped up with copies under new ids to the size of Nango's catalogue, plus the bundled
Salesforce profiles) and compares with Nango's own loader (node, `loadProvidersYaml()`), in one
run. From a fresh clone (needs a Rust toolchain; npm and node for the catalogue and the
comparison):

    scripts/fetch-nango.sh            # optional: the bench fetches the catalogue itself
    cargo xtask bench startup

Everything it writes goes under target/ (target/corpus/nango, target/bench/startup).";

const NANGO_VERSION: &str = "0.71.10";

pub fn startup(args: &[&str]) -> ExitCode {
    let runs = match args {
        [] => 21,
        ["--runs", n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return usage(),
        },
        _ => return usage(),
    };
    if cfg!(debug_assertions) {
        return rerun_in_release("startup", args);
    }
    match run(runs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn usage() -> ExitCode {
    eprintln!("{HELP}");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bench: {message}");
    ExitCode::FAILURE
}

/// Timings mean nothing in a debug build: runs `cargo xtask bench BENCH ARGS` again in release.
pub(crate) fn rerun_in_release(bench: &str, args: &[&str]) -> ExitCode {
    let status = Command::new(cargo())
        .args(["run", "--release", "--quiet", "--package", "xtask", "--", "bench", bench])
        .args(args)
        .current_dir(crate::root())
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => fail(&format!("cannot run cargo: {e}")),
    }
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The benchmark set: Nango's catalogue imported, topped up with copies under new ids to the
/// size of Nango's catalogue, plus the bundled Salesforce profiles, in
/// `target/bench/startup/profiles`, validated.
pub(crate) struct Catalogue {
    pub(crate) dir: PathBuf,
    providers_path: PathBuf,
    import: keyway_import::Import,
    import_time: Duration,
    imported: usize,
    copies: usize,
    bundled: usize,
    pub(crate) total_files: usize,
    bytes: u64,
    pub(crate) profiles: usize,
}

pub(crate) fn prepare_catalogue() -> Result<Catalogue, String> {
    let root = crate::root();
    let corpus = root.join("target/corpus/nango");
    if !corpus.join("providers.yaml").is_file() || !corpus.join("providers.scopes.yaml").is_file() {
        eprintln!("fetching Nango's catalogue into {} ...", corpus.display());
        let status = Command::new(root.join("scripts/fetch-nango.sh"))
            .arg(&corpus)
            .current_dir(&root)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/fetch-nango.sh: {e}"))?;
        if !status.success() {
            return Err("scripts/fetch-nango.sh failed (it needs npm and access to the npm registry)".into());
        }
    }
    let providers_path = corpus.join("providers.yaml");
    let providers = read(&providers_path)?;
    let scopes = read(&corpus.join("providers.scopes.yaml"))?;

    // Import, then top up to the size of Nango's catalogue.
    let started = Instant::now();
    let import = keyway_import::nango::convert(&providers, Some(&scopes)).map_err(|d| d.to_string())?;
    let import_time = started.elapsed();
    let dir = root.join("target/bench/startup/profiles");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let bundled: Vec<PathBuf> =
        ["salesforce.yaml", "salesforce-service-cloud.yaml"].iter().map(|f| root.join("profiles").join(f)).collect();
    let bundled_ids = ["salesforce", "salesforce-service-cloud"];
    let mut files: Vec<(String, String)> = Vec::new();
    for p in &import.profiles {
        // An imported id the bundled profiles also use is renamed, with its children's extends.
        files.push((rename_clashes(&p.id, &bundled_ids), rename_text(&p.yaml, &bundled_ids)));
    }
    let imported = files.len();
    let target = import.report.total.max(1013);
    let originals = files.clone();
    let mut copy = 0;
    while files.len() < target {
        let (id, text) = &originals[copy % originals.len()];
        let new_id = format!("{id}-copy{}", copy / originals.len() + 1);
        let text = text.replacen(&format!("\nid: {id}\n"), &format!("\nid: {new_id}\n"), 1);
        files.push((new_id, text));
        copy += 1;
    }
    for (id, text) in &files {
        std::fs::write(dir.join(format!("{id}.yaml")), text).map_err(|e| format!("cannot write: {e}"))?;
    }
    for path in &bundled {
        let name = path.file_name().ok_or("bundled profile without a name")?;
        std::fs::copy(path, dir.join(name)).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
    }
    let total_files = files.len() + bundled.len();
    let bytes: u64 = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    // Check once, and keep the result for the summary.
    let loaded = keyway_validate::validate_paths(&[&dir]);
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        return Err(format!("the benchmark set has {errors} error(s); run `keyway validate {}`", dir.display()));
    }
    let profiles = loaded.profiles.len();
    drop(loaded);

    Ok(Catalogue {
        dir,
        providers_path,
        imported,
        copies: files.len() - imported,
        bundled: bundled.len(),
        import,
        import_time,
        total_files,
        bytes,
        profiles,
    })
}

fn run(runs: usize) -> Result<(), String> {
    let root = crate::root();
    let Catalogue { dir, providers_path, import, import_time, imported, copies, bundled, total_files, bytes, profiles } =
        prepare_catalogue()?;
    println!("keyway startup benchmark");
    println!(
        "  set: {total_files} files, {:.1} MiB: {imported} imported from Nango's catalogue ({} entries, {} of {} OAuth 2.0 converted, import took {:.0} ms), {} copies under new ids, {} bundled Salesforce profiles; {profiles} profiles load, 0 errors",
        bytes as f64 / (1024.0 * 1024.0),
        import.report.total,
        import.report.oauth2_converted(),
        import.report.oauth2_total,
        ms(import_time),
        copies,
        bundled,
    );
    println!("  machine: {} logical CPU(s); {runs} runs each, median (min-max)", cpus());

    // In process. The loaded set is dropped after the clock stops (a service keeps it), and
    // what validation keeps by content (compiled patterns, parsed templates) is forgotten
    // before it starts, so each run does the work a starting service does. Statics built once
    // per process (the template environment; the schema validator, if a document needs it)
    // stay built.
    let one = measure(runs, keyway_validate::forget_kept_work, || {
        let loaded = keyway_validate::validate_paths_with(&[&dir], 1);
        assert!(loaded.profiles.len() == profiles);
        loaded
    });
    let two = measure(runs, keyway_validate::forget_kept_work, || {
        let loaded = keyway_validate::validate_paths_with(&[&dir], 2);
        assert!(loaded.profiles.len() == profiles);
        loaded
    });
    println!("\n  keyway, in process (read, parse, schema, extends, types, rules; mimalloc, as the keyway binary):");
    println!("    1 thread:   {}", show(&one));
    println!("    2 threads:  {}", show(&two));

    // As a whole process.
    let keyway = build_keyway(&root)?;
    let whole = measure(
        runs.min(11),
        || {},
        || {
            let out = Command::new(&keyway).arg("validate").arg(&dir).output();
            assert!(out.is_ok_and(|o| o.status.success()), "keyway validate failed");
        },
    );
    println!("  keyway, whole `keyway validate DIR` process:");
    println!("    {}", show(&whole));

    // Memory.
    let (growth, retained) = memory(&dir, profiles)?;
    println!("  memory of the loaded registry (resident set; {profiles} profiles with sources and diagnostics):");
    println!("    peak growth while loading: {:.1} MiB; held once loaded: {:.1} MiB", mib(growth), mib(retained));

    // Nango.
    println!(
        "\n  Nango's loadProvidersYaml() (js-yaml parse + alias merge; no validation), on the package's own providers.yaml:"
    );
    // One more 1-thread load right before each fresh node process: the machine's speed drifts
    // within a run, and samples taken side by side compare like with like.
    let keyway_once =
        || time_once(keyway_validate::forget_kept_work, || keyway_validate::validate_paths_with(&[&dir], 1));
    let keyway_first = || fresh_first_call(&dir, profiles);
    match nango(&root, runs, keyway_once, keyway_first) {
        Ok(node) => {
            let package = root.join("target/bench/node/node_modules/@nangohq/providers/providers.yaml");
            let same = std::fs::read(&package).ok() == std::fs::read(&providers_path).ok();
            let what = if same { "byte for byte the file keyway imported," } else { "NOT the file keyway imported:" };
            println!("    ({what} {})", providers_path.display());
            // Nango keeps its scope lists in another file, which its loader does not read; the
            // imported profiles carry them. Both sizes, for context.
            let nango_bytes = std::fs::metadata(&package).map(|m| m.len()).unwrap_or(0);
            println!(
                "    input: {:.1} MiB in one file (no scope lists: they are in providers.scopes.yaml); keyway's set: {:.1} MiB, scope catalogues included",
                nango_bytes as f64 / (1024.0 * 1024.0),
                bytes as f64 / (1024.0 * 1024.0)
            );
            println!(
                "    in process, first call: {}, median of {} fresh processes",
                show(&node.first),
                node.first_runs
            );
            println!(
                "    in process, warm:       {:.1} ms median ({:.1}-{:.1})",
                node.median_ms, node.min_ms, node.max_ms
            );
            println!("    whole node process:     {:.1} ms median", node.process_ms);
            let ratio = node.median_ms / ms(one.median);
            let first_ratio = ms(node.first.median) / ms(one.median);
            println!(
                "\n  ratio, Nango's warm parse-only load / keyway's full load and validation, 1 thread: {ratio:.1}x"
            );
            println!(
                "  ratio, Nango's first load / keyway 1 thread: {first_ratio:.1}x; 2 threads: {:.1}x; whole processes: {:.1}x",
                ms(node.first.median) / ms(two.median),
                node.process_ms / ms(whole.median)
            );
            println!(
                "  ratio, Nango's first load / keyway 1 thread, interleaved (keyway {} right before each node \
                 process): {:.1}x",
                show(&node.keyway_interleaved),
                ms(node.first.median) / ms(node.keyway_interleaved.median)
            );
            println!(
                "  ratio, first call against first call, each in a fresh process, 1 thread (keyway {}, one before \
                 each node process): {:.1}x",
                show(&node.keyway_first),
                ms(node.first.median) / ms(node.keyway_first.median)
            );
        }
        Err(e) => println!("    not measured: {e}"),
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn rename_clashes(id: &str, bundled: &[&str]) -> String {
    if bundled.contains(&id) { format!("nango-{id}") } else { id.to_owned() }
}

fn rename_text(text: &str, bundled: &[&str]) -> String {
    let mut text = text.to_owned();
    for id in bundled {
        for key in ["id", "extends"] {
            text = text.replace(&format!("\n{key}: {id}\n"), &format!("\n{key}: nango-{id}\n"));
        }
    }
    text
}

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug)]
struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Times `f`, after `reset` each time; what `f` returns is dropped after the clock stops.
fn measure<T>(runs: usize, mut reset: impl FnMut(), mut f: impl FnMut() -> T) -> Timing {
    drop(f()); // warm the page cache and lazily built statics
    Timing::of((0..runs).map(|_| time_once(&mut reset, &mut f)).collect())
}

/// One run of `f`, after `reset`; what `f` returns is dropped after the clock stops.
fn time_once<T>(mut reset: impl FnMut(), mut f: impl FnMut() -> T) -> Duration {
    reset();
    let start = Instant::now();
    let result = f();
    let elapsed = start.elapsed();
    drop(result);
    elapsed
}

impl Timing {
    /// The median and range of non-empty `times`.
    fn of(mut times: Vec<Duration>) -> Timing {
        times.sort();
        Timing { median: times[times.len() / 2], min: times[0], max: times[times.len() - 1] }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn show(t: &Timing) -> String {
    format!("{:.1} ms ({:.1}-{:.1})", ms(t.median), ms(t.min), ms(t.max))
}

pub(crate) fn build_keyway(root: &Path) -> Result<PathBuf, String> {
    let status = Command::new(cargo())
        .args(["build", "--release", "--quiet", "--package", "keyway", "--bin", "keyway"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p keyway failed".into());
    }
    Ok(root.join("target/release/keyway"))
}

/// Resident-set figures of a fresh process that loads the set: its peak growth while loading
/// and what it still holds with the set loaded.
fn memory(dir: &Path, profiles: usize) -> Result<(u64, u64), String> {
    let text = probe("startup-memory", dir, profiles)?;
    let numbers: Vec<u64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    match numbers.as_slice() {
        [growth, retained] => Ok((*growth, *retained)),
        _ => Err(format!("memory probe printed {text:?}")),
    }
}

/// Runs `xtask bench PROBE DIR PROFILES` in a fresh process of this binary: what it printed,
/// or why it failed (with what it wrote to stderr).
fn probe(name: &str, dir: &Path, profiles: usize) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["bench", name])
        .arg(dir)
        .arg(profiles.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The child process of [`memory`]: prints peak growth and retained growth, in bytes.
pub fn memory_probe(args: &[&str]) -> ExitCode {
    let [dir, profiles] = args else { return usage() };
    let status = |field: &str| -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    // Warm the lazily built statics (schema validator, template environment) first, so the
    // figures are the registry's own.
    let _ = keyway_validate::validate_paths(&[Path::new("profiles")]);
    let _ = std::fs::write("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
    let before = status("VmRSS:");
    let loaded = keyway_validate::validate_paths(&[Path::new(dir)]);
    let peak = status("VmHWM:");
    let after = status("VmRSS:");
    if profiles.parse::<usize>().ok() != Some(loaded.profiles.len()) {
        return fail("memory probe loaded a different set");
    }
    println!("{} {}", peak.saturating_sub(before), after.saturating_sub(before));
    drop(loaded);
    ExitCode::SUCCESS
}

/// One load and validation of `dir` on one thread in a fresh process of this binary, the first
/// in that process, as Nango's first call is the first in its node process: returns how long
/// the call took, timed inside the process (not the process start).
fn fresh_first_call(dir: &Path, profiles: usize) -> Result<Duration, String> {
    let text = probe("startup-first-call", dir, profiles)?;
    match text.trim().parse::<f64>() {
        Ok(ms) => Ok(Duration::from_secs_f64(ms / 1000.0)),
        Err(_) => Err(format!("first-call probe printed {text:?}")),
    }
}

/// The child process of [`fresh_first_call`]: prints the milliseconds its one load took.
pub fn first_call_probe(args: &[&str]) -> ExitCode {
    let [dir, profiles] = args else { return usage() };
    let start = Instant::now();
    let loaded = keyway_validate::validate_paths_with(&[Path::new(dir)], 1);
    let elapsed = start.elapsed();
    if profiles.parse::<usize>().ok() != Some(loaded.profiles.len()) || loaded.has_errors() {
        return fail("first-call probe loaded a different set, or found errors");
    }
    println!("{:.3}", ms(elapsed));
    drop(loaded);
    ExitCode::SUCCESS
}

struct NodeFigures {
    /// The first call, over fresh processes.
    first: Timing,
    first_runs: usize,
    /// keyway in process on 1 thread, timed right before each fresh node process.
    keyway_interleaved: Timing,
    /// keyway's first call on 1 thread in a fresh process, one before each fresh node process.
    keyway_first: Timing,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    process_ms: f64,
}

const NODE_SCRIPT: &str = r#"
import { loadProvidersYaml } from '@nangohq/providers';
const runs = Number(process.argv[2] || '21');
const time = () => { const t = process.hrtime.bigint(); const p = loadProvidersYaml(); const d = Number(process.hrtime.bigint() - t) / 1e6; if (!p || Object.keys(p).length < 1000) { throw new Error('loadProvidersYaml failed'); } return d; };
const first = time();
const times = [];
for (let i = 0; i < runs; i++) times.push(time());
times.sort((a, b) => a - b);
console.log(JSON.stringify({ first, median: times[Math.floor(times.length / 2)], min: times[0], max: times[times.length - 1] }));
"#;

// One call in a fresh process: prints how long it took (the first call, as a starting service
// makes it).
const NODE_ONCE: &str = r#"
import { loadProvidersYaml } from '@nangohq/providers';
const t = process.hrtime.bigint();
const p = loadProvidersYaml();
const d = Number(process.hrtime.bigint() - t) / 1e6;
if (!p || Object.keys(p).length < 1000) { process.exit(1); }
console.log(d);
"#;

/// Installs the pinned `@nangohq/providers` under target/bench/node and times its loader.
/// Nango's loader: warm calls in one node process, then fresh processes (each timing its one
/// call); before each fresh process, `keyway_once` times a load in this process and
/// `keyway_first` one in a fresh process of its own, and their times are kept beside them.
fn nango(
    root: &Path,
    runs: usize,
    mut keyway_once: impl FnMut() -> Duration,
    mut keyway_first: impl FnMut() -> Result<Duration, String>,
) -> Result<NodeFigures, String> {
    let node_dir = root.join("target/bench/node");
    let package = node_dir.join("node_modules/@nangohq/providers/package.json");
    let installed = std::fs::read_to_string(&package).is_ok_and(|p| p.contains(&format!("\"{NANGO_VERSION}\"")));
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed".into());
    }
    if !installed {
        std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        eprintln!("installing @nangohq/providers@{NANGO_VERSION} into {} ...", node_dir.display());
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", &format!("@nangohq/providers@{NANGO_VERSION}")])
            .current_dir(&node_dir)
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err("npm install failed".into());
        }
    }
    let script = node_dir.join("bench.mjs");
    let once = node_dir.join("once.mjs");
    std::fs::write(&script, NODE_SCRIPT).map_err(|e| e.to_string())?;
    std::fs::write(&once, NODE_ONCE).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg(&script)
        .arg(runs.to_string())
        .current_dir(&node_dir)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!("node failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let figures: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("unexpected node output: {e}"))?;
    let get = |k: &str| figures.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    // Whole processes; each also times its one (first) call, so the first call, a single
    // sample in the script above, gets a median too.
    let mut firsts: Vec<f64> = [get("first")].into_iter().filter(|ms| ms.is_finite()).collect();
    let duration = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let mut interleaved = Vec::new();
    let mut keyway_firsts = Vec::new();
    let mut probe_error = None;
    let process = measure(
        runs.min(11),
        || {
            interleaved.push(keyway_once());
            match keyway_first() {
                Ok(time) => keyway_firsts.push(time),
                Err(e) => probe_error = Some(e),
            }
        },
        || {
            let first = Command::new("node")
                .arg(&once)
                .current_dir(&node_dir)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse::<f64>().ok());
            assert!(first.is_some(), "node loadProvidersYaml() failed");
            firsts.extend(first);
        },
    );
    if let Some(e) = probe_error {
        return Err(e);
    }
    Ok(NodeFigures {
        keyway_interleaved: Timing::of(interleaved),
        keyway_first: Timing::of(keyway_firsts),
        first_runs: firsts.len(),
        first: Timing::of(firsts.into_iter().map(duration).collect()),
        median_ms: get("median"),
        min_ms: get("min"),
        max_ms: get("max"),
        process_ms: ms(process.median),
    })
}
