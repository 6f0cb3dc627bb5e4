//! Project automation: `cargo xtask <task>`.
//!
//! - `schema [--check]`: writes `schemas/profile.schema.json`, `schemas/guide.schema.json` and
//!   `schemas/openapi.json` (the HTTP API of `keyway serve`) from the Rust types; with `--check`, fails (exit 1) when a committed file is stale
//!   instead of writing it.
//! - `bench startup [--runs N]`: loading and validating over 1,000 profiles beside Nango's
//!   loader (see `bench.rs`).
//! - `bench serve [--connections N] [--sweep S]`: `keyway serve` on SQLite and PostgreSQL: N
//!   connections seeded in bulk and read through HTTP (memory, cold reads), the token endpoint
//!   under load beside a constant handler (two instances on PostgreSQL), the refresher's claim
//!   query and a sweep of S due connections, start time (see `serve_bench.rs`).

mod bench;
mod serve_bench;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask schema [--check] | cargo xtask bench startup [--runs N] | cargo xtask bench serve [--connections N] [--sweep S]";

// The same allocator as the keyway binary, so `bench startup` measures loading as it runs.
#[global_allocator]
static ALLOCATOR: keyway_alloc::Allocator = keyway_alloc::Allocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["schema"] => generated_files(Mode::Write),
        ["schema", "--check"] => generated_files(Mode::Check),
        ["bench", "startup", "--help" | "-h"] | ["bench", "--help" | "-h"] | ["bench"] => {
            println!("{}", bench::HELP);
            ExitCode::SUCCESS
        }
        ["bench", "startup", rest @ ..] => bench::startup(rest),
        ["bench", "serve", "--help" | "-h"] => {
            println!("{}", serve_bench::HELP);
            ExitCode::SUCCESS
        }
        ["bench", "serve", rest @ ..] => serve_bench::serve(rest),
        ["bench", "startup-memory", rest @ ..] => bench::memory_probe(rest),
        ["bench", "startup-first-call", rest @ ..] => bench::first_call_probe(rest),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Write,
    Check,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn generated_files(mode: Mode) -> ExitCode {
    let files = [
        ("schemas/profile.schema.json", keyway_manifest::profile_schema_json()),
        ("schemas/guide.schema.json", keyway_guide::guide_schema_json()),
        ("schemas/openapi.json", keyway_server::http::openapi()),
    ];
    let mut ok = true;
    for (name, want) in files {
        let path = root().join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            println!("{} is up to date", path.display());
            continue;
        }
        match mode {
            Mode::Check => {
                eprintln!("{} is stale: run `cargo xtask schema` and commit the result", path.display());
                ok = false;
            }
            Mode::Write => match std::fs::write(&path, want) {
                Ok(()) => println!("wrote {}", path.display()),
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    ok = false;
                }
            },
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
