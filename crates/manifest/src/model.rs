//! The profile model: what a provider profile can say.
//!
//! These types are the single source of truth for the profile format. The JSON Schema in
//! `schemas/profile.schema.json` is generated from them (`cargo xtask schema`), so the doc
//! comments here are what an editor shows while a profile is written.
//!
//! Conventions:
//! - every struct rejects unknown keys (`deny_unknown_fields`);
//! - collections whose order an author chooses (environments, scopes, actions, guide sections
//!   and steps, error rules) are keyed maps ([`Map`]), so `extends` can merge, replace or
//!   remove single entries by id and author order is kept;
//! - strings marked *template* are minijinja templates, rendered with strict undefined.

use indexmap::IndexMap;

/// A map keyed by id, in author order. Hashed with foldhash rather than SipHash: loading a
/// catalogue hashes tens of thousands of keys, and profiles are files an operator chose to
/// load, bounded in size; foldhash is still seeded per process.
pub type Map<V> = IndexMap<String, V, foldhash::fast::RandomState>;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A provider profile, after `extends` has been applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Stable identifier, lowercase: `salesforce`, `salesforce-service-cloud`. By convention the
    /// file is named `<id>.yaml`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"))]
    pub id: String,
    /// The id of the profile this one inherits from. The child is merged over the parent as a
    /// JSON Merge Patch (RFC 7396): maps merge key by key, everything else is replaced, and a
    /// `null` removes the inherited entry. See `docs/profiles.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// JSON pointers (`/actions`) at which this profile's value replaces the parent's outright
    /// instead of merging with it. Only meaningful with `extends`; applied while resolving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
    /// Display name: "Salesforce Service Cloud".
    pub name: String,
    /// One or two sentences on what the provider is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form categories: `crm`, `ticketing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Links to the provider's own documentation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docs: Vec<DocLink>,
    /// Where the provider's tenants live. Exactly one environment is the default.
    pub environments: Map<Environment>,
    /// Connection parameters a tenant supplies (a My Domain host). Every value is checked
    /// against its pattern before it can reach a URL.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<Parameter>,
    /// What kind of credential a connection holds and how it is obtained: the OAuth 2.0
    /// flows (the default), or an API key, HTTP Basic, a token exchange, or none.
    pub auth: Auth,
    /// Where API calls go once a token is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// Provider limits and delays that integrators trip over.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// The scope catalogue, in the order the provider's console lists them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub scopes: Map<Scope>,
    /// The provider objects actions work on, keyed by the name actions give in `object`
    /// (the API name: `Knowledge__kav`), with the label the provider's console shows. Guide
    /// pages group actions under these labels; an object without an entry is shown by its name.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub objects: Map<ApiObject>,
    /// The actions an integration platform offers on top of this provider, keyed by id
    /// (snake_case of the display name: `create_case`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub actions: Map<Action>,
    /// The admin's setup guide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide: Option<Guide>,
    /// What the provider's errors mean, keyed by a rule id. Rules are tried in order; the
    /// first match wins.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub errors: Map<ErrorRule>,
}

impl Profile {
    /// The label of the object `object` (an action's `object`): its `objects` entry's, else the
    /// name itself.
    pub fn object_label<'a>(&'a self, object: &'a str) -> &'a str {
        self.objects.get(object).map_or(object, |o| o.label.as_str())
    }
}

/// A link to documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocLink {
    /// What the page is.
    pub title: String,
    /// An `https://` URL.
    #[schemars(regex(pattern = r"^https://"))]
    pub url: String,
}

/// One place a provider's tenants live (production, sandbox, a region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Display name: "Production and Developer Edition".
    pub label: String,
    /// Who should pick this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Used when a connector configuration names no environment. Exactly one is the default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Values templates see as `env.<name>`: `login_host: login.salesforce.com`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String>,
    /// How an admin tells that their tenant belongs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify: Option<Identify>,
}

/// How to recognise an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identify {
    /// A sentence for the admin: "Sandbox org URLs always contain `.sandbox.my.salesforce.com`".
    pub hint: String,
    /// Regular expressions over a tenant's host name; a match means this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_patterns: Vec<String>,
}

