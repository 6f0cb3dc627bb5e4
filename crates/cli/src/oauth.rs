//! The OAuth commands: `authorize-url`, `login`, `exchange-code`, `refresh`, `revoke`,
//! `introspect`, `client-credentials`, `jwt-bearer`, `device`.
//!
//! Secrets never come from argv (where `ps` and shell history see them): the client secret
//! and private key are read from an environment variable named on the command line, a file,
//! or stdin.

use clap::{Args, ValueEnum};
use keyway_runtime::{
    Callback, ConfigError, Connector, ConnectorConfig, FlowError, HttpClient, HttpOptions, TokenKind, TokenSet,
};
use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Write};
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
    #[arg(long, value_name = "VAR", conflicts_with_all = ["client_secret_stdin", "client_secret_file"])]
    client_secret_env: Option<String>,
    /// Read the client secret from the first line of stdin.
    #[arg(long, conflicts_with = "client_secret_file")]
    client_secret_stdin: bool,
    /// Read the client secret from the first line of a file.
    #[arg(long, value_name = "FILE")]
    client_secret_file: Option<PathBuf>,
    /// The name of an environment variable holding the PEM private key (JWT bearer grant,
    /// `private_key_jwt` client authentication).
    #[arg(long, value_name = "VAR", conflicts_with = "private_key_file")]
    private_key_env: Option<String>,
    /// A file holding the PEM private key.
    #[arg(long, value_name = "FILE")]
    private_key_file: Option<PathBuf>,
    /// The key id (`kid`) the provider knows the private key by.
    #[arg(long, value_name = "KID")]
    private_key_id: Option<String>,
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
            crate::say(&format!("keyway: {message}"));
            Ok(ExitCode::from(2))
        }
        Err(Failure::Other(message)) => {
            crate::say(&format!("keyway: {message}"));
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Config(e)) => {
            crate::print_request_errors(&e.0);
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Flow(e)) => {
            crate::say(&format!("keyway: {e}"));
            if let Some(d) = e.diagnosis() {
                crate::say(&format!(
                    "  kind: {}",
                    serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                ));
                if let Some(rule) = &d.rule {
                    crate::say(&format!("  rule: {rule}"));
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
    grant: Option<keyway_manifest::model::Grant>,
) -> Result<Connector, Failure> {
    let profile = match crate::load_named(dir, &args.profile) {
        Ok((loaded, index)) => Arc::new(loaded.profiles[index].profile.clone()),
        Err(_) => return Err(Failure::Usage(format!("cannot use the profile `{}`", args.profile))),
    };
    let client_secret = if let Some(var) = &args.client_secret_env {
        Some(secret_from_env(var)?)
    } else if let Some(path) = &args.client_secret_file {
        let text = read_secret_file(path)?;
        let line = text.expose_secret().lines().next().unwrap_or_default().trim_end_matches('\r');
        if line.is_empty() {
            return Err(Failure::Usage(format!("{}: no client secret on its first line", path.display())));
        }
        Some(SecretString::from(line.to_owned()))
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
            grant,
        },
        pkce: args.no_pkce.then_some(false),
        refresh_sends_secret: args.refresh_without_secret.then_some(false),
        private_key: match (&args.private_key_env, &args.private_key_file) {
            (Some(var), _) => Some(secret_from_env(var)?),
            (None, Some(path)) => Some(read_secret_file(path)?),
            (None, None) => None,
        },
        private_key_id: args.private_key_id.clone(),
        ..ConnectorConfig::default()
    };
    let options = HttpOptions { timeout: Duration::from_secs(args.http_timeout), ..HttpOptions::default() };
    let http = HttpClient::new(&options).map_err(|e| Failure::Usage(e.to_string()))?;
    Connector::new(profile, config, http).map_err(Failure::Config)
}

fn secret_from_env(var: &str) -> Result<SecretString, Failure> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(SecretString::from(value)),
        _ => Err(Failure::Usage(format!("the environment variable `{var}` is not set"))),
    }
}

