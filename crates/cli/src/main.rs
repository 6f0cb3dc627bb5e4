//! `keyway`: validate provider profiles, inspect them, print their schema.
//!
//! Exit status: 0 when there is no error, 1 when a profile has errors, 2 on bad usage.

use clap::{Parser, Subcommand, ValueEnum};
use keyway_diagnostics::{Color, Severity, render_human};
use keyway_manifest::{Loaded, LoadedProfile};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// keyway: declarative OAuth connector profiles.
#[derive(Debug, Parser)]
#[command(name = "keyway", version, about, propagate_version = true)]
struct Cli {
    /// The profiles directory.
    #[arg(long, global = true, env = "KEYWAY_PROFILES", default_value = "profiles")]
    profiles: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check profiles: YAML, schema, `extends`, and semantic rules.
    Validate {
        /// Files or directories (default: the profiles directory).
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the profile JSON Schema (the same as `schemas/profile.schema.json`).
    Schema,
    /// List the profiles, or show one resolved profile (with `extends` applied).
    Inspect {
        /// A profile id; without it, every profile is listed.
        profile: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = InspectFormat::Text)]
        format: InspectFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Source excerpts with the problem underlined.
    Human,
    /// One JSON object per diagnostic, one per line.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InspectFormat {
    /// A readable summary.
    Text,
    /// The resolved profile as JSON.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Validate { paths, format } => {
            let paths = if paths.is_empty() { vec![cli.profiles] } else { paths };
            validate(&paths, format, &mut out)
        }
        Command::Schema => out.write_all(keyway_manifest::profile_schema_json().as_bytes()).map(|()| ExitCode::SUCCESS),
        Command::Inspect { profile, format } => inspect(&cli.profiles, profile.as_deref(), format, &mut out),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`keyway ... | head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn color() -> Color {
    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() { Color::Always } else { Color::Never }
}

fn validate(paths: &[PathBuf], format: Format, out: &mut impl Write) -> std::io::Result<ExitCode> {
    let loaded = keyway_validate::validate_paths(paths);
    match format {
        Format::Human => {
            let color = color();
            for d in &loaded.diagnostics {
                let text = d.file.as_deref().and_then(|f| loaded.source_text(f));
                writeln!(out, "{}\n", render_human(d, text, color))?;
            }
            let count = |s| loaded.diagnostics.iter().filter(|d| d.severity == s).count();
            writeln!(
                out,
                "checked {} profile(s) in {} file(s): {} error(s), {} warning(s)",
                loaded.profiles.len(),
                loaded.sources.len(),
                count(Severity::Error),
                count(Severity::Warning)
            )?;
        }
        Format::Json => {
            for d in &loaded.diagnostics {
                serde_json::to_writer(&mut *out, d)?;
                writeln!(out)?;
            }
        }
    }
    Ok(exit_code(&loaded))
}

fn exit_code(loaded: &Loaded) -> ExitCode {
    if loaded.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn inspect(dir: &PathBuf, id: Option<&str>, format: InspectFormat, out: &mut impl Write) -> std::io::Result<ExitCode> {
    let loaded = keyway_validate::validate_paths(std::slice::from_ref(dir));
    if loaded.has_errors() {
        for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
            let text = d.file.as_deref().and_then(|f| loaded.source_text(f));
            eprintln!("{}\n", render_human(d, text, Color::Never));
        }
        eprintln!("keyway: {} has errors; run `keyway validate` for details", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    let Some(id) = id else {
        return list(&loaded, format, out).map(|()| ExitCode::SUCCESS);
    };
    let Some(found) = loaded.profile(id) else {
        let ids = loaded.profiles.iter().map(|p| p.profile.id.as_str());
        let hint = keyway_manifest::closest(id, ids).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
        eprintln!("keyway: no profile `{id}` in {}{hint}", dir.display());
        return Ok(ExitCode::from(2));
    };
    match format {
        InspectFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &found.profile)?;
            writeln!(out)?;
        }
        InspectFormat::Text => show(&loaded, found, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn list(loaded: &Loaded, format: InspectFormat, out: &mut impl Write) -> std::io::Result<()> {
    if let InspectFormat::Json = format {
        let ids: Vec<&str> = loaded.profiles.iter().map(|p| p.profile.id.as_str()).collect();
        serde_json::to_writer_pretty(&mut *out, &ids)?;
        return writeln!(out);
    }
    writeln!(out, "{:<28} {:<28} {:>7} {:>6}  extends", "id", "name", "actions", "scopes")?;
    for p in &loaded.profiles {
        let p = &p.profile;
        let extends = p.extends.as_deref().unwrap_or("-");
        writeln!(out, "{:<28} {:<28} {:>7} {:>6}  {extends}", p.id, p.name, p.actions.len(), p.scopes.len())?;
    }
    Ok(())
}

fn show(loaded: &Loaded, found: &LoadedProfile, out: &mut impl Write) -> std::io::Result<()> {
    let p = &found.profile;
    let files: Vec<&str> = found.chain.iter().map(|s| loaded.sources[*s].name.as_str()).collect();
    writeln!(out, "{} ({})", p.name, p.id)?;
    writeln!(out, "  from: {}", files.join(" <- "))?;
    writeln!(out, "\nenvironments:")?;
    for (id, env) in &p.environments {
        let default = if env.default { " (default)" } else { "" };
        let vars: Vec<String> = env.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "  {id:<12} {}{default}  {}", env.label, vars.join(" "))?;
    }
    if !p.parameters.is_empty() {
        writeln!(out, "\nparameters:")?;
        for (id, param) in &p.parameters {
            writeln!(out, "  {id:<12} {}  /{}/", param.label, param.pattern)?;
        }
    }
    let grants: Vec<String> = p.auth.grants.iter().map(|g| format!("{g:?}")).collect();
    writeln!(
        out,
        "\nauth: {}; pkce {:?}; default scopes: {}",
        grants.join(", "),
        p.auth.pkce,
        p.auth.default_scopes.join(" ")
    )?;
    writeln!(out, "  token endpoint: {}", p.auth.endpoints.token)?;
    writeln!(out, "\nscopes ({}):", p.scopes.len())?;
    for (value, scope) in &p.scopes {
        let refresh = if scope.grants_refresh { "  [refresh]" } else { "" };
        writeln!(out, "  {value:<28} {}{refresh}", scope.label)?;
    }
    writeln!(out, "\nactions ({}):", p.actions.len())?;
    for (id, action) in &p.actions {
        let method = format!("{:?}", action.method).to_uppercase();
        writeln!(out, "  {id:<32} {method:<6} {:<48} {}", action.path, action.scopes.join(" "))?;
    }
    if let Some(guide) = &p.guide {
        let steps: usize = guide.sections.values().map(|s| s.steps.len()).sum();
        writeln!(out, "\nguide: {} sections, {steps} steps", guide.sections.len())?;
    }
    writeln!(out, "errors: {} rules", p.errors.len())
}