/// A value a tenant supplies when connecting (a My Domain host, a region, an account id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Display name: "My Domain host".
    pub label: String,
    /// What it is and where to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a connection must supply it. Optional parameters are `none` in templates when
    /// absent, so `params.my_domain or env.login_host` falls back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// An anchored regular expression (`^...$`) every value must match. User input that lands
    /// in a URL is an SSRF vector, so the pattern is mandatory.
    pub pattern: String,
    /// Whether the pattern ignores case.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
    /// Values that match the pattern but are still wrong, each with the explanation to show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<Rejection>,
    /// An example value for forms and docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A value pattern to refuse with a specific explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// A regular expression; a match refuses the value.
    pub pattern: String,
    /// Why, and what to enter instead.
    pub message: String,
}

/// How a connection authenticates to the provider: its credential's kind, and for each kind
/// what it needs. Keys of other kinds are refused (KW0421), so a profile says one thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The kind of credential a connection holds. Without it, OAuth 2.0.
    #[serde(default, skip_serializing_if = "AuthKind::is_oauth2")]
    pub kind: AuthKind,
    /// The grants the provider supports and this profile can run (OAuth 2.0; required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// Endpoint URL templates. They see `env`, `params` (OAuth 2.0; required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// How the client authenticates at the token, revocation and introspection endpoints
    /// (the names of the IANA registry of `token_endpoint_auth_methods_supported`).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The authorization server's issuer identifier (discovery's `issuer`). When set, a
    /// callback's `iss` (RFC 9207) must equal it; without it, a callback's `iss` must at
    /// least name the authorize endpoint's origin. Template (`env`, `params`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The server sends `iss` on every authorization response (RFC 9207; discovery's
    /// `authorization_response_iss_parameter_supported`): a callback without it is refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub callback_iss_required: bool,
    /// Whether authorization requests carry a PKCE (S256) challenge (OAuth 2.0; required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<Pkce>,
    /// The character between scopes in the `scope` parameter.
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// Scopes requested when a connection selects no actions and no custom scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_scopes: Vec<String>,
    /// Extra query parameters for the authorization URL (`prompt: consent`). Templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub authorization_params: Map<String>,
    /// Standard authorization parameters under the names this provider reads
    /// (`redirect_uri: redirect_url`, `client_id: app_key`); `response_type` may be renamed
    /// to `""` to leave it out. Only `client_id`, `redirect_uri`, `response_type` and `scope`
    /// can be renamed: `state`, PKCE and `nonce` protect the flow.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub authorization_param_names: Map<String>,
    /// The callback parameter that carries the authorization code, for providers that do not
    /// call it `code` (Amazon's `spapi_oauth_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_code_param: Option<String>,
    /// Extra form parameters for the code exchange. Templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub token_params: Map<String>,
    /// Extra parameters for refresh requests (`resource: ...`). Templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub refresh_params: Map<String>,
    /// How token requests (code exchange, refresh, other grants) encode their parameters.
    #[serde(default, skip_serializing_if = "TokenRequestFormat::is_form")]
    pub token_request_format: TokenRequestFormat,
    /// How refreshing works. Without it, a refresh sends the client secret (when the
    /// connection has one), the provider is taken to issue refresh tokens only for a scope
    /// marked `grants_refresh`, and a refresh token a refresh returns replaces the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    /// What to keep from token responses and how long access tokens live.
    #[serde(default)]
    pub tokens: Tokens,
    /// Settings for the JWT bearer grant (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_bearer: Option<JwtBearer>,
    /// Settings for the device authorization grant (RFC 8628) and its provider variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceFlow>,
    /// What the end user enters to link an account (`api_key`, `basic`, `token_exchange`),
    /// keyed by the name templates see as `fields.<name>`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<CredentialField>,
    /// Where the credential goes on each request to the API (`api_key`, `basic`,
    /// `token_exchange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<Apply>,
    /// How the fields are exchanged for a short-lived token (`token_exchange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
    /// How a JWT is signed with the connection's key (`signed_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<SignedJwt>,
}

