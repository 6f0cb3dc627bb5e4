//! Helpers shared by the test provider's tests: a plain HTTP client that never follows redirects.
#![allow(dead_code)]

use base64::Engine as _;
use keyway_testkit::{ProviderConfig, TestProvider};
use oauth2::reqwest;
use oauth2::url::Url;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub const REDIRECT: &str = "http://localhost:1717/OauthRedirect";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("reqwest client")
}

/// An HTTP answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii content type").to_owned());
        let body = response.text().await.expect("response body");
        Answer { status, content_type, body }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn str(&self, field: &str) -> String {
        self.json()[field].as_str().unwrap_or_else(|| panic!("no string {field} in {}", self.body)).to_owned()
    }

    pub fn error(&self) -> (String, String) {
        (self.str("error"), self.str("error_description"))
    }

    /// Asserts an OAuth error answer.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str, description: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let json = self.json();
        assert_eq!(json["error"], error, "{}", self.body);
        assert_eq!(json["error_description"], description, "{}", self.body);
    }
}

pub async fn post_form(url: &str, form: &[(&str, &str)]) -> Answer {
    Answer::read(http().post(url).form(form).send().await.expect("POST")).await
}

pub async fn get_bearer(url: &str, token: &str) -> Answer {
    Answer::read(http().get(url).bearer_auth(token).send().await.expect("GET")).await
}

pub async fn start(config: ProviderConfig) -> TestProvider {
    TestProvider::start(config).await.expect("start provider")
}

pub async fn start_default() -> TestProvider {
    start(ProviderConfig::default()).await
}

/// (verifier, S256 challenge)
pub fn pkce(verifier: &str) -> (String, String) {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier.to_owned(), challenge)
}

pub fn authorize_url(provider: &TestProvider, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&provider.authorize_url()).expect("authorize URL");
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

pub fn default_authorize_params<'a>(
    config: &'a ProviderConfig,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "st4te"),
    ];
    params.extend_from_slice(extra);
    params
}

/// The query parameters of a redirect `Location`.
pub fn location_params(location: &str) -> Vec<(String, String)> {
    Url::parse(location)
        .expect("Location is a URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Runs authorize (as `user`, with `scope`) and returns the code.
pub async fn get_code(provider: &TestProvider, user: &str, extra: &[(&str, &str)]) -> String {
    let config = ProviderConfig::default();
    let url = authorize_url(provider, &default_authorize_params(&config, extra));
    let location = provider.browse(&url, user).await.expect("authorize redirects");
    let params = location_params(&location);
    param(&params, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

pub async fn exchange(provider: &TestProvider, code: &str, extra: &[(&str, &str)]) -> Answer {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", "3MVG9testkit"),
        ("client_secret", "testkit-secret"),
    ];
    form.extend_from_slice(extra);
    post_form(&provider.token_url(), &form).await
}

/// A full code flow (with PKCE) as `user` with the given scope; returns the token response.
pub async fn connect(provider: &TestProvider, user: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce("connect-verifier-connect-verifier-connect-verifier");
    let extra = [("scope", scope), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let code = get_code(provider, user, &extra).await;
    let answer = exchange(provider, &code, &[("code_verifier", verifier.as_str())]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

pub async fn refresh(provider: &TestProvider, refresh_token: &str, with_secret: bool) -> Answer {
    let mut form =
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", "3MVG9testkit")];
    if with_secret {
        form.push(("client_secret", "testkit-secret"));
    }
    post_form(&provider.token_url(), &form).await
}

pub async fn introspect(provider: &TestProvider, token: &str) -> Value {
    let answer = post_form(
        &provider.introspect_url(),
        &[("token", token), ("client_id", "3MVG9testkit"), ("client_secret", "testkit-secret")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

pub fn s(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("no string {field} in {value}")).to_owned()
}
