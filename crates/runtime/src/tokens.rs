//! The token set a flow produces, built from a token response as the profile says.

use keyway_manifest::model::{Profile, TimeUnit};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// How a token set was obtained, which says how to get a new one when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantUsed {
    /// Authorization code (a user approved).
    AuthorizationCode,
    /// Refreshed from an earlier set.
    RefreshToken,
    /// Client credentials.
    ClientCredentials,
    /// A JWT bearer assertion.
    JwtBearer,
    /// The device flow.
    DeviceCode,
}

/// Where the expiry of the access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySource {
    /// The response's `expires_in`.
    ExpiresIn,
    /// The introspection endpoint's `exp`.
    Introspection,
    /// The profile's assumed lifetime, from `issued_at` or the time of the response.
    Assumed,
    /// Nothing says when it expires.
    Unknown,
}

/// Access and refresh tokens with what the profile keeps from the response.
///
/// `Debug` never shows the tokens. Serializing (the CLI prints token sets, stores persist
/// them) writes them out: treat serialized token sets as secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub access_token: SecretString,
    /// The refresh token, when one was issued (or kept from before a refresh that issued none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_opt",
        deserialize_with = "secret_opt"
    )]
    pub refresh_token: Option<SecretString>,
    /// `Bearer`, usually.
    pub token_type: String,
    /// Granted scopes (the response's `scope`), or the requested ones when it has none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the access token expires, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Where `expires_at` came from.
    pub expiry_source: ExpirySource,
    /// When the tokens were issued, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
    /// How the set was obtained.
    pub grant: GrantUsed,
    /// The response fields the profile keeps (`instance_url`, `id`, `issued_at`, `signature`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

fn expose<S: Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

fn expose_opt<S: Serializer>(s: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_str(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

fn secret<'de, D: Deserializer<'de>>(de: D) -> Result<SecretString, D::Error> {
    String::deserialize(de).map(SecretString::from)
}

fn secret_opt<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(de).map(|s| s.map(SecretString::from))
}

/// Why a token response could not be used. Never carries the response text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResponseError(pub String);

impl TokenSet {
    /// Builds a token set from a successful token response (a JSON object).
    ///
    /// `now_ms` is the client's clock; `requested` the scopes asked for, used when the
    /// response names none; `previous_refresh` is kept when a refresh returns no new one.
    pub(crate) fn from_response(
        profile: &Profile,
        response: &Map<String, Value>,
        grant: GrantUsed,
        now_ms: u64,
        requested: &[String],
        previous_refresh: Option<&SecretString>,
    ) -> Result<TokenSet, ResponseError> {
        let access_token = match response.get("access_token") {
            Some(Value::String(s)) if !s.is_empty() => SecretString::from(s.as_str()),
            _ => return Err(ResponseError("the token response has no `access_token`".to_owned())),
        };
        let refresh_token = match response.get("refresh_token") {
            Some(Value::String(s)) if !s.is_empty() => Some(SecretString::from(s.as_str())),
            _ => previous_refresh.cloned(),
        };
        let token_type = match response.get("token_type") {
            Some(Value::String(s)) => s.clone(),
            _ => "Bearer".to_owned(),
        };
        let scopes = match response.get("scope") {
            Some(Value::String(s)) => {
                let sep = profile.auth.scope_separator.as_str();
                let parts: Vec<String> = if sep.trim().is_empty() {
                    s.split_whitespace().map(str::to_owned).collect()
                } else {
                    s.split(sep).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
                };
                parts
            }
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => requested.to_vec(),
        };
        let issued_at_ms = profile.auth.tokens.issued_at.as_ref().and_then(|spec| {
            let raw = match response.get(&spec.field)? {
                Value::String(s) => s.trim().parse::<u64>().ok()?,
                Value::Number(n) => n.as_u64()?,
                _ => return None,
            };
            Some(match spec.unit {
                TimeUnit::Milliseconds => raw,
                TimeUnit::Seconds => raw.saturating_mul(1000),
            })
        });
        let expires_in = match response.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let (expires_at, expiry_source) = match (expires_in, profile.auth.tokens.assumed_lifetime_seconds) {
            (Some(seconds), _) => (Some(now_ms / 1000 + seconds), ExpirySource::ExpiresIn),
            (None, Some(assumed)) => {
                // Never later than the client's own clock allows: a provider clock ahead of
                // ours must not stretch the lifetime.
                let base = issued_at_ms.map_or(now_ms, |at| at.min(now_ms));
                (Some(base / 1000 + assumed), ExpirySource::Assumed)
            }
            (None, None) => (None, ExpirySource::Unknown),
        };
        let fields = profile
            .auth
            .tokens
            .keep_fields
            .iter()
            .filter_map(|name| response.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        Ok(TokenSet {
            access_token,
            refresh_token,
            token_type,
            scopes,
            expires_at,
            expiry_source,
            issued_at_ms,
            grant,
            fields,
        })
    }

    /// Whether the access token is expired, or will be within `skew_seconds`, at `now` (seconds
    /// since the epoch). A token with no known expiry is never considered expired.
    pub fn expires_within(&self, now: u64, skew_seconds: u64) -> bool {
        self.expires_at.is_some_and(|at| now.saturating_add(skew_seconds) >= at)
    }
}