impl Auth {
    /// Whether a refresh sends the client secret: `auth.refresh.send_client_secret`, and
    /// without an `auth.refresh` block, yes (RFC 6749 section 6: a confidential client
    /// authenticates when it refreshes).
    pub fn refresh_sends_secret(&self) -> bool {
        self.refresh.as_ref().is_none_or(|r| r.send_client_secret)
    }

    /// Whether a connection sends a PKCE challenge unless it chooses otherwise: yes, unless
    /// the profile's policy is `off` (or the profile is not OAuth 2.0).
    pub fn sends_pkce(&self) -> bool {
        self.pkce.is_some_and(|p| p != Pkce::Off)
    }

    /// Whether connections are linked through OAuth 2.0 flows.
    pub fn is_oauth2(&self) -> bool {
        self.kind.is_oauth2()
    }
}

/// The kind of credential a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// OAuth 2.0: `grants`, `endpoints` and `pkce` say how tokens are obtained.
    #[default]
    Oauth2,
    /// Keys the end user enters (`fields`), put on requests as `apply` says.
    ApiKey,
    /// HTTP Basic: a user and a password (`fields`), sent as `apply.basic` says.
    Basic,
    /// Fields posted to a token endpoint (`exchange`) for a short-lived token, which `apply`
    /// puts on requests; exchanged again when due.
    TokenExchange,
    /// A JWT the connection signs itself with its key (`jwt`), which `apply` puts on
    /// requests; signed again when due.
    SignedJwt,
    /// No credential: a public API.
    None,
}

impl AuthKind {
    /// Whether this is the default, OAuth 2.0.
    pub fn is_oauth2(&self) -> bool {
        *self == AuthKind::Oauth2
    }

    /// The name profiles use: `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Oauth2 => "oauth2",
            AuthKind::ApiKey => "api_key",
            AuthKind::Basic => "basic",
            AuthKind::TokenExchange => "token_exchange",
            AuthKind::SignedJwt => "signed_jwt",
            AuthKind::None => "none",
        }
    }
}

/// A value the end user enters to link an account: an API key, a user name, a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialField {
    /// Display name: "API key".
    pub label: String,
    /// Whether the value is a secret: entered in a password input, write-only, encrypted at
    /// rest, never shown back. Default: yes.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub secret: bool,
    /// Whether a connection must supply it. Default: yes. Optional fields are `none` in
    /// templates when absent.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub required: bool,
    /// An anchored regular expression (`^...$`) every value must match. Values are bounded
    /// (4,096 bytes, no control characters; multi-line ones 16,384 bytes, line breaks
    /// allowed) with or without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A value over several lines (a PEM private key): a text area on the connect page, line
    /// breaks kept. Headers and query strings cannot carry it; a signing key or an exchange's
    /// body can.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiline: bool,
    /// Whether the pattern ignores case.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
    /// Values that match the pattern but are still wrong, each with the explanation to show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<Rejection>,
    /// Where the end user finds it: "Settings → API → Create key". Markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The provider's page about it: an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
    /// An example of its shape for forms and docs (never a real key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// Where a credential goes on a request. Templates; they see `fields`, `env`, `params` and,
/// for `token_exchange`, `token` (`token.access_token` and the kept fields).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    /// Headers by name: `Authorization: "Bearer {{ fields.api_key }}"`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String>,
    /// Query parameters by name. A secret placed here ends up in access logs and proxies'
    /// records of URLs, so it needs `secret_in_query: true`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub query: Map<String>,
    /// The provider takes a secret only in the query string, and the profile says so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret_in_query: bool,
    /// HTTP Basic authentication (RFC 7617).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicCredentials>,
}

/// A user and password for HTTP Basic authentication. Templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    /// The user: `"{{ fields.username }}"`.
    pub username: String,
    /// The password: `"{{ fields.password }}"`; may render empty (keys sent as the user).
    pub password: String,
}

