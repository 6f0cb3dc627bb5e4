//! What a credential puts on a request to the provider's API, and until when it is good.
//!
//! An OAuth token set is one kind: an `Authorization: Bearer` header, good until the access
//! token expires. Requests to the API (the connection test, [`Connector::verify`]) carry a
//! [`RequestCredential`], not a token set, so another kind (an API key in a header or the
//! query, HTTP Basic, a signed JWT, a token from token exchange) is one more constructor in a
//! file of its own, and the requests that carry it do not change.
//!
//! [`Connector::verify`]: super::Connector::verify

use crate::tokens::TokenSet;
use oauth2::HttpRequest;
use oauth2::http::HeaderName;
use oauth2::http::header::{ACCEPT, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};

/// What to put on a request to the provider's API, and until when it is good.
///
/// `Debug` shows header and parameter names, never their values.
#[derive(Debug, Clone)]
pub struct RequestCredential {
    headers: Vec<(HeaderName, SecretString)>,
    query: Vec<(String, SecretString)>,
    expires_at: Option<u64>,
}

impl RequestCredential {
    /// A token set's access token as a Bearer header (RFC 6750), good until it expires.
    pub fn bearer(tokens: &TokenSet) -> RequestCredential {
        let value = SecretString::from(format!("Bearer {}", tokens.access_token.expose_secret()));
        RequestCredential { headers: vec![(AUTHORIZATION, value)], query: Vec::new(), expires_at: tokens.expires_at }
    }

    /// The headers to set; their values are secrets.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &SecretString)> {
        self.headers.iter().map(|(name, value)| (name, value))
    }

    /// The query parameters to add; their values are secrets.
    pub fn query(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.query.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// When it stops being good, in seconds since the Unix epoch; `None` when nothing says.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// A `GET` of `url` asking for JSON, carrying the credential.
    pub(crate) fn get(&self, url: &str) -> Result<HttpRequest, oauth2::http::Error> {
        let uri = if self.query.is_empty() {
            url.to_owned()
        } else {
            let mut pairs = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in self.query() {
                pairs.append_pair(name, value.expose_secret());
            }
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}{}", pairs.finish())
        };
        let mut builder = oauth2::http::Request::builder()
            .method(oauth2::http::Method::GET)
            .uri(uri)
            .header(ACCEPT, "application/json");
        for (name, value) in self.headers() {
            builder = builder.header(name, value.expose_secret());
        }
        builder.body(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::RequestCredential;
    use secrecy::SecretString;

    #[test]
    fn query_parameters_are_appended_encoded() {
        let credential = RequestCredential {
            headers: Vec::new(),
            query: vec![("api_key".to_owned(), SecretString::from("a b&c"))],
            expires_at: None,
        };
        for (url, expected) in [
            ("https://api.example.com/v1/me", "https://api.example.com/v1/me?api_key=a+b%26c"),
            ("https://api.example.com/v1/me?x=1", "https://api.example.com/v1/me?x=1&api_key=a+b%26c"),
        ] {
            let request = credential.get(url).expect("request");
            assert_eq!(request.uri().to_string(), expected);
        }
    }
}
