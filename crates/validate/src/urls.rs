//! What makes a URL acceptable where keyway puts one: endpoints the profile renders,
//! redirect URIs a connection gives, and links and targets a platform supplies. The
//! validator, the runtime and the server all ask here, so one URL gets one verdict.

use crate::memo::Memo;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest redirect URI accepted where the profile states no limit of its own
/// (`limits.callback_urls_max_chars`): browsers and providers handle about this much.
pub const MAX_REDIRECT_URI_CHARS: usize = 2048;

/// Why a URL as written is not acceptable before parsing: URL parsers strip or rewrite
/// whitespace, control characters and backslashes, so these checks run on the text itself.
pub fn raw_problem(text: &str) -> Option<String> {
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("which contains {}", describe_char(c)));
    }
    if text.contains('\\') {
        return Some("which contains a backslash".to_owned());
    }
    let authority = text.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if authority == Some("") {
        return Some("which has no host".to_owned());
    }
    None
}

/// A character, named for a message.
pub fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("the character U+{:04X}", c as u32),
        c if !c.is_ascii() => format!("the non-ASCII character `{c}` (U+{:04X})", c as u32),
        c => format!("`{c}`"),
    }
}

/// Whether the URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        None => false,
    }
}

/// Why a rendered endpoint (a URL keyway sends credentials or tokens to) is not acceptable, or
/// `None`: an https URL (http only for loopback hosts) with a public host (loopback allowed,
/// for tests), and no user information or fragment. Kept by URL: profiles of one provider
/// family share their endpoints, and parsing a URL is most of this check. The problem reads
/// after "this renders `URL`, ".
pub fn endpoint_problem(rendered: &str) -> Option<String> {
    ENDPOINT_PROBLEMS.get(rendered, || endpoint_problem_uncached(rendered))
}

static ENDPOINT_PROBLEMS: Memo<Option<String>> = Memo::new();

/// Forgets every kept verdict.
pub(crate) fn forget() {
    ENDPOINT_PROBLEMS.clear();
}

/// [`endpoint_problem`] without the public-host rule: for an endpoint rendered with its
/// parameters absent, whose host is then only a placeholder.
pub(crate) fn endpoint_shape_problem(rendered: &str) -> Option<String> {
    match parse_endpoint(rendered) {
        Ok(url) => shape_problem(&url),
        Err(problem) => Some(problem),
    }
}

fn endpoint_problem_uncached(rendered: &str) -> Option<String> {
    let url = match parse_endpoint(rendered) {
        Ok(url) => url,
        Err(problem) => return Some(problem),
    };
    shape_problem(&url).or_else(|| non_public_host(&url))
}

/// The endpoint as a URL, or why its text is not one.
fn parse_endpoint(rendered: &str) -> Result<url::Url, String> {
    if let Some(problem) = raw_problem(rendered) {
        return Err(problem);
    }
    url::Url::parse(rendered).map_err(|e| format!("which is not a URL ({e})"))
}

/// Everything [`endpoint_problem`] checks of a parsed URL but its host's publicness.
fn shape_problem(url: &url::Url) -> Option<String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Some("which has user information (`user@`) before the host".to_owned());
    }
    if url.fragment().is_some() {
        return Some("which has a fragment (`#...`), which no endpoint has".to_owned());
    }
    match url.scheme() {
        "https" if url.host_str().is_some_and(|h| !h.is_empty()) => None,
        "http" if is_loopback(url) => None,
        "http" => Some("which is plain http to a host that is not loopback".to_owned()),
        "https" => Some("which has no host".to_owned()),
        other => Some(format!("whose scheme `{other}` is not https")),
    }
}

/// Why the URL's host is not a public one (a private, link-local, metadata or otherwise
/// internal address or name), or `None`. Loopback hosts are allowed: tests run there.
fn non_public_host(url: &url::Url) -> Option<String> {
    if is_loopback(url) {
        return None;
    }
    let address = match url.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(name) => return non_public_name(name),
    };
    non_public_address(address).map(|what| format!("whose host {address} is {what}, not a public address"))
}

/// Names that only resolve inside a network (RFC 6761, RFC 6762, RFC 8375, and the cloud
/// metadata names), and single-label names (`http://metadata/`), which a resolver completes
/// with a local search domain.
fn non_public_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    const INTERNAL_SUFFIXES: [&str; 7] =
        ["local", "internal", "localhost", "localdomain", "home.arpa", "intranet", "lan"];
    if !name.contains('.') {
        return Some(format!("whose host `{name}` is a single-label name, which resolves only inside a network"));
    }
    INTERNAL_SUFFIXES
        .iter()
        .find(|suffix| name.ends_with(&format!(".{suffix}")))
        .map(|suffix| format!("whose host `{name}` is under `.{suffix}`, which resolves only inside a network"))
}

/// What kind of non-public address this is, or `None` for a public one.
pub fn non_public_address(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => non_public_v4(v4),
            None => non_public_v6(ip),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address (cloud metadata services live there)",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        _ if a == 100 && (64..128).contains(&b) => "a shared (carrier-grade NAT) address",
        _ if ip.is_multicast() || ip.is_broadcast() || a >= 240 => "a multicast or reserved address",
        _ if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) || (a == 192 && b == 0) => {
            "a documentation, benchmarking or protocol address"
        }
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        _ if (first & 0xfe00) == 0xfc00 => "a unique local (private) address",
        _ if (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 => "a link-local or site-local address",
        _ if ip.is_multicast() => "a multicast address",
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "a documentation address",
        // NAT64 and 6to4 embed an IPv4 address that may be internal.
        _ if first == 0x0064 && ip.segments()[1] == 0xff9b => "an IPv4-translated address",
        _ if first == 0x2002 => "a 6to4 address",
        _ => return None,
    })
}

