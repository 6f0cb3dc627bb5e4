//! The OAuth commands: `authorize-url`, `login`, `refresh`, `revoke`, `introspect`.
//!
//! Secrets never come from argv (where `ps` and shell history see them): the client secret
//! is read from an environment variable named on the command line, or from stdin.

use clap::{Args, ValueEnum};
use keyway_runtime::{
    Callback, ConfigError, Connector, ConnectorConfig, FlowError, HttpClient, HttpOptions, TokenKind, TokenSet,
};
use secrecy::SecretString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What every OAuth command needs to know about the connection.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// A profile id (from the profiles directory) or a profile file.
    profile: String,
    /// The client id (Salesforce: the Consumer Key).
    #[arg(long, env = "KEYWAY_CLIENT_ID")]
    client_id: String,
    /// The name of an environment variable holding the client secret.
    #[arg(long, value_name = "VAR", conflicts_with = "client_secret_stdin")]
    client_secret_env: Option<String>,
    /// Read the client secret from the first line of stdin.
    #[arg(long)]
    client_secret_stdin: bool,
    /// The environment (default: the profile's default environment).
    #[arg(long = "env")]
    environment: Option<String>,
    /// Selected action ids, comma-separated (default: the profile's default scopes).
    #[arg(long, value_delimiter = ',')]
    actions: Vec<String>,
    /// Custom scopes to request instead of the computed ones, comma-separated.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// A connection parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_parser = crate::parse_param)]
    params: Vec<(String, String)>,
    /// Do not send a PKCE challenge (where the profile makes PKCE optional).
    #[arg(long)]
    no_pkce: bool,
    /// Refresh without the client secret (the app's "Require Secret for Refresh Token Flow" is off).
    #[arg(long)]
    refresh_without_secret: bool,
    /// Seconds to wait for each HTTP answer.
    #[arg(long, default_value_t = 30)]
    http_timeout: u64,
}

/// Where a command reads a token set from.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// A token set as printed by `keyway login` or `keyway refresh`; `-` is stdin.
    #[arg(long, default_value = "-")]
    tokens: PathBuf,
}

/// Which token of the set.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Which {
    /// The access token.
    Access,
    /// The refresh token.
    Refresh,
}