/// Secrets and keys are small; a bigger file is the wrong file.
const MAX_SECRET_FILE: u64 = 64 * 1024;

fn read_secret_file(path: &Path) -> Result<SecretString, Failure> {
    let text = read_bounded(path, MAX_SECRET_FILE)?;
    Ok(SecretString::from(text))
}

/// Reads a whole file of at most `max` bytes, or says which file and why not (never its text).
/// `-` is stdin. A FIFO or device in a file's place is refused, never waited on.
fn read_bounded(path: &Path, max: u64) -> Result<String, Failure> {
    keyway_stdx::read_limited_text(path, max).map_err(|e| {
        let name = if path == Path::new("-") { "stdin".to_owned() } else { path.display().to_string() };
        Failure::Usage(format!("cannot read {name}: {e}"))
    })
}

fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Outcome {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// `keyway authorize-url`: prints `{url, state, code_verifier, nonce}`.
pub fn authorize_url(
    dir: &Path,
    args: &ConnectionArgs,
    redirect_uri: &str,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, Some(redirect_uri.to_owned()), true, None)?;
        let request = connector.authorization_request()?;
        let verifier = request.code_verifier.as_ref().map(secrecy::ExposeSecret::expose_secret);
        print_json(
            out,
            &serde_json::json!({"url": request.url, "state": request.state, "code_verifier": verifier, "nonce": request.nonce}),
        )
    })())
}

fn read_tokens(path: &Path) -> Result<TokenSet, Failure> {
    let text = keyway_stdx::read_limited_text(path, keyway_runtime::MAX_TOKEN_SET_BYTES).map_err(|e| {
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

/// `keyway refresh`: reads a token set, prints the refreshed one (or, with `write`, saves it
/// over the file it came from).
pub fn refresh(
    dir: &Path,
    args: &ConnectionArgs,
    tokens: &TokenArgs,
    write: bool,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let from_stdin = tokens.tokens == Path::new("-");
        if write && from_stdin {
            return Err(Failure::Usage("--write saves over the --tokens FILE; give one (not stdin)".into()));
        }
        let connector = connector(dir, args, None, !from_stdin, None)?;
        let set = read_tokens(&tokens.tokens)?;
        let fresh = runtime()?.block_on(connector.refresh(&set))?;
        if !write {
            return print_json(out, &fresh);
        }
        let mut text = serde_json::to_vec_pretty(&fresh).map_err(std::io::Error::from)?;
        text.push(b'\n');
        if let Err(e) = keyway_stdx::replace_file_privately(&tokens.tokens, &text) {
            // A rotated refresh token exists only here now: it must not be lost.
            print_json(out, &fresh)?;
            return Err(Failure::Other(format!(
                "{}: the refreshed tokens could not be saved ({e}); they are printed on stdout instead",
                tokens.tokens.display()
            )));
        }
        crate::say(&format!("{}: refreshed and saved", tokens.tokens.display()));
        Ok(())
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
        let connector = connector(dir, args, None, tokens.tokens != Path::new("-"), None)?;
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

/// The default callback path of `keyway login` (Salesforce's convention).
pub const DEFAULT_CALLBACK_PATH: &str = "/OauthRedirect";

/// Where `keyway login` listens: a loopback http redirect URI, split for binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackRedirect {
    host: String,
    port: u16,
    path: String,
}

impl LoopbackRedirect {
    /// `http://127.0.0.1:PORT/OauthRedirect`.
    pub fn default_on(port: u16) -> LoopbackRedirect {
        LoopbackRedirect { host: "127.0.0.1".into(), port, path: DEFAULT_CALLBACK_PATH.into() }
    }

    /// Reads `--redirect-uri`: http, a loopback host (127.0.0.1, localhost, [::1]), an
    /// explicit port (0: any free port) and a path; no query or fragment.
    pub fn parse(uri: &str) -> Result<LoopbackRedirect, String> {
        let url = url::Url::parse(uri).map_err(|e| format!("`--redirect-uri {uri}`: {e}"))?;
        let bad = |why: &str| Err(format!("`--redirect-uri {uri}` {why}; use http://127.0.0.1:PORT/PATH"));
        if url.scheme() != "http" {
            return bad("is not http (keyway login listens on this machine, without TLS)");
        }
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => ip.to_string(),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => format!("[{ip}]"),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => "localhost".to_owned(),
            _ => return bad("is not a loopback address"),
        };
        let Some(port) = url.port() else { return bad("has no port") };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return bad("has a query, fragment or user name");
        }
        Ok(LoopbackRedirect { host, port, path: url.path().to_owned() })
    }

    fn bind_host(&self) -> &str {
        match self.host.as_str() {
            "localhost" => "127.0.0.1",
            h => h.trim_start_matches('[').trim_end_matches(']'),
        }
    }

    fn uri(&self, port: u16) -> String {
        format!("http://{}:{port}{}", self.host, self.path)
    }
}

/// `keyway login`: the loopback flow. Listens on the redirect URI's loopback address,
/// prints the URL to open, waits for the callback with the right state (and issuer),
/// exchanges the code, prints the token set.
pub fn login(
    dir: &Path,
    args: &ConnectionArgs,
    redirect: &LoopbackRedirect,
    timeout: Duration,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let rt = runtime()?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind((redirect.bind_host(), redirect.port)))
            .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", redirect.uri(redirect.port))))?;
        let bound = listener.local_addr()?.port();
        let uri = redirect.uri(bound);
        let connector = Arc::new(connector(dir, args, Some(uri.clone()), true, None)?);
        let url = connector.begin_authorization(SESSION)?;
        crate::say(&format!("Waiting for the callback on {uri}"));
        crate::say(&format!("Open this URL in a browser to log in:\n{url}"));
        let tokens = rt.block_on(wait_for_callback(listener, &redirect.path, connector, timeout))?;
        print_json(out, &tokens)
    })())
}