/// A self-signed JWT (`signed_jwt`): claims and header templated, signed with a key from the
/// connection's fields, good for `lifetime_seconds` (`iat` and `exp` are keyway's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedJwt {
    /// The signing algorithm.
    pub algorithm: JwtAlgorithm,
    /// The key. Template (`fields`, `env`, `params`): a PEM private key for RS, PS and ES
    /// algorithms, the shared secret for HS ones. It must come from a field.
    pub key: String,
    /// How an HS secret is written: `utf8` (default), `hex` or `base64`.
    #[serde(default, skip_serializing_if = "KeyEncoding::is_utf8")]
    pub key_encoding: KeyEncoding,
    /// The header's key id (`kid`). Template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Claims by name: a template, or a list of templates. `iat` and `exp` are added.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<ClaimTemplate>,
    /// How long each JWT is good for (`exp - iat`); it is signed again when due.
    pub lifetime_seconds: u32,
}

/// A JWT signing algorithm (RFC 7518).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

/// How a shared secret is written in its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyEncoding {
    /// The text itself.
    #[default]
    Utf8,
    /// Hexadecimal digits.
    Hex,
    /// Base64 (standard alphabet, padding optional).
    Base64,
}

impl KeyEncoding {
    /// Whether this is the default, `utf8`.
    pub fn is_utf8(&self) -> bool {
        *self == KeyEncoding::Utf8
    }
}

/// A claim's value: a template, or a list of templates (a JSON array of strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ClaimTemplate {
    /// One string.
    Text(String),
    /// A list of strings.
    List(Vec<String>),
}

/// A token exchange: the connection's fields posted to a token endpoint, the token read from
/// the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// Where the fields are posted. Template (`env`, `params`); held to the endpoint rules.
    pub url: String,
    /// How the body is encoded: form (default) or JSON.
    #[serde(default, skip_serializing_if = "TokenRequestFormat::is_form")]
    pub format: TokenRequestFormat,
    /// The body's parameters. Templates; they see `fields`, `env` and `params`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub body: Map<String>,
    /// Extra request headers. Templates, as `body`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String>,
    /// HTTP Basic authentication of the exchange request. Templates, as `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicCredentials>,
    /// Where the token is in the JSON answer: a JSON pointer (RFC 6901), `/access_token`.
    pub token_pointer: String,
    /// Where its lifetime is: a JSON pointer to a number (or numeric string). Without it, or
    /// when the answer lacks it, `auth.tokens.assumed_lifetime_seconds` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_pointer: Option<String>,
    /// The unit of that lifetime.
    #[serde(default, skip_serializing_if = "TimeUnit::is_seconds")]
    pub expires_in_unit: TimeUnit,
    /// Where the answer says when the token expires, for providers that give a time instead
    /// of a lifetime: a JSON pointer to seconds or milliseconds since the epoch (a number or
    /// numeric string; milliseconds when it is over 10^11) or an RFC 3339 date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_pointer: Option<String>,
    /// The HTTP method: `post` (the default; the body as `format` says) or `get` (the body's
    /// parameters in the query string).
    #[serde(default, skip_serializing_if = "ExchangeMethod::is_post")]
    pub method: ExchangeMethod,
    /// A `get` exchange puts its parameters in the URL, which ends up in access logs: a
    /// secret there needs the profile to say the provider takes it nowhere else.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret_in_query: bool,
}

/// A token exchange's HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeMethod {
    /// POST, the parameters in the body.
    #[default]
    Post,
    /// GET, the parameters in the query string.
    Get,
}

impl ExchangeMethod {
    /// Whether this is the default, POST.
    pub fn is_post(&self) -> bool {
        *self == ExchangeMethod::Post
    }
}

fn default_scope_separator() -> String {
    " ".to_owned()
}

/// An OAuth 2.0 grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The authorization code grant (Salesforce's web server flow).
    AuthorizationCode,
    /// The refresh token grant.
    RefreshToken,
    /// The client credentials grant.
    ClientCredentials,
    /// The JWT bearer grant (RFC 7523).
    JwtBearer,
    /// The device authorization grant (RFC 8628).
    DeviceCode,
}