/// Everything that can end an OAuth command early, with its exit code.
enum Failure {
    Usage(String),
    /// Failed for a reason that is not the command line's fault.
    Other(String),
    Config(ConfigError),
    Flow(FlowError),
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<FlowError> for Failure {
    fn from(e: FlowError) -> Self {
        Failure::Flow(e)
    }
}

type Outcome = Result<(), Failure>;

fn finish(result: Outcome) -> std::io::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Usage(message)) => {
            eprintln!("keyway: {message}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Other(message)) => {
            eprintln!("keyway: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Config(e)) => {
            crate::print_request_errors(&e.0);
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Flow(e)) => {
            eprintln!("keyway: {e}");
            if let Some(d) = e.diagnosis() {
                eprintln!(
                    "  kind: {}",
                    serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                );
                if let Some(rule) = &d.rule {
                    eprintln!("  rule: {rule}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Io(e)) => Err(e),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Builds the connector: the profile loaded and validated, the configuration checked.
fn connector(
    dir: &Path,
    args: &ConnectionArgs,
    redirect_uri: Option<String>,
    stdin_free: bool,
) -> Result<Connector, Failure> {
    let profile = match crate::load_named(dir, &args.profile) {
        Ok((loaded, index)) => Arc::new(loaded.profiles[index].profile.clone()),
        Err(_) => return Err(Failure::Usage(format!("cannot use the profile `{}`", args.profile))),
    };
    let client_secret = if let Some(var) = &args.client_secret_env {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(SecretString::from(value)),
            _ => return Err(Failure::Usage(format!("the environment variable `{var}` is not set"))),
        }
    } else if args.client_secret_stdin {
        if !stdin_free {
            return Err(Failure::Usage(
                "stdin cannot carry both the client secret and the token set; use --tokens FILE".into(),
            ));
        }
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Err(Failure::Usage("no client secret on stdin".into()));
        }
        Some(SecretString::from(line.to_owned()))
    } else {
        None
    };
    let config = ConnectorConfig {
        client_id: args.client_id.clone(),
        client_secret,
        selection: keyway_runtime::Selection {
            environment: args.environment.clone(),
            actions: args.actions.clone(),
            custom_scopes: args.scopes.clone(),
            parameters: super::param_map(&args.params).map_err(Failure::Usage)?,
            redirect_uri,
        },
        pkce: args.no_pkce.then_some(false),
        refresh_sends_secret: args.refresh_without_secret.then_some(false),
        ..ConnectorConfig::default()
    };
    let options = HttpOptions { timeout: Duration::from_secs(args.http_timeout), ..HttpOptions::default() };
    let http = HttpClient::new(&options).map_err(|e| Failure::Usage(e.to_string()))?;
    Connector::new(profile, config, http).map_err(Failure::Config)
}

fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Outcome {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// `keyway authorize-url`: prints `{url, state, code_verifier}`.
pub fn authorize_url(
    dir: &Path,
    args: &ConnectionArgs,
    redirect_uri: &str,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, Some(redirect_uri.to_owned()), true)?;
        let request = connector.authorization_request()?;
        let verifier = request.code_verifier.as_ref().map(secrecy::ExposeSecret::expose_secret);
        print_json(out, &serde_json::json!({"url": request.url, "state": request.state, "code_verifier": verifier}))
    })())
}

fn read_tokens(path: &Path) -> Result<TokenSet, Failure> {
    let text = keyway_manifest::read_limited_text(path, keyway_runtime::MAX_TOKEN_SET_BYTES).map_err(|e| {
        let name = if path == Path::new("-") { "stdin".to_owned() } else { path.display().to_string() };
        Failure::Usage(format!("cannot read the token set from {name}: {e}"))
    })?;
    // serde's message can quote the input, which holds tokens: say only where it broke.
    serde_json::from_str(&text).map_err(|e| {
        Failure::Usage(format!(
            "the token set is not valid JSON from `keyway login` (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// `keyway refresh`: reads a token set, prints the refreshed one.
pub fn refresh(
    dir: &Path,
    args: &ConnectionArgs,
    tokens: &TokenArgs,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, None, tokens.tokens != Path::new("-"))?;
        let set = read_tokens(&tokens.tokens)?;
        let fresh = runtime()?.block_on(connector.refresh(&set))?;
        print_json(out, &fresh)
    })())
}

fn pick(set: &TokenSet, which: Option<Which>) -> Result<(SecretString, TokenKind), Failure> {
    match (which, &set.refresh_token) {
        (Some(Which::Refresh) | None, Some(refresh)) => Ok((refresh.clone(), TokenKind::Refresh)),
        (Some(Which::Refresh), None) => Err(Failure::Usage("the token set has no refresh token".into())),
        (Some(Which::Access) | None, _) => Ok((set.access_token.clone(), TokenKind::Access)),
    }
}

/// Runs `call` on the chosen token of the token set a command reads.
fn with_token<T: serde::Serialize>(
    dir: &Path,
    args: &ConnectionArgs,
    tokens: &TokenArgs,
    which: Option<Which>,
    out: &mut impl Write,
    call: impl AsyncFnOnce(&Connector, SecretString, TokenKind) -> Result<T, FlowError>,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, None, tokens.tokens != Path::new("-"))?;
        let set = read_tokens(&tokens.tokens)?;
        connector.check_origin(&set)?;
        let (token, kind) = pick(&set, which)?;
        let answer = runtime()?.block_on(call(&connector, token, kind))?;
        print_json(out, &answer)
    })())
}

