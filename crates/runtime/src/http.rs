//! The one HTTP client every flow uses: no redirects followed, timeouts, a User-Agent, and
//! server errors (5xx) and timeouts classified as transient so callers can retry them.

use oauth2::{HttpRequest, HttpResponse, reqwest};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Which addresses outbound requests may reach. Checked on the addresses a name resolves to
/// (the client connects only to an address it checked) and on literal addresses, for every
/// request: token, revocation, introspection, userinfo, device and metadata endpoints, the
/// connection test, webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Destinations {
    /// Public addresses only: loopback, private, link-local (cloud metadata), unique-local,
    /// shared, multicast, unspecified and documentation addresses are refused. What
    /// `keyway serve` uses unless its operator says otherwise.
    Public,
    /// Public addresses and this machine's loopback (a provider run locally: the CLI).
    #[default]
    PublicAndLoopback,
    /// Any unicast address, private networks included: the operator's explicit choice
    /// (`keyway serve --allow-private-network`), for providers inside a private network and
    /// for tests and demos on one machine.
    Any,
}

impl Destinations {
    /// Why `address` may not be reached, or `None`.
    pub fn refusal(self, address: IpAddr) -> Option<&'static str> {
        let kind = keyway_validate::urls::non_public_address(address)?;
        let loopback = match address {
            IpAddr::V4(ip) => ip.is_loopback(),
            IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        };
        let unusable = address.is_unspecified() || address.is_multicast();
        match self {
            Destinations::Public => Some(kind),
            Destinations::PublicAndLoopback if loopback => None,
            Destinations::PublicAndLoopback => Some(kind),
            Destinations::Any if unusable => Some(kind),
            Destinations::Any => None,
        }
    }
}

/// A destination the client refused before connecting (in the resolver's error chain).
#[derive(Debug)]
struct RefusedDestination(String);

impl std::fmt::Display for RefusedDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedDestination {}

/// The resolver of every client keyway builds: the system's, minus what [`Destinations`]
/// refuses, so a name that resolves to an internal address is never connected to.
struct CheckedResolver(Destinations);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    Some(kind) => {
                        refused = Some((a.ip(), kind));
                        false
                    }
                    None => true,
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some((ip, kind))) => Err(Box::new(RefusedDestination(format!(
                    "`{host}` resolves to {ip}, {kind}: not a destination this client may reach"
                ))) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

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
    /// Which addresses requests may reach.
    pub destinations: Destinations,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("keyway/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_response_bytes: 1024 * 1024,
            destinations: Destinations::default(),
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
    destinations: Destinations,
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
    /// The destination is not one this client may reach ([`Destinations`]); nothing was sent.
    #[error("{0}")]
    Refused(String),
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
            .dns_resolver(Arc::new(CheckedResolver(options.destinations)))
            .build()
            .map_err(|e| TransportError::Other(e.without_url().to_string()))?;
        Ok(HttpClient { inner, max_response_bytes: options.max_response_bytes, destinations: options.destinations })
    }

    /// Which addresses this client may reach.
    pub fn destinations(&self) -> Destinations {
        self.destinations
    }

    /// Why this client may not reach `url`'s host when it is a literal address (a name is
    /// judged by what it resolves to, when it is used), or `None`.
    pub fn literal_refusal(&self, url: &url::Url) -> Option<&'static str> {
        let address = match url.host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        self.destinations.refusal(address)
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
        // A literal address is never resolved: judge it here.
        if let Some(kind) = self.literal_refusal(request.url()) {
            return Err(TransportError::Refused(format!(
                "{host} is {kind}: not a destination this client may reach; nothing was sent"
            )));
        }
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
        if let Some(refused) = cause.downcast_ref::<RefusedDestination>() {
            return TransportError::Refused(format!("{refused}; nothing was sent"));
        }
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
    use super::{Destinations, failure_kind};

    #[test]
    fn destinations_refuse_every_internal_range_unless_the_operator_opens_it() {
        let internal = [
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ];
        for text in internal {
            let ip: std::net::IpAddr = text.parse().expect("address");
            assert!(Destinations::Public.refusal(ip).is_some(), "{text}");
        }
        for loopback in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            let ip: std::net::IpAddr = loopback.parse().expect("address");
            assert_eq!(Destinations::PublicAndLoopback.refusal(ip), None, "{loopback}");
            assert_eq!(Destinations::Any.refusal(ip), None, "{loopback}");
        }
        for private in ["10.1.2.3", "169.254.169.254", "fd00::1"] {
            let ip: std::net::IpAddr = private.parse().expect("address");
            assert!(Destinations::PublicAndLoopback.refusal(ip).is_some(), "{private}");
            assert_eq!(Destinations::Any.refusal(ip), None, "{private}");
        }
        for never in ["0.0.0.0", "::", "224.0.0.1"] {
            let ip: std::net::IpAddr = never.parse().expect("address");
            assert!(Destinations::Any.refusal(ip).is_some(), "{never}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            let ip: std::net::IpAddr = public.parse().expect("address");
            assert_eq!(Destinations::Public.refusal(ip), None, "{public}");
        }
    }

    /// A name is judged by what it resolves to: `localhost` resolves to loopback.
    #[tokio::test]
    async fn a_name_resolving_to_an_internal_address_is_refused_before_connecting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let client =
            super::HttpClient::new(&super::HttpOptions { destinations: Destinations::Public, ..Default::default() })
                .expect("client");
        let e = client.get(&format!("http://localhost:{port}/x")).await.expect_err("refused");
        assert!(matches!(e, super::TransportError::Refused(_)), "{e:?}");
        assert!(e.to_string().contains("localhost") && e.to_string().contains("nothing was sent"), "{e}");
        listener.set_nonblocking(true).expect("nonblocking");
        assert!(listener.accept().is_err(), "nothing connected");
        let e = client.get(&format!("http://127.0.0.1:{port}/x")).await.expect_err("refused");
        assert!(matches!(e, super::TransportError::Refused(_)), "{e:?}");
    }

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