/// Why a redirect URI is not acceptable (RFC 6749 3.1.2, RFC 8252 7), or `None`. `max_chars`
/// is the profile's stated limit, or [`MAX_REDIRECT_URI_CHARS`]. The problem reads after
/// "redirect URI `URI` ".
pub fn redirect_uri_problem(uri: &str, max_chars: usize) -> Option<String> {
    let length = uri.chars().count();
    if length > max_chars {
        return Some(format!("is {length} characters long; at most {max_chars} are accepted"));
    }
    if let Some(problem) = raw_problem(uri) {
        return Some(problem.replacen("which ", "", 1));
    }
    let url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(e) => return Some(format!("is not an absolute URI ({e})")),
    };
    if url.fragment().is_some() {
        return Some("has a fragment, which redirect URIs must not have".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("has user information (`user@`) before the host, which redirect URIs must not have".to_owned());
    }
    match url.scheme() {
        "https" => None,
        "http" if is_loopback(&url) => None,
        "http" => Some("is plain http to a host that is not loopback".to_owned()),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
            Some(format!("uses the `{}` scheme, which cannot be a redirect target", url.scheme()))
        }
        scheme if scheme.contains('.') => None,
        scheme => Some(format!(
            "uses the scheme `{scheme}`; private-use schemes are reverse domain names such as `com.example.app`"
        )),
    }
}

/// Why a URL a platform supplies for a browser to follow (a return URL, an allowed origin,
/// a webhook target, a guide's base URL) is refused, or `None`: http(s) only (plain http only
/// to loopback hosts when `https_only`), no user information, at most `max_chars`.
pub fn web_url_problem(text: &str, max_chars: usize, https_only: bool) -> Option<String> {
    if text.chars().count() > max_chars {
        return Some(format!("longer than {max_chars} characters"));
    }
    if let Some(problem) = raw_problem(text) {
        return Some(problem.replacen("which ", "it ", 1));
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => return Some(format!("not a URL: {e}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some("it has user information in it".to_owned());
    }
    match url.scheme() {
        "https" => None,
        "http" if !https_only || is_loopback(&url) => None,
        _ if https_only => Some("it must be https (or http on a loopback host)".to_owned()),
        other => Some(format!("its scheme `{other}` is not http or https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_public_https_without_user_information_or_fragments() {
        for fine in [
            "https://login.salesforce.com/services/oauth2/token",
            "https://acme.my.salesforce.com/x?y=1",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/token",
            "https://8.8.8.8/token",
            "https://[2606:4700::1111]/token",
        ] {
            assert_eq!(endpoint_problem(fine), None, "{fine}");
        }
        for (bad, says) in [
            ("https://x@evil.example.com/token", "user information"),
            ("https://user:pw@login.example.com/token", "user information"),
            ("https://login.example.com/token#frag", "fragment"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://10.0.0.5/token", "private"),
            ("https://172.16.1.1/token", "private"),
            ("https://192.168.1.1/token", "private"),
            ("https://100.64.0.1/token", "shared"),
            ("https://0.0.0.0/token", "unspecified"),
            ("https://[fd00::1]/token", "unique local"),
            ("https://[fe80::1]/token", "link-local"),
            ("https://[::ffff:10.0.0.1]/token", "private"),
            ("https://[::ffff:169.254.169.254]/token", "link-local"),
            ("https://0x0a000001/token", "private"),
            ("https://metadata.google.internal/computeMetadata", ".internal"),
            ("https://metadata/token", "single-label"),
            ("https://printer.local/token", ".local"),
            ("http://login.example.com/token", "plain http"),
            ("ftp://login.example.com/token", "scheme"),
        ] {
            let problem = endpoint_problem(bad).unwrap_or_else(|| panic!("{bad} is refused"));
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]/cb",
            "com.example.app:/cb",
        ] {
            assert_eq!(redirect_uri_problem(ok, MAX_REDIRECT_URI_CHARS), None, "{ok}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_REDIRECT_URI_CHARS));
        for bad in [
            "http://example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "https://a.example.com/cb#frag",
            "/relative",
            "myapp://cb",
            "https://app.example.com/cb\r\nSet-Cookie: x",
            " https://app.example.com/cb",
            "https://app.exa\tmple.com/cb",
            "https:\\\\evil.example\\cb",
            "https:///cb",
            "https://evil.example@app.example.com/cb",
            "https://app.example.com:pw@evil.example/cb",
            &long,
        ] {
            assert!(redirect_uri_problem(bad, MAX_REDIRECT_URI_CHARS).is_some(), "{bad}");
        }
        assert!(redirect_uri_problem("https://app.example.com/callback", 20).is_some_and(|p| p.contains("at most 20")));
    }

    #[test]
    fn web_urls_are_http_only() {
        assert_eq!(web_url_problem("https://docs.example.com/guide?x=1", 100, false), None);
        assert_eq!(web_url_problem("http://docs.example.com/guide", 100, false), None);
        assert!(web_url_problem("http://docs.example.com/guide", 100, true).is_some());
        for bad in ["javascript:alert(1)", "data:text/html,x", "JaVaScRiPt:alert(1)", "vbscript:x", "//evil.example/x"]
        {
            assert!(web_url_problem(bad, 100, false).is_some(), "{bad}");
        }
    }
}