/// `keyway revoke`: revokes the refresh token (or the access token).
pub fn revoke(
    dir: &Path,
    args: &ConnectionArgs,
    tokens: &TokenArgs,
    which: Option<Which>,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    with_token(dir, args, tokens, which, out, async |connector, token, kind| {
        connector.revoke(&token, kind).await?;
        let revoked = if kind == TokenKind::Refresh { "refresh_token" } else { "access_token" };
        Ok(serde_json::json!({"revoked": revoked}))
    })
}

/// `keyway introspect`: what the provider says about the access token (or refresh token).
pub fn introspect(
    dir: &Path,
    args: &ConnectionArgs,
    tokens: &TokenArgs,
    which: Option<Which>,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    with_token(dir, args, tokens, which.or(Some(Which::Access)), out, async |connector, token, kind| {
        connector.introspect(&token, kind).await
    })
}

/// `login` serves one user: one session.
const SESSION: &str = "keyway-login";

/// `keyway login`: the loopback flow. Listens on 127.0.0.1, prints the URL to open, waits
/// for the callback with the right state, exchanges the code, prints the token set.
pub fn login(
    dir: &Path,
    args: &ConnectionArgs,
    port: u16,
    timeout: Duration,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let rt = runtime()?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .map_err(|e| Failure::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let bound = listener.local_addr()?.port();
        let redirect = format!("http://127.0.0.1:{bound}/OauthRedirect");
        let connector = Arc::new(connector(dir, args, Some(redirect.clone()), true)?);
        let url = connector.begin_authorization(SESSION)?;
        eprintln!("Waiting for the callback on {redirect}");
        eprintln!("Open this URL in a browser to log in:\n{url}");
        let tokens = rt.block_on(wait_for_callback(listener, connector, timeout))?;
        print_json(out, &tokens)
    })())
}

async fn wait_for_callback(
    listener: tokio::net::TcpListener,
    connector: Arc<Connector>,
    timeout: Duration,
) -> Result<TokenSet, Failure> {
    use axum::extract::{RawQuery, State};
    use axum::response::Html;
    type Done = tokio::sync::mpsc::Sender<Result<TokenSet, FlowError>>;
    let (done, mut finished) = tokio::sync::mpsc::channel::<Result<TokenSet, FlowError>>(1);

    async fn callback(
        State((connector, done)): State<(Arc<Connector>, Done)>,
        RawQuery(query): RawQuery,
    ) -> (axum::http::StatusCode, Html<String>) {
        let callback = Callback::from_query(query.as_deref().unwrap_or_default());
        match connector.complete_authorization(SESSION, &callback).await {
            // A callback with a wrong or replayed state is refused and the wait goes on: a
            // page cannot end someone's login by calling the port.
            Err(FlowError::State(e)) => (axum::http::StatusCode::BAD_REQUEST, page(&format!("Refused: {e}."))),
            result => {
                let ok = result.is_ok();
                let _ = done.send(result).await;
                if ok {
                    (axum::http::StatusCode::OK, page("Logged in. You can close this window."))
                } else {
                    (axum::http::StatusCode::BAD_REQUEST, page("The login failed; see the terminal."))
                }
            }
        }
    }
    let app = axum::Router::new().route("/OauthRedirect", axum::routing::get(callback)).with_state((connector, done));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let result = tokio::time::timeout(timeout, finished.recv()).await;
    server.abort();
    match result {
        Ok(Some(tokens)) => Ok(tokens?),
        Ok(None) => Err(Failure::Other("the callback server stopped".into())),
        Err(_) => Err(Failure::Other(format!("no callback within {} seconds", timeout.as_secs()))),
    }
}

fn page(message: &str) -> axum::response::Html<String> {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    axum::response::Html(format!(
        "<!doctype html><meta charset=utf-8><title>keyway login</title><p style=\"font-family:sans-serif\">{escaped}</p>"
    ))
}