impl Grant {
    /// Whether the grant can return a refresh token. The client credentials grant (RFC 6749
    /// §4.4.3) and the JWT bearer grant (RFC 7523) do not: their tokens are obtained again.
    pub fn issues_refresh_token(self) -> bool {
        match self {
            Grant::AuthorizationCode | Grant::RefreshToken | Grant::DeviceCode => true,
            Grant::ClientCredentials | Grant::JwtBearer => false,
        }
    }
}

/// Endpoint URL templates, rendered with `env` and `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Where the user's browser is sent to approve access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize: Option<String>,
    /// Where codes, refresh tokens and assertions are exchanged for tokens.
    pub token: String,
    /// Where refresh requests go, for providers that refresh elsewhere than at `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// Token revocation (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<String>,
    /// Token introspection (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect: Option<String>,
    /// OpenID Connect userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<String>,
    /// Device authorization (RFC 8628). Some providers use the token endpoint; see `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization: Option<String>,
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (RFC 6749 section 2.3.1).
    #[default]
    ClientSecretPost,
    /// `client_id` and `client_secret` as HTTP Basic authentication.
    ClientSecretBasic,
    /// A JWT signed with the client's private key (RFC 7523 section 2.2), for confidential
    /// clients that sign instead of holding a secret.
    PrivateKeyJwt,
    /// No client authentication: a public client sends only `client_id`.
    None,
    /// The older name of `client_secret_post`.
    RequestBody,
    /// The older name of `client_secret_basic`.
    Basic,
}

impl ClientAuth {
    /// The method, with older names read as the standard ones.
    pub fn standard(self) -> ClientAuth {
        match self {
            ClientAuth::RequestBody => ClientAuth::ClientSecretPost,
            ClientAuth::Basic => ClientAuth::ClientSecretBasic,
            other => other,
        }
    }
}

/// How a token request's parameters are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenRequestFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 says.
    #[default]
    Form,
    /// A JSON object (`application/json`), which some providers insist on.
    Json,
}

impl TokenRequestFormat {
    /// True for the standard form encoding.
    pub fn is_form(&self) -> bool {
        *self == TokenRequestFormat::Form
    }
}

/// PKCE policy: what keyway sends, given what the provider accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pkce {
    /// Always send an S256 challenge; the provider may insist on one.
    Required,
    /// Send an S256 challenge unless the connection turns it off.
    Optional,
    /// Never send one; the provider rejects or ignores it.
    Off,
}

/// How the refresh token grant behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// Whether the refresh request carries the client secret. A connection can override it
    /// to match its app's setting.
    pub send_client_secret: bool,
    /// Whether a refresh may return a new refresh token that replaces the old one.
    pub rotation: Rotation,
    /// Whether the provider issues refresh tokens only when a scope marked `grants_refresh` is
    /// requested (Salesforce's `refresh_token`). Set it to `false` for providers that issue
    /// them whatever the scopes, or on an authorization parameter (`access_type: offline`).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub needs_scope: bool,
}

/// Refresh-token rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// The refresh token never changes.
    Never,
    /// A refresh may return a new refresh token (an app setting); when it does, it replaces
    /// the old one, which dies.
    Optional,
    /// Every refresh returns a new refresh token.
    Always,
}

/// What to keep from token responses, and token lifetimes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// Extra fields of the token response to keep with the token set (`instance_url`). Templates
    /// see them as `token.<field>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_fields: Vec<String>,
    /// A token-response field that says when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<IssuedAt>,
    /// Where the token set is when the token response's top level has no `access_token`, for
    /// providers that nest it (Slack's user-token installs: `/authed_user`): a JSON pointer
    /// to the object holding `access_token`, `refresh_token`, `expires_in` and `scope`. Kept
    /// fields are read from the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_pointer: Option<String>,
    /// The unit of the response's `expires_in`: seconds (RFC 6749), or milliseconds for the
    /// providers that send those.
    #[serde(default, skip_serializing_if = "TimeUnit::is_seconds")]
    pub expires_in_unit: TimeUnit,
    /// The access-token lifetime to assume when the response has no `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumed_lifetime_seconds: Option<u64>,
    /// Learn the real expiry from the introspection endpoint's `exp` when `expires_in` is absent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub introspect_for_expiry: bool,
}