async fn wait_for_callback(
    listener: tokio::net::TcpListener,
    path: &str,
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
            // page cannot end someone's login by calling the port. Said at once, not only
            // when the wait runs out.
            Err(FlowError::State(e)) => {
                crate::say(&format!("keyway: refused a callback: {e}; still waiting"));
                (axum::http::StatusCode::BAD_REQUEST, page(&format!("Refused: {e}.")))
            }
            // The outcome ends the command, which says what went wrong, once.
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
    let app = axum::Router::new().route(path, axum::routing::get(callback)).with_state((connector, done));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let result = tokio::time::timeout(timeout, finished.recv()).await;
    server.abort();
    match result {
        Ok(Some(tokens)) => Ok(tokens?),
        Ok(None) => Err(Failure::Other("the callback server stopped".into())),
        Err(_) => Err(Failure::Other(format!("no callback within {} seconds", timeout.as_secs()))),
    }
}

/// A flow started by `keyway authorize-url`, as it printed it, and what the browser came
/// back with.
#[derive(serde::Deserialize)]
struct StartedFlow {
    state: String,
    #[serde(default)]
    code_verifier: Option<String>,
    /// The `nonce` `keyway authorize-url` printed (requests that ask for `openid`).
    #[serde(default)]
    nonce: Option<String>,
    /// The URL (or query string) the browser was sent back to.
    #[serde(default)]
    callback: Option<String>,
    /// Or the code alone.
    #[serde(default)]
    code: Option<String>,
    /// With the code alone: the `iss` that came with it.
    #[serde(default)]
    iss: Option<String>,
}

