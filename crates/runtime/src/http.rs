//! The one HTTP client every flow uses: no redirects followed, timeouts, a User-Agent, and
//! server errors (5xx) and timeouts classified as transient so callers can retry them.

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse, reqwest};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Settings of the shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The whole request, from connecting to the last byte of the body.
    pub timeout: Duration,
    /// Establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Sent with every request.
    pub user_agent: String,
    /// The largest answer read; a longer one is refused (a token answer is a few KiB).
    pub max_response_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("keyway/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// A cheaply cloneable HTTP client (one connection pool) for the OAuth endpoints.
///
/// It never follows redirects: a token endpoint that redirects is misconfigured, and
/// following one could send credentials to another host.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    max_response_bytes: usize,
}

/// Why an HTTP exchange failed before an OAuth answer could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No complete answer within the timeout.
    #[error("the request timed out")]
    Timeout,
    /// The connection could not be made or broke: what happened, the host and port, the cause.
    #[error("{0}")]
    Connect(String),
    /// The server answered with a 5xx status.
    #[error("the server answered HTTP {0}")]
    ServerError(u16),
    /// The answer was longer than the limit (`HttpOptions::max_response_bytes`).
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The request could not be built or sent for another reason.
    #[error("the request failed: {0}")]
    Other(String),
}

impl TransportError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Timeout | TransportError::Connect(_) | TransportError::ServerError(_))
    }
}

impl HttpClient {
    /// Builds the client.
    pub fn new(options: &HttpOptions) -> Result<HttpClient, TransportError> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| TransportError::Other(e.without_url().to_string()))?;
        Ok(HttpClient { inner, max_response_bytes: options.max_response_bytes })
    }

    /// Sends a request and reads the whole answer. 5xx answers are errors.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = request.method().clone();
        // Only scheme, host and path are logged: queries may carry codes or states.
        let target = {
            let uri = request.uri();
            format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map_or("?", |a| a.as_str()),
                uri.path()
            )
        };
        let request: reqwest::Request =
            request.try_into().map_err(|e: reqwest::Error| TransportError::Other(e.without_url().to_string()))?;
        let started = std::time::Instant::now();
        let host = host_and_port(&target);
        let mut response = self.inner.execute(request).await.map_err(|e| classify(e, &host))?;
        let status = response.status();
        let headers = response.headers().clone();
        let too_large = || TransportError::TooLarge(self.max_response_bytes);
        if response.content_length().is_some_and(|n| n > self.max_response_bytes as u64) {
            return Err(too_large());
        }
        // Read in chunks, so an answer without a length (or lying about it) stops at the limit.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, &host))? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(%method, %target, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "http exchange");
        if status.is_server_error() {
            return Err(TransportError::ServerError(status.as_u16()));
        }
        let mut builder = oauth2::http::Response::builder().status(status);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        builder.body(body).map_err(|e| TransportError::Other(e.to_string()))
    }
}

impl HttpClient {
    /// GETs a document (authorization-server metadata) with `Accept: application/json`:
    /// the status and the body, bounded like every answer.
    pub async fn get(&self, url: &str) -> Result<(u16, Vec<u8>), TransportError> {
        let request = oauth2::http::Request::builder()
            .method(oauth2::http::Method::GET)
            .uri(url)
            .header(oauth2::http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| TransportError::Other(e.to_string()))?;
        let response = self.send(request).await?;
        Ok((response.status().as_u16(), response.into_body()))
    }
}

/// What a connection failure was, from its causes' text (hyper, the resolver, rustls and the
/// OS word them; none offers a typed kind through reqwest).
fn failure_kind(chain: &str) -> &'static str {
    let chain = chain.to_lowercase();
    if chain.contains("dns") || chain.contains("lookup") || chain.contains("resolve") {
        "DNS lookup failed"
    } else if chain.contains("refused") {
        "connection refused"
    } else if chain.contains("reset") {
        "connection reset"
    } else if ["tls", "ssl", "certificate", "handshake", "corrupt message", "alert", "invalid peer"]
        .iter()
        .any(|word| chain.contains(word))
    {
        // rustls's words: a plain-http server answering a TLS hello is a "corrupt message".
        "TLS failed"
    } else {
        "connection failed"
    }
}

/// `host:port` of a logged target (`scheme://authority/path`), the port filled in.
fn host_and_port(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => target.to_owned(),
        },
        Err(_) => target.to_owned(),
    }
}

/// A failed exchange, named with the host and port tried and its root cause ("connection
/// refused", a DNS failure, a TLS failure). reqwest's own message says only "error sending
/// request"; the cause is in its source chain, which never holds the URL's query.
fn classify(e: reqwest::Error, host: &str) -> TransportError {
    let e = e.without_url();
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    let kind = failure_kind(&causes.join(": "));
    let cause = causes.last().map(|c| format!(" ({c})")).unwrap_or_default();
    let message = format!("{kind} to {host}{cause}");
    if e.is_connect() || e.is_request() || e.is_body() {
        TransportError::Connect(message)
    } else {
        TransportError::Other(message)
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// How a POST body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// A JSON object of strings.
    Json,
}

/// A POST of string parameters, with the client's credentials in the body or as HTTP Basic.
pub(crate) fn post(
    url: &str,
    params: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    encoding: Body,
) -> Result<HttpRequest, TransportError> {
    let (content_type, body) = match encoding {
        Body::Form => (
            "application/x-www-form-urlencoded",
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes(),
        ),
        Body::Json => {
            let object: serde_json::Map<String, serde_json::Value> =
                params.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
            ("application/json", serde_json::to_vec(&object).map_err(|e| TransportError::Other(e.to_string()))?)
        }
    };
    let mut builder = oauth2::http::Request::builder()
        .method(oauth2::http::Method::POST)
        .uri(url)
        .header(oauth2::http::header::CONTENT_TYPE, content_type)
        .header(oauth2::http::header::ACCEPT, "application/json");
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(id), encode(secret));
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        builder = builder.header(oauth2::http::header::AUTHORIZATION, value);
    }
    builder.body(body).map_err(|e| TransportError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::failure_kind;

    #[test]
    fn failures_are_named_by_their_cause() {
        for (chain, kind) in [
            (
                "client error (Connect): dns error: failed to lookup address information: Name or service not known",
                "DNS lookup failed",
            ),
            ("client error (Connect): tcp connect error: Connection refused (os error 111)", "connection refused"),
            (
                "client error (SendRequest): connection error: Connection reset by peer (os error 104)",
                "connection reset",
            ),
            ("client error (Connect): received corrupt message of type InvalidContentType", "TLS failed"),
            ("client error (Connect): invalid peer certificate: UnknownIssuer", "TLS failed"),
            ("client error (Connect): something else", "connection failed"),
        ] {
            assert_eq!(failure_kind(chain), kind, "{chain}");
        }
    }
}