/// Where a token response says when it was issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedAt {
    /// The field name: `issued_at`.
    pub field: String,
    /// Its unit.
    pub unit: TimeUnit,
}

/// A unit of time: of an epoch timestamp, or of a lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds (since the Unix epoch, for a timestamp).
    #[default]
    Seconds,
    /// Milliseconds (since the Unix epoch, for a timestamp).
    Milliseconds,
}

impl TimeUnit {
    /// Whether this is the default, seconds.
    pub fn is_seconds(&self) -> bool {
        *self == TimeUnit::Seconds
    }

    /// How many of this unit make a second.
    pub fn per_second(self) -> u64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Milliseconds => 1000,
        }
    }
}

/// The JWT bearer grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtBearer {
    /// The assertion's `aud` claim. Template.
    pub audience: String,
    /// How long an assertion is valid (`exp - now`).
    #[serde(default = "default_assertion_lifetime")]
    pub assertion_lifetime_seconds: u32,
}

fn default_assertion_lifetime() -> u32 {
    180
}

/// The device authorization grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFlow {
    /// Where the flow starts. Template. Salesforce uses its token endpoint.
    pub start: String,
    /// Extra form parameters of the start request (`response_type: device_code`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub start_params: Map<String>,
    /// The `grant_type` of poll requests. Standard: `urn:ietf:params:oauth:grant-type:device_code`.
    pub poll_grant_type: String,
    /// The form field carrying the device code when polling. Standard: `device_code`.
    pub poll_code_param: String,
}

/// Where API calls go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// The base URL action paths are relative to. Template; sees `env`, `params` and `token`.
    pub base_url: String,
    /// The API version the actions are written against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A cheap, read-only call that proves a connection works, made when an account is linked
    /// and on demand (a connection test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// A connection test: `GET` of a path under `api.base_url` with the connection's access token.
/// Any 2xx answer passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The path under `api.base_url`: `/limits`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
}

/// Provider limits and delays. Guide templates see them as `limits.<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Refresh tokens a user can hold for one app; one more grant revokes the least recently
    /// used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_per_user: Option<u32>,
    /// How long a new or changed app takes to become usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_activation_delay_minutes: Option<u32>,
    /// The total length of all callback URLs of one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_urls_max_chars: Option<u32>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self == &Limits::default()
    }
}

/// One scope of the catalogue, keyed by the value sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The label the provider's console shows: "Manage user data via APIs". Absent where the
    /// provider names scopes by their value alone (as the catalogues imported from Nango do):
    /// the value is shown instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The console's entry when it differs from `label (value)`, for entries that cover
    /// several values: "Perform requests at any time (refresh_token, offline_access)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_label: Option<String>,
    /// What it allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether requesting it makes the provider issue a refresh token.
    #[serde(default, skip_serializing_if = "is_false")]
    pub grants_refresh: bool,
    /// Offered for custom scope selections only: no action and no default needs it. Says that
    /// the scope is in the catalogue on purpose, and silences the unused-scope warning.
    #[serde(default, skip_serializing_if = "is_false")]
    pub custom_only: bool,
    /// Scopes this one includes (`full` implies `api`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implies: Vec<String>,
}

/// A provider object actions work on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiObject {
    /// The object's label as the provider's console shows it: "Knowledge" for `Knowledge__kav`.
    pub label: String,
}

/// An action the platform offers: one API call and the scopes it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Display name: "Create Case".
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The provider object it works on, by its API name: `Case`, `Knowledge__kav` (its label
    /// comes from `objects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The HTTP method.
    pub method: HttpMethod,
    /// The path under `api.base_url`, with `{name}` placeholders for call arguments:
    /// `/sobjects/Case/{id}`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// The scopes the call needs; each must be in the catalogue.
    pub scopes: Vec<String>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// The admin's setup guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guide {
    /// Console variants the guide is written for (External Client App, classic Connected
    /// App). Exactly one is the default when any are declared.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variants: Map<Variant>,
    /// Sections in order, keyed by id.
    pub sections: Map<Section>,
}