/// `keyway exchange-code`: finishes a flow started by `keyway authorize-url`. The flow (its
/// JSON, with the callback URL added as `callback`, or `code`) comes from `--flow FILE` or
/// stdin; when the file has no callback, stdin's first line is the callback URL.
pub fn exchange_code(
    dir: &Path,
    args: &ConnectionArgs,
    redirect_uri: &str,
    flow: &Path,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let flow_on_stdin = flow == Path::new("-");
        let text = read_bounded(flow, MAX_SECRET_FILE)?;
        // serde's message can quote the input (a verifier, a code): say only where it broke.
        let started: StartedFlow = serde_json::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "the flow is not the JSON `keyway authorize-url` printed (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let connector = connector(dir, args, Some(redirect_uri.to_owned()), flow_on_stdin, None)?;
        let callback = match (&started.callback, &started.code) {
            (Some(url), _) => callback_from(url),
            (None, Some(code)) => Callback {
                code: Some(code.clone()),
                state: Some(started.state.clone()),
                iss: started.iss.clone(),
                ..Callback::default()
            },
            (None, None) if !flow_on_stdin => {
                crate::say("Paste the URL the browser was sent back to:");
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::stdin().lock().take(MAX_SECRET_FILE), &mut line)?;
                callback_from(line.trim())
            }
            (None, None) => {
                return Err(Failure::Usage(
                    "the flow has neither `callback` nor `code`; add one, or give the flow with --flow FILE and paste the callback URL on stdin".into(),
                ));
            }
        };
        // The state ties the answer to this flow: a different one is someone else's answer.
        if callback.state.as_deref() != Some(started.state.as_str()) {
            return Err(Failure::Flow(FlowError::State(keyway_runtime::StateError::Unknown)));
        }
        let verifier = started.code_verifier.clone().map(SecretString::from);
        let tokens =
            runtime()?.block_on(connector.finish_callback(&callback, verifier.as_ref(), started.nonce.as_deref()))?;
        print_json(out, &tokens)
    })())
}

/// A callback from a full URL or a bare query string.
fn callback_from(text: &str) -> Callback {
    let query = match url::Url::parse(text) {
        Ok(url) => url.query().unwrap_or_default().to_owned(),
        Err(_) => text.trim_start_matches('?').to_owned(),
    };
    Callback::from_query(&query)
}

/// `keyway client-credentials`: the client credentials grant; prints the token set.
pub fn client_credentials(dir: &Path, args: &ConnectionArgs, out: &mut impl Write) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, None, true, Some(keyway_manifest::model::Grant::ClientCredentials))?;
        let tokens = runtime()?.block_on(connector.client_credentials())?;
        print_json(out, &tokens)
    })())
}

/// `keyway jwt-bearer`: the JWT bearer grant (RFC 7523) for `subject`; prints the token set.
pub fn jwt_bearer(dir: &Path, args: &ConnectionArgs, subject: &str, out: &mut impl Write) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, None, true, Some(keyway_manifest::model::Grant::JwtBearer))?;
        let tokens = runtime()?.block_on(connector.jwt_bearer(subject))?;
        print_json(out, &tokens)
    })())
}

/// `keyway device`: the device authorization grant (RFC 8628). Prints the user code and
/// where to enter it, polls at the provider's interval (slower on `slow_down`) until the user
/// answers or the code expires, prints the token set.
pub fn device(
    dir: &Path,
    args: &ConnectionArgs,
    max_wait: Duration,
    out: &mut impl Write,
) -> std::io::Result<ExitCode> {
    finish((|| {
        let connector = connector(dir, args, None, true, None)?;
        let rt = runtime()?;
        let authorization = rt.block_on(connector.device_start())?;
        crate::say(&format!(
            "To log in, open {} and enter the code {}",
            authorization.verification_uri, authorization.user_code
        ));
        if let Some(complete) = &authorization.verification_uri_complete {
            crate::say(&format!("(or open {complete})"));
        }
        let polling = keyway_runtime::DevicePolling { max_wait, ..keyway_runtime::DevicePolling::default() };
        let tokens = rt.block_on(connector.device_poll(&authorization, &polling))?;
        print_json(out, &tokens)
    })())
}

fn page(message: &str) -> axum::response::Html<String> {
    let escaped = keyway_stdx::escape_html(message);
    axum::response::Html(format!(
        "<!doctype html><meta charset=utf-8><title>keyway login</title><p style=\"font-family:sans-serif\">{escaped}</p>"
    ))
}
