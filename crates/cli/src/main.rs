//! `keyway`: validate provider profiles, inspect them, resolve scopes, render guides, print
//! their schema, and run their OAuth flows.
//!
//! Exit status: 0 when there is no error, 1 when a profile has errors, 2 on bad usage.

use clap::{Parser, Subcommand, ValueEnum};
use keyway_diagnostics::{Color, Diagnostic, Severity, render_human, render_sarif};
use keyway_manifest::{Loaded, LoadedProfile};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `eprintln!` that never panics: a closed stderr (`keyway ... 2>&1 | head -1`) ends the
/// message, not the process.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that never panics.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod import_oidc;
mod oauth;
mod serve;

/// One line on stderr, never a panic.
pub(crate) fn say(line: &str) {
    say!("{line}");
}

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
    /// Print the scopes to request for a selection of actions, or what is wrong with it.
    Scopes {
        /// A profile id (from the profiles directory) or a profile file.
        profile: String,
        /// Selected action ids, comma-separated (default: the profile's default scopes).
        #[arg(long, value_delimiter = ',')]
        actions: Vec<String>,
        /// Custom scopes to request instead of the computed ones, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// The environment (default: the profile's default environment).
        #[arg(long = "env")]
        environment: Option<String>,
        /// A connection parameter, `NAME=VALUE` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// The redirect URI to check.
        #[arg(long)]
        redirect_uri: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ScopesFormat::Text)]
        format: ScopesFormat,
    },
    /// Render the setup guide for a selection of actions.
    Guide {
        /// A profile id (from the profiles directory) or a profile file; with `--from-url`,
        /// the URL's profile is used.
        #[arg(required_unless_present = "from_url")]
        profile: Option<String>,
        /// Render exactly what a guide URL encodes (the selection and every platform choice).
        #[arg(long, value_name = "URL", conflicts_with_all = [
            "profile", "actions", "environment", "callback_url", "app_name", "flavour", "scopes",
            "no_pkce", "refresh_without_secret", "rotates_refresh_tokens", "params", "grants",
        ])]
        from_url: Option<String>,
        #[command(flatten)]
        selection: GuideSelection,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GuideFormat::Md)]
        format: GuideFormat,
        /// HTML only: print an embeddable fragment instead of a standalone page.
        #[arg(long)]
        fragment: bool,
        /// Base URL of the docs page (http or https); adds the guide's shareable URL.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print an authorization URL with its `state` and PKCE `code_verifier`, as JSON.
    #[command(name = "authorize-url")]
    AuthorizeUrl {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        /// The redirect URI registered with the provider.
        #[arg(long)]
        redirect_uri: String,
    },
    /// Log in through a browser (loopback flow): prints the URL to open, waits for the
    /// callback on this machine, checks its state (and `iss`), exchanges the code, prints the
    /// token set.
    ///
    /// Register the redirect URI it uses with the provider: by default
    /// http://127.0.0.1:1717/OauthRedirect; with `--redirect-uri`, exactly that URI.
    Login {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        /// The local port; the redirect URI is http://127.0.0.1:PORT/OauthRedirect (0: any free port).
        #[arg(long, default_value_t = 1717, conflicts_with = "redirect_uri")]
        port: u16,
        /// The redirect URI the app registered, on this machine: http://127.0.0.1:PORT/PATH
        /// (or localhost, or [::1]); login listens on that port and path.
        #[arg(long, value_name = "URI")]
        redirect_uri: Option<String>,
        /// Seconds to wait for the callback.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Finish a flow started by `authorize-url`: reads its JSON (state, code_verifier) from
    /// --flow FILE or stdin, with the URL the browser came back to as `callback` (or pasted on
    /// stdin after --flow FILE), checks state and `iss`, exchanges the code, prints the token set.
    #[command(name = "exchange-code")]
    ExchangeCode {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        /// The redirect URI the authorization used (the same as `authorize-url`'s).
        #[arg(long)]
        redirect_uri: String,
        /// `authorize-url`'s JSON; `-` is stdin.
        #[arg(long, default_value = "-")]
        flow: PathBuf,
    },
    /// The client credentials grant: a token set for the app itself.
    #[command(name = "client-credentials")]
    ClientCredentials {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
    },
    /// The JWT bearer grant (RFC 7523): a token set for a user, from an assertion signed with
    /// the private key (--private-key-env VAR or --private-key-file FILE).
    #[command(name = "jwt-bearer")]
    JwtBearer {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        /// The user the token is for (the assertion's `sub`).
        #[arg(long)]
        subject: String,
    },
    /// The device flow (RFC 8628): prints the code to enter and where, polls until the user
    /// answers, prints the token set.
    Device {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        /// Seconds to wait at most (the provider's expiry may end it sooner).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Refresh a token set (from a file or stdin) and print the new one, or with `--write`
    /// save it over `--tokens FILE` (a provider that rotates refresh tokens makes the old
    /// file useless after one refresh).
    Refresh {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        #[command(flatten)]
        tokens: oauth::TokenArgs,
        /// Write the refreshed set back to the `--tokens` file (atomically, mode 0600) instead
        /// of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Revoke a token set's refresh token (or its access token).
    Revoke {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        #[command(flatten)]
        tokens: oauth::TokenArgs,
        /// Which token (default: the refresh token when there is one).
        #[arg(long, value_enum)]
        token: Option<oauth::Which>,
    },
    /// Ask the provider about a token set's access token (or its refresh token).
    Introspect {
        #[command(flatten)]
        connection: oauth::ConnectionArgs,
        #[command(flatten)]
        tokens: oauth::TokenArgs,
        /// Which token (default: the access token).
        #[arg(long, value_enum)]
        token: Option<oauth::Which>,
    },
    /// Convert another catalogue of providers into keyway profiles.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run the connect hub: the HTTP API, the hosted connect page and the encrypted token
    /// store (see docs/server.md).
    Serve(serve::ServeArgs),
    /// Encryption keys (generate, rotate) and management API keys.
    #[command(subcommand)]
    Keys(serve::KeysCommand),
    /// The connect hub's audit trail (export).
    #[command(subcommand)]
    Audit(serve::AuditCommand),
    /// List the profiles, or show one resolved profile (with `extends` applied).
    Inspect {
        /// A profile id; without it, every profile is listed.
        profile: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = InspectFormat::Text)]
        format: InspectFormat,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Nango's public catalogue (`providers.yaml` of `@nangohq/providers`): writes one profile
    /// per convertible entry and `IMPORT-REPORT.md` to the output directory, then validates
    /// the output. Exit status 1 if any generated profile has errors.
    Nango {
        /// Nango's `providers.yaml`.
        providers: PathBuf,
        /// Nango's `providers.scopes.yaml` (default: the one beside PROVIDERS, if any).
        #[arg(long)]
        scopes: Option<PathBuf>,
        /// The directory to write to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// A draft profile from an OpenID Connect discovery document or RFC 8414 metadata:
    /// endpoints, issuer, grants, PKCE, client authentication, scopes. Prints it (or writes
    /// DIR/ID.yaml with --out), validates it, and lists what is left to fill in.
    Oidc {
        /// The issuer URL (its metadata is fetched from the well-known locations), or a
        /// metadata document's file.
        source: String,
        /// The profile id (default: from the issuer's host).
        #[arg(long)]
        id: Option<String>,
        /// The directory to write the draft to (created if missing); without it, stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds to wait for the metadata.
        #[arg(long, default_value_t = 30)]
        http_timeout: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Source excerpts with the problem underlined.
    Human,
    /// One JSON object per diagnostic, one per line.
    Json,
    /// A SARIF 2.1.0 log, for code-scanning annotations in CI.
    Sarif,
}

/// What a guide is for: the customer's selection and the platform's choices.
#[derive(Debug, clap::Args)]
struct GuideSelection {
    /// Selected action ids, comma-separated (default: the profile's default scopes).
    #[arg(long, value_delimiter = ',')]
    actions: Vec<String>,
    /// The environment (default: the profile's default environment).
    #[arg(long = "env")]
    environment: Option<String>,
    /// The platform's callback URL.
    #[arg(long)]
    callback_url: Option<String>,
    /// The name to give the app in the provider's console.
    #[arg(long)]
    app_name: Option<String>,
    /// The console variant, by id or alias (Salesforce: `eca`, `connected-app`).
    #[arg(long)]
    flavour: Option<String>,
    /// Custom scopes the connection will request, comma-separated.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// The grants (flows) the connection uses, comma-separated (default: the authorization
    /// code and refresh token grants); other flows' steps show only when listed.
    #[arg(long, value_delimiter = ',', value_parser = parse_grant)]
    grants: Option<Vec<keyway_manifest::model::Grant>>,
    /// The platform sends no PKCE challenge (the guide then says to turn the requirement off).
    #[arg(long)]
    no_pkce: bool,
    /// The platform refreshes tokens without the client secret.
    #[arg(long)]
    refresh_without_secret: bool,
    /// The platform stores the new refresh token after every refresh (the guide then says to
    /// turn refresh token rotation on).
    #[arg(long)]
    rotates_refresh_tokens: bool,
    /// A connection parameter, `NAME=VALUE` (repeatable; the sign-in link uses `my_domain`).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

impl GuideSelection {
    fn into_request(self) -> Result<keyway_guide::GuideRequest, String> {
        Ok(keyway_guide::GuideRequest {
            actions: self.actions,
            environment: self.environment,
            variant: self.flavour,
            callback_url: self.callback_url,
            app_name: self.app_name,
            custom_scopes: self.scopes,
            sends_pkce: self.no_pkce.then_some(false),
            refresh_sends_secret: self.refresh_without_secret.then_some(false),
            rotates_refresh_tokens: self.rotates_refresh_tokens.then_some(true),
            grants: self.grants,
            parameters: param_map(&self.params)?,
            base_url: None,
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GuideFormat {
    /// Markdown.
    Md,
    /// HTML.
    Html,
    /// Structured JSON (schemas/guide.schema.json).
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScopesFormat {
    /// The scope string, in the profile's separator.
    Text,
    /// The plan: each scope with the actions that need it.
    Json,
}

/// The `--param NAME=VALUE` pairs as a map; a name given twice is an error, not a silent
/// overwrite (which value did the user mean?).
pub(crate) fn param_map(params: &[(String, String)]) -> Result<indexmap::IndexMap<String, String>, String> {
    let mut map = indexmap::IndexMap::new();
    for (name, value) in params {
        if map.insert(name.clone(), value.clone()).is_some() {
            return Err(format!("`--param {name}` is given more than once"));
        }
    }
    Ok(map)
}

fn parse_grant(arg: &str) -> Result<keyway_manifest::model::Grant, String> {
    serde_json::from_value(serde_json::Value::String(arg.to_owned())).map_err(|_| {
        format!(
            "`{arg}` is not a grant (authorization_code, refresh_token, client_credentials, jwt_bearer, device_code)"
        )
    })
}

fn parse_param(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{arg}` is not NAME=VALUE"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InspectFormat {
    /// A readable summary.
    Text,
    /// The resolved profile as JSON.
    Json,
}

// Loading a catalogue makes and frees many small strings and maps; mimalloc does that in a
// fraction of the system allocator's time (see docs/startup-bench.md).
#[global_allocator]
static ALLOCATOR: keyway_alloc::Allocator = keyway_alloc::Allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Validate { paths, format } => {
            let paths = if paths.is_empty() { vec![cli.profiles] } else { paths };
            validate(&paths, format, &mut out)
        }
        Command::Import(ImportCommand::Nango { providers, scopes, out: dir }) => {
            import_nango(&providers, scopes.as_deref(), &dir)
        }
        Command::Import(ImportCommand::Oidc { source, id, out: dir, http_timeout }) => {
            import_oidc::run(&source, id, dir.as_deref(), std::time::Duration::from_secs(http_timeout), &mut out)
        }
        Command::Schema => out.write_all(keyway_manifest::profile_schema_json().as_bytes()).map(|()| ExitCode::SUCCESS),
        Command::Inspect { profile, format } => inspect(&cli.profiles, profile.as_deref(), format, &mut out),
        Command::Guide { profile, from_url, selection, format, fragment, url } => {
            let found = match from_url {
                // The guide shares the URL it came from (in canonical form) unless --url says otherwise.
                Some(link) => keyway_guide::parse_guide_url(&link).map_err(|d| *d).map(|(profile, mut request)| {
                    request.base_url = Some(link);
                    (profile, request)
                }),
                None => selection.into_request().map(|r| (profile.unwrap_or_default(), r)).map_err(|e| {
                    Diagnostic::new(keyway_diagnostics::Code::InvalidParameter, e).at_pointer("/parameters")
                }),
            };
            match found {
                Ok((profile, mut request)) => {
                    if url.is_some() {
                        request.base_url = url;
                    }
                    guide_command(&cli.profiles, &profile, &request, (format, fragment), &mut out)
                }
                Err(d) => {
                    print_request_errors(&[d]);
                    return ExitCode::from(2);
                }
            }
        }
        Command::AuthorizeUrl { connection, redirect_uri } => {
            oauth::authorize_url(&cli.profiles, &connection, &redirect_uri, &mut out)
        }
        Command::Login { connection, port, redirect_uri, timeout } => {
            let redirect = match redirect_uri.as_deref().map(oauth::LoopbackRedirect::parse) {
                None => oauth::LoopbackRedirect::default_on(port),
                Some(Ok(redirect)) => redirect,
                Some(Err(e)) => {
                    say!("keyway: {e}");
                    return ExitCode::from(2);
                }
            };
            oauth::login(&cli.profiles, &connection, &redirect, std::time::Duration::from_secs(timeout), &mut out)
        }
        Command::ExchangeCode { connection, redirect_uri, flow } => {
            oauth::exchange_code(&cli.profiles, &connection, &redirect_uri, &flow, &mut out)
        }
        Command::ClientCredentials { connection } => oauth::client_credentials(&cli.profiles, &connection, &mut out),
        Command::JwtBearer { connection, subject } => oauth::jwt_bearer(&cli.profiles, &connection, &subject, &mut out),
        Command::Device { connection, timeout } => {
            oauth::device(&cli.profiles, &connection, std::time::Duration::from_secs(timeout), &mut out)
        }
        Command::Refresh { connection, tokens, write } => {
            oauth::refresh(&cli.profiles, &connection, &tokens, write, &mut out)
        }
        Command::Revoke { connection, tokens, token } => {
            oauth::revoke(&cli.profiles, &connection, &tokens, token, &mut out)
        }
        Command::Introspect { connection, tokens, token } => {
            oauth::introspect(&cli.profiles, &connection, &tokens, token, &mut out)
        }
        Command::Serve(args) => serve::serve(&cli.profiles, args),
        Command::Keys(command) => serve::keys(command, &mut out),
        Command::Audit(command) => serve::audit(command, &mut out),
        Command::Scopes { profile, actions, scopes, environment, params, redirect_uri, format } => {
            let parameters = match param_map(&params) {
                Ok(map) => map,
                Err(e) => {
                    say!("keyway: {e}");
                    return ExitCode::from(2);
                }
            };
            let selection = keyway_validate::Selection {
                environment,
                actions,
                custom_scopes: scopes,
                parameters,
                redirect_uri,
                grant: None,
            };
            scopes_command(&cli.profiles, &profile, &selection, format, &mut out)
        }
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`keyway ... | head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say!("keyway: {e}");
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
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &render_sarif(&loaded.diagnostics, env!("CARGO_PKG_VERSION")))?;
            writeln!(out)?;
        }
    }
    let code = exit_code(&loaded);
    // The process ends next: leave the memory to the OS instead of freeing a thousand
    // profiles one allocation at a time.
    std::mem::forget(loaded);
    Ok(code)
}

fn import_nango(providers: &Path, scopes: Option<&Path>, dir: &Path) -> std::io::Result<ExitCode> {
    let read = |path: &Path| {
        keyway_stdx::read_limited_text(path, keyway_import::MAX_INPUT_BYTES)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read `{}`: {e}", path.display())))
    };
    let providers_text = read(providers)?;
    let beside = providers.with_file_name("providers.scopes.yaml");
    let scopes = match scopes {
        Some(path) => Some(read(path)?),
        None if beside.is_file() => Some(read(&beside)?),
        None => None,
    };
    let import = match keyway_import::nango::convert(&providers_text, scopes.as_deref()) {
        Ok(import) => import,
        Err(d) => {
            let mut d = *d;
            if d.file.as_deref() == Some("providers.yaml") {
                d.file = Some(providers.display().to_string());
            }
            let text = if d.file.as_deref() == Some(&*providers.display().to_string()) {
                Some(providers_text.as_str())
            } else {
                None
            };
            say!("{}", render_human(&d, text, Color::Never));
            return Ok(ExitCode::FAILURE);
        }
    };
    std::fs::create_dir_all(dir)?;
    for profile in &import.profiles {
        std::fs::write(dir.join(format!("{}.yaml", profile.id)), &profile.yaml)?;
    }
    let report_path = dir.join("IMPORT-REPORT.md");
    std::fs::write(&report_path, import.report.to_markdown())?;
    say_raw!("{}", import.report.summary());
    say!("wrote {} profile(s) and {} to {}", import.profiles.len(), report_path.display(), dir.display());
    // The importer validated its output as a set; check the files as written, as a user would.
    let loaded = keyway_validate::validate_paths(&[dir]);
    if loaded.has_errors() {
        print_errors(&loaded);
        say!("keyway: the generated profiles have errors");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads and validates what a command names: a profile id from the profiles directory, or a
/// profile file (with its parents beside it). On failure, prints why and gives the exit code.
fn load_named(dir: &Path, name: &str) -> Result<(Loaded, usize), ExitCode> {
    let path = Path::new(name);
    let loaded = keyway_validate::validate_paths(&[if path.is_file() { path } else { dir }]);
    let id = if path.is_file() { path.file_stem().and_then(|s| s.to_str()).unwrap_or(name) } else { name };
    let usable = loaded.usable(id).map(|_| ()).map_err(|blocking| blocking.into_iter().cloned().collect::<Vec<_>>());
    match (usable, loaded.profiles.iter().position(|p| p.profile.id == id)) {
        (Ok(()), Some(index)) => Ok((loaded, index)),
        (Err(blocking), _) if !blocking.is_empty() => {
            for d in &blocking {
                let text = d.file.as_deref().and_then(|f| loaded.source_text(f));
                say!("{}\n", render_human(d, text, Color::Never));
            }
            say!("keyway: the profile `{id}` is not used: the errors above affect it (run `keyway validate`)");
            Err(ExitCode::FAILURE)
        }
        _ => {
            print_errors(&loaded);
            let ids = loaded.profiles.iter().map(|p| p.profile.id.as_str());
            let hint = keyway_stdx::closest(name, ids).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
            say!("keyway: no usable profile `{name}` in {}{hint}", dir.display());
            Err(ExitCode::from(2))
        }
    }
}

fn scopes_command(
    dir: &Path,
    name: &str,
    selection: &keyway_validate::Selection,
    format: ScopesFormat,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    let (loaded, index) = match load_named(dir, name) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let found = &loaded.profiles[index];
    let (plan, diagnostics) = keyway_validate::check_selection(&found.profile, selection);
    if keyway_diagnostics::has_errors(&diagnostics) {
        print_request_errors(&diagnostics);
        return Ok(ExitCode::FAILURE);
    }
    match format {
        ScopesFormat::Text => writeln!(out, "{}", plan.scope_string())?,
        ScopesFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &plan)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn guide_command(
    dir: &Path,
    name: &str,
    request: &keyway_guide::GuideRequest,
    (format, fragment): (GuideFormat, bool),
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    let (loaded, index) = match load_named(dir, name) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let found = &loaded.profiles[index];
    let guide = match keyway_guide::render(&found.profile, request) {
        Ok(guide) => guide,
        Err(diagnostics) => {
            print_request_errors(&diagnostics);
            return Ok(ExitCode::FAILURE);
        }
    };
    match format {
        GuideFormat::Md => out.write_all(guide.to_markdown().as_bytes())?,
        GuideFormat::Html => out.write_all(guide.to_html(!fragment).as_bytes())?,
        GuideFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &guide)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Diagnostics about what the command line asked for: they point into it, not into a file.
fn print_request_errors(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        let mut d = d.clone();
        d.file = Some("<command line>".to_owned());
        say!("{}\n", render_human(&d, None, Color::Never));
    }
}

fn print_errors(loaded: &Loaded) {
    for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
        let text = d.file.as_deref().and_then(|f| loaded.source_text(f));
        say!("{}\n", render_human(d, text, Color::Never));
    }
}

fn exit_code(loaded: &Loaded) -> ExitCode {
    if loaded.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn inspect(dir: &PathBuf, id: Option<&str>, format: InspectFormat, out: &mut impl Write) -> std::io::Result<ExitCode> {
    let loaded = keyway_validate::validate_paths(std::slice::from_ref(dir));
    if loaded.has_errors() {
        print_errors(&loaded);
        say!("keyway: {} has errors; run `keyway validate` for details", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    let Some(id) = id else {
        return list(&loaded, format, out).map(|()| ExitCode::SUCCESS);
    };
    let Some(found) = loaded.profile(id) else {
        let ids = loaded.profiles.iter().map(|p| p.profile.id.as_str());
        let hint = keyway_stdx::closest(id, ids).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
        say!("keyway: no profile `{id}` in {}{hint}", dir.display());
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
    let id_width = loaded.profiles.iter().map(|p| p.profile.id.chars().count()).max().unwrap_or(0).max(2);
    let name_width = loaded.profiles.iter().map(|p| p.profile.name.chars().count()).max().unwrap_or(0).max(4);
    writeln!(out, "{:<id_width$}  {:<name_width$}  {:>7} {:>6}  extends", "id", "name", "actions", "scopes")?;
    for p in &loaded.profiles {
        let p = &p.profile;
        let extends = p.extends.as_deref().unwrap_or("-");
        writeln!(
            out,
            "{:<id_width$}  {:<name_width$}  {:>7} {:>6}  {extends}",
            p.id,
            p.name,
            p.actions.len(),
            p.scopes.len()
        )?;
    }
    Ok(())
}

/// A value as the profile writes it (`authorization_code`, `required`, `get`), not as Rust
/// names it.
fn word(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The width of the longest of `names`, for aligned columns.
fn width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

fn show(loaded: &Loaded, found: &LoadedProfile, out: &mut impl Write) -> std::io::Result<()> {
    let p = &found.profile;
    let files: Vec<&str> = found.chain.iter().map(|s| loaded.sources[*s].name.as_str()).collect();
    writeln!(out, "{} ({})", p.name, p.id)?;
    writeln!(out, "  from: {}", files.join(" <- "))?;
    writeln!(out, "\nenvironments:")?;
    let w = width(p.environments.keys().map(String::as_str));
    let lw = width(p.environments.values().map(|e| e.label.as_str()));
    for (id, env) in &p.environments {
        let default = if env.default { " (default)" } else { "          " };
        let vars: Vec<String> = env.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let line = format!("  {id:<w$}  {:<lw$}{default}  {}", env.label, vars.join(" "));
        writeln!(out, "{}", line.trim_end())?;
    }
    if !p.parameters.is_empty() {
        writeln!(out, "\nparameters:")?;
        let w = width(p.parameters.keys().map(String::as_str));
        let lw = width(p.parameters.values().map(|p| p.label.as_str()));
        for (id, param) in &p.parameters {
            writeln!(out, "  {id:<w$}  {:<lw$}  /{}/", param.label, param.pattern)?;
        }
    }
    writeln!(out, "\nauth:")?;
    if p.auth.is_oauth2() {
        write_oauth(out, &p.auth)?;
    } else {
        write_credential(out, &p.auth)?;
    }
    writeln!(out, "\nscopes ({}):", p.scopes.len())?;
    let w = width(p.scopes.keys().map(String::as_str));
    for (value, scope) in &p.scopes {
        let refresh = if scope.grants_refresh { "  [refresh]" } else { "" };
        let line = format!("  {value:<w$}  {}{refresh}", scope.label.as_deref().unwrap_or_default());
        writeln!(out, "{}", line.trim_end())?;
    }
    writeln!(out, "\nactions ({}):", p.actions.len())?;
    let w = width(p.actions.keys().map(String::as_str));
    let pw = width(p.actions.values().map(|a| a.path.as_str()));
    for (id, action) in &p.actions {
        let method = word(&action.method).to_uppercase();
        writeln!(out, "  {id:<w$}  {method:<6} {:<pw$}  {}", action.path, action.scopes.join(" "))?;
    }
    if let Some(guide) = &p.guide {
        let steps: usize = guide.sections.values().map(|s| s.steps.len()).sum();
        writeln!(out, "\nguide: {} sections, {steps} steps", guide.sections.len())?;
    }
    writeln!(out, "errors: {} rules", p.errors.len())
}

/// `keyway show`'s lines for an OAuth 2.0 profile's `auth`.
fn write_oauth(out: &mut impl std::io::Write, auth: &keyway_manifest::model::Auth) -> std::io::Result<()> {
    let grants: Vec<String> = auth.grants.iter().map(word).collect();
    writeln!(out, "  grants:          {}", grants.join(", "))?;
    writeln!(out, "  client_auth:     {}", word(&auth.client_auth))?;
    writeln!(out, "  pkce:            {}", word(&auth.pkce))?;
    if let Some(issuer) = &auth.issuer {
        writeln!(out, "  issuer:          {issuer}")?;
    }
    writeln!(out, "  default_scopes:  {}", auth.default_scopes.join(" "))?;
    if let Some(endpoints) = &auth.endpoints {
        for (name, value) in [
            ("authorize", endpoints.authorize.as_ref()),
            ("token", Some(&endpoints.token)),
            ("refresh", endpoints.refresh.as_ref()),
            ("revoke", endpoints.revoke.as_ref()),
            ("introspect", endpoints.introspect.as_ref()),
            ("userinfo", endpoints.userinfo.as_ref()),
            ("device_authorization", endpoints.device_authorization.as_ref()),
        ] {
            if let Some(value) = value {
                writeln!(out, "  {:<16} {value}", format!("{name}:"))?;
            }
        }
    }
    if let Some(refresh) = &auth.refresh {
        writeln!(
            out,
            "  refresh:         send_client_secret {}, rotation {}",
            refresh.send_client_secret,
            word(&refresh.rotation)
        )?;
    }
    Ok(())
}

/// `keyway show`'s lines for a profile of another credential kind: its fields and where the
/// credential goes (templates as written; values never appear in a profile).
fn write_credential(out: &mut impl std::io::Write, auth: &keyway_manifest::model::Auth) -> std::io::Result<()> {
    writeln!(out, "  kind:            {}", auth.kind.as_str())?;
    for (id, field) in &auth.fields {
        let secret = if field.secret { "  [secret]" } else { "" };
        writeln!(out, "  field {id}: {}{secret}", field.label)?;
    }
    if let Some(exchange) = &auth.exchange {
        writeln!(out, "  exchange:        POST {} (token at {})", exchange.url, exchange.token_pointer)?;
    }
    if let Some(apply) = &auth.apply {
        for name in apply.headers.keys() {
            writeln!(out, "  header:          {name}")?;
        }
        for name in apply.query.keys() {
            writeln!(out, "  query:           {name}")?;
        }
        if apply.basic.is_some() {
            writeln!(out, "  basic:           HTTP Basic")?;
        }
    }
    Ok(())
}