/// A console variant the guide distinguishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Display name.
    pub label: String,
    /// When to choose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Used unless another variant is asked for.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Short names that also select it (`eca`, `connected-app`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A section of the guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Heading. Template.
    pub title: String,
    /// A paragraph under the heading. Template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intro: Option<String>,
    /// Shown only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Where a section added by a child profile goes among the inherited ones (default: last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Placement>,
    /// Steps in order, keyed by id.
    pub steps: Map<Step>,
}

/// One step the admin takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What to do, short. Template.
    pub title: String,
    /// The instruction. Template (Markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Details, settings and callouts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Shown only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Where a step added by a child profile goes among the inherited ones (default: last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Placement>,
}

/// A bullet of a step: plain text, or text with a kind and a condition.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Item {
    /// A plain bullet. Template.
    Text(String),
    /// A bullet with a kind or a condition.
    Detailed(DetailedItem),
}

// By hand rather than `#[serde(untagged)]`: the derived form buffers the value and would
// read a list as a `DetailedItem` (fields by position), which the schema refuses.
impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> serde::de::Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or a mapping with `text`")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Item, E> {
                Ok(Item::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Item, E> {
                Ok(Item::Text(text))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                DetailedItem::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Item::Detailed)
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// A bullet with a kind or a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedItem {
    /// The text. Template.
    pub text: String,
    /// How it is presented.
    #[serde(default)]
    pub kind: ItemKind,
    /// A setting the admin must put in a given state (a console checkbox), for checklists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<Setting>,
    /// Shown only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// A console setting and the state the guide asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The setting's name as the console shows it.
    pub name: String,
    /// The state to put it in: `checked`, `unchecked`, or a value.
    pub state: String,
}

/// How a guide bullet is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An ordinary bullet.
    #[default]
    Bullet,
    /// Background worth knowing.
    Note,
    /// A shortcut or recommendation.
    Tip,
    /// Something that breaks the connection if ignored.
    Warning,
    /// Something that must not be missed.
    Important,
}

/// Where an entry added by a child profile goes among the inherited ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// Just before the entry with this id.
    Before(String),
    /// Just after the entry with this id.
    After(String),
}

/// A condition on the guide's selection. Every field given must hold; a list holds when any
/// of its entries does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The console variant is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variant: Vec<String>,
    /// The environment is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// At least one of these actions is selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// At least one of these scopes is requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The connection requests custom scopes (true) or the computed ones (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scopes: Option<bool>,
    /// The refresh request sends the client secret (true) or not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_sends_secret: Option<bool>,
    /// Authorization requests carry a PKCE challenge (true) or not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends_pkce: Option<bool>,
    /// The connection uses at least one of these grants (a guide's default: the authorization
    /// code and refresh token grants the profile offers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// The platform stores the new refresh token after every refresh, so it can use refresh
    /// token rotation (true), or not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotates_refresh_tokens: Option<bool>,
    /// Holds when this condition does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
}

/// What one provider error means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Which errors this rule covers.
    #[serde(rename = "match")]
    pub matches: ErrorMatch,
    /// What the runtime does about it.
    pub kind: ErrorKind,
    /// The cause, in a sentence.
    pub meaning: String,
    /// What to do. Template.
    pub fix: String,
    /// The troubleshooting heading the guide shows for it; without one the rule is not listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub troubleshooting: Option<String>,
    /// When the guide lists the troubleshooting entry (for example only for the actions whose
    /// errors it explains); always without one. The runtime's diagnosis ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// Which provider errors a rule covers. Every field given must match.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorMatch {
    /// The OAuth `error` code (or API `errorCode`), exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A regular expression over the error description or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Where the error shows up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<ErrorPhase>,
}

/// Where a provider error shows up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPhase {
    /// On the redirect back from the authorization page.
    Authorize,
    /// At the token endpoint (code exchange, refresh, other grants).
    Token,
    /// On an API call.
    Api,
}

/// What the runtime does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The grant is gone: the user must connect again.
    Reauthorize,
    /// Transient: try again later.
    RetryLater,
    /// The app or connection is misconfigured: an admin must change a setting.
    FixConfiguration,
    /// The client sent something wrong: a bug to report.
    ClientBug,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_true() -> bool {
    true
}
