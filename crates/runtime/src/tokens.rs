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
    /// A token exchange of the connection's entered fields (`auth.exchange`).
    TokenExchange,
    /// A JWT the connection signed itself (`auth.jwt`).
    SignedJwt,
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
    /// When this client received the set, in milliseconds since the Unix epoch: the start of
    /// the token's lifetime when the provider does not say when it issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obtained_at_ms: Option<u64>,
    /// How the set was obtained.
    pub grant: GrantUsed,
    /// The response fields the profile keeps (`instance_url`, `id`, `issued_at`, `signature`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    /// Where the set was issued. Refresh, revocation and introspection refuse a set issued for
    /// another profile, environment or token host before any request, so a stray profile with
    /// the same id cannot collect its tokens. Absent on sets written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<TokenOrigin>,
}

/// The longest lifetime a token response may claim (ten years): anything longer is a broken
/// or hostile answer, refused rather than wrapped into an expiry in the past.
pub const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;

/// `expires_in` in `unit` as a number of seconds (rounded down: never longer than said): a
/// whole, non-negative number (or such a string) no larger than [`MAX_LIFETIME_SECONDS`].
fn lifetime_seconds(value: &Value, unit: TimeUnit) -> Option<u64> {
    let most = MAX_LIFETIME_SECONDS.saturating_mul(unit.per_second());
    let amount = match value {
        Value::Number(n) => match n.as_u64() {
            Some(whole) => whole,
            // 3600.0 is whole; 3600.5, -1 and 1e300 are not lifetimes.
            None => {
                let f = n.as_f64()?;
                if f.fract() != 0.0 || !(0.0..=most as f64).contains(&f) {
                    return None;
                }
                f as u64
            }
        },
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (amount <= most).then(|| amount / unit.per_second())
}

/// A point in time from an answer, in seconds since the epoch: a whole number (or numeric
/// string) of seconds, or of milliseconds when it is over 10^11 (the year 5138 in seconds), or
/// an RFC 3339 date-time.
fn timestamp_seconds(value: &Value) -> Option<u64> {
    const MILLISECONDS_FROM: u64 = 100_000_000_000;
    let whole = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => s.trim().parse::<u64>().ok(),
        Value::String(s) => {
            let at = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()?;
            return u64::try_from(at.unix_timestamp()).ok();
        }
        _ => None,
    }?;
    Some(if whole > MILLISECONDS_FROM { whole / 1000 } else { whole })
}

/// A token is renewed at the latest when this fraction of its lifetime is left (or the
/// margin, whichever is less).
const LIFETIME_FRACTION: u64 = 10;

/// The largest token set read from a file or stdin: real ones are a few kilobytes (a
/// Salesforce set with an ID token is about 4 KiB).
pub const MAX_TOKEN_SET_BYTES: u64 = 1024 * 1024;

/// The connection a token set was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenOrigin {
    /// The profile id.
    pub profile: String,
    /// The environment id.
    pub environment: String,
    /// The token endpoint's host (and port, when it is not the scheme's default).
    pub token_host: String,
}

impl std::fmt::Display for TokenOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "profile `{}`, environment `{}`, token host `{}`", self.profile, self.environment, self.token_host)
    }
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
    /// A self-signed JWT as a token set, good until `expires_at` (seconds).
    pub(crate) fn signed(token: String, now_ms: u64, expires_at: u64, origin: TokenOrigin) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(token),
            refresh_token: None,
            token_type: "JWT".to_owned(),
            scopes: Vec::new(),
            expires_at: Some(expires_at),
            expiry_source: ExpirySource::ExpiresIn,
            issued_at_ms: Some(now_ms),
            obtained_at_ms: Some(now_ms),
            grant: GrantUsed::SignedJwt,
            fields: Map::new(),
            origin: Some(origin),
        }
    }

    /// Builds a token set from a token exchange's answer: the token at `token_pointer`, its
    /// lifetime at `expires_in_pointer` (in `expires_in_unit`) or the profile's assumed
    /// lifetime, the kept fields from the answer's top level.
    pub(crate) fn exchanged(
        profile: &Profile,
        exchange: &keyway_manifest::model::Exchange,
        answer: &Map<String, Value>,
        now_ms: u64,
    ) -> Result<TokenSet, ResponseError> {
        let answer_value = Value::Object(answer.clone());
        let access_token = match answer_value.pointer(&exchange.token_pointer) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TOKEN_SET_BYTES as usize => {
                SecretString::from(s.as_str())
            }
            _ => {
                return Err(ResponseError(format!(
                    "the exchange's answer has no token (a non-empty string) at `{}`",
                    exchange.token_pointer
                )));
            }
        };
        let unit = exchange.expires_in_unit;
        let expires_in = match exchange.expires_in_pointer.as_deref().and_then(|p| answer_value.pointer(p)) {
            None | Some(Value::Null) => None,
            Some(value) => Some(lifetime_seconds(value, unit).ok_or_else(|| {
                ResponseError("the exchange's token lifetime is not a whole number in range".to_owned())
            })?),
        };
        let expires_at_given = match exchange.expires_at_pointer.as_deref().and_then(|p| answer_value.pointer(p)) {
            None | Some(Value::Null) => None,
            Some(value) => Some(timestamp_seconds(value).ok_or_else(|| {
                ResponseError(
                    "the exchange's token expiry is not a time (epoch seconds or milliseconds, or RFC 3339)".to_owned(),
                )
            })?),
        };
        let (expires_at, expiry_source) =
            match (expires_in, expires_at_given, profile.auth.tokens.assumed_lifetime_seconds) {
                (Some(seconds), _, _) => (Some((now_ms / 1000).saturating_add(seconds)), ExpirySource::ExpiresIn),
                // Never later than the longest lifetime keyway takes from an answer.
                (None, Some(at), _) => {
                    (Some(at.min((now_ms / 1000).saturating_add(MAX_LIFETIME_SECONDS))), ExpirySource::ExpiresIn)
                }
                (None, None, Some(assumed)) => (Some((now_ms / 1000).saturating_add(assumed)), ExpirySource::Assumed),
                (None, None, None) => (None, ExpirySource::Unknown),
            };
        let fields = profile
            .auth
            .tokens
            .keep_fields
            .iter()
            .filter_map(|name| answer.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        Ok(TokenSet {
            access_token,
            refresh_token: None,
            token_type: "Bearer".to_owned(),
            scopes: Vec::new(),
            expires_at,
            expiry_source,
            issued_at_ms: None,
            obtained_at_ms: Some(now_ms),
            grant: GrantUsed::TokenExchange,
            fields,
            origin: None,
        })
    }

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
        let top = response;
        // A provider that nests the token set when its top level has none
        // (`auth.tokens.response_pointer`) is read there; kept fields still come from the top
        // level.
        let nested;
        let response = match &profile.auth.tokens.response_pointer {
            Some(pointer) if !response.contains_key("access_token") => {
                nested = Value::Object(response.clone()).pointer(pointer).cloned();
                match &nested {
                    Some(Value::Object(map)) => map,
                    _ => return Err(ResponseError(format!("the token response has no object at `{pointer}`"))),
                }
            }
            _ => response,
        };
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
        let unit = profile.auth.tokens.expires_in_unit;
        let expires_in = match response.get("expires_in") {
            None | Some(Value::Null) => None,
            Some(value) => Some(lifetime_seconds(value, unit).ok_or_else(|| {
                let most = MAX_LIFETIME_SECONDS.saturating_mul(unit.per_second());
                let name = if unit.is_seconds() { "seconds" } else { "milliseconds" };
                ResponseError(format!("`expires_in` is not a whole number of {name} from 0 to {most}"))
            })?),
        };
        let (expires_at, expiry_source) = match (expires_in, profile.auth.tokens.assumed_lifetime_seconds) {
            (Some(seconds), _) => (Some((now_ms / 1000).saturating_add(seconds)), ExpirySource::ExpiresIn),
            (None, Some(assumed)) => {
                // Never later than the client's own clock allows: a provider clock ahead of
                // ours must not stretch the lifetime.
                let base = issued_at_ms.map_or(now_ms, |at| at.min(now_ms));
                (Some((base / 1000).saturating_add(assumed)), ExpirySource::Assumed)
            }
            (None, None) => (None, ExpirySource::Unknown),
        };
        let fields = profile
            .auth
            .tokens
            .keep_fields
            .iter()
            .filter_map(|name| top.get(name).or_else(|| response.get(name)).map(|v| (name.clone(), v.clone())))
            .collect();
        Ok(TokenSet {
            access_token,
            refresh_token,
            token_type,
            scopes,
            expires_at,
            expiry_source,
            issued_at_ms,
            obtained_at_ms: Some(now_ms),
            grant,
            fields,
            origin: None,
        })
    }

    /// Whether the access token is expired, or will be within `skew_seconds`, at `now` (seconds
    /// since the epoch). A token with no known expiry is never considered expired.
    pub fn expires_within(&self, now: u64, skew_seconds: u64) -> bool {
        self.expires_at.is_some_and(|at| now.saturating_add(skew_seconds) >= at)
    }

    /// Whether the access token is due for renewal at `now`: what is left of it is under the
    /// margin, where the margin is `skew_seconds` capped at a tenth of the token's lifetime
    /// (from its issue time, else the time it was received; at least one second). A 60-second
    /// token is renewed 6 seconds before it expires, about once a minute, not on every read
    /// under a 5-minute margin; a one-hour token 5 minutes before. A token without an expiry
    /// is never due here (the profile's rules gave it one when they could).
    pub fn is_due(&self, now: u64, skew_seconds: u64) -> bool {
        let Some(at) = self.expires_at else { return false };
        let lifetime = self.issued_at_ms.or(self.obtained_at_ms).map(|issued| at.saturating_sub(issued / 1000));
        let margin = match lifetime {
            Some(lifetime) if lifetime > 0 => skew_seconds.min((lifetime / LIFETIME_FRACTION).max(1)),
            _ => skew_seconds,
        };
        now.saturating_add(margin) >= at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(tokens: &str) -> Profile {
        let text = format!(
            "id: demo\nname: Demo\nenvironments:\n  production: {{label: Production, default: true}}\nauth:\n  grants: [authorization_code, refresh_token]\n  endpoints: {{authorize: 'https://x.example/a', token: 'https://x.example/t'}}\n  pkce: optional\n  scope_separator: ','\n  tokens: {tokens}\nscopes:\n  api: {{label: API}}\n  refresh: {{label: Refresh, grants_refresh: true}}\nactions:\n  read: {{name: Read, method: GET, path: /r, scopes: [api]}}\n"
        );
        let loaded = keyway_manifest::load_str("demo.yaml", &text);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        loaded.profiles.into_iter().next().expect("profile").profile
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn expires_in_in_milliseconds_when_the_profile_says_so() {
        let p = profile("{expires_in_unit: milliseconds}");
        for (expires_in, seconds) in [(json!(3_600_000), 3600), (json!("1500"), 1), (json!(999), 0)] {
            let r = map(json!({"access_token": "a", "expires_in": expires_in}));
            let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
            assert_eq!(t.expires_at, Some(NOW_MS / 1000 + seconds), "{expires_in}: rounded down");
        }
        let too_long = json!(MAX_LIFETIME_SECONDS * 1000 + 1);
        let r = map(json!({"access_token": "a", "expires_in": too_long}));
        let e = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect_err("refused");
        assert!(e.0.contains("milliseconds"), "{e}");
    }

    #[test]
    fn expires_in_wins_as_number_or_string() {
        let p = profile("{assumed_lifetime_seconds: 7200}");
        for expires_in in [json!(3600), json!("3600")] {
            let r = map(json!({"access_token": "a", "expires_in": expires_in}));
            let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
            assert_eq!(t.expires_at, Some(NOW_MS / 1000 + 3600));
            assert_eq!(t.expiry_source, ExpirySource::ExpiresIn);
        }
    }

    #[test]
    fn assumed_lifetime_counts_from_issued_at_in_milliseconds_but_never_from_the_future() {
        let p = profile(
            "{keep_fields: [instance_url, issued_at], issued_at: {field: issued_at, unit: milliseconds}, assumed_lifetime_seconds: 7200}",
        );
        let issued = NOW_MS - 600_000;
        let r = map(
            json!({"access_token": "a", "issued_at": issued.to_string(), "instance_url": "https://i.example", "other": 1}),
        );
        let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
        assert_eq!(t.issued_at_ms, Some(issued));
        assert_eq!(t.expires_at, Some(issued / 1000 + 7200));
        assert_eq!(t.expiry_source, ExpirySource::Assumed);
        assert_eq!(t.fields.keys().collect::<Vec<_>>(), ["instance_url", "issued_at"]);
        // A provider clock ahead of ours does not stretch the lifetime.
        let r = map(json!({"access_token": "a", "issued_at": (NOW_MS + 3_600_000).to_string()}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
        assert_eq!(t.expires_at, Some(NOW_MS / 1000 + 7200));
    }

    #[test]
    fn issued_at_in_seconds_and_no_lifetime_at_all() {
        let p = profile("{issued_at: {field: iat, unit: seconds}}");
        let r = map(json!({"access_token": "a", "iat": 1_699_999_000}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::ClientCredentials, NOW_MS, &[], None).expect("set");
        assert_eq!(t.issued_at_ms, Some(1_699_999_000_000));
        assert_eq!((t.expires_at, t.expiry_source), (None, ExpirySource::Unknown));
        assert!(!t.expires_within(u64::MAX / 2, 300), "no known expiry: never expired");
    }

    #[test]
    fn lifetimes_out_of_range_are_refused_never_wrapped() {
        let p = profile("{}");
        for bad in [
            json!(18_446_744_073_709_551_615u64),
            json!(-1),
            json!(3600.5),
            json!(1e300),
            json!("18446744073709551616"),
            json!("-5"),
            json!("soon"),
            json!(true),
            json!([3600]),
            json!(MAX_LIFETIME_SECONDS + 1),
        ] {
            let r = map(json!({"access_token": "a", "expires_in": bad}));
            let e =
                TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect_err("refused");
            assert!(e.0.contains("expires_in"), "{bad}: {e}");
        }
        for good in [json!(0), json!(3600.0), json!(" 60 "), json!(MAX_LIFETIME_SECONDS), json!(null)] {
            let r = map(json!({"access_token": "a", "expires_in": good}));
            let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("read");
            assert!(t.expires_at.is_none_or(|at| at >= NOW_MS / 1000), "{good}");
        }
    }

    #[test]
    fn short_tokens_are_due_a_tenth_of_their_lifetime_early_long_ones_at_the_margin() {
        let p = profile("{}");
        let issued = NOW_MS / 1000;
        let set = |expires_in: u64| {
            let r = map(json!({"access_token": "a", "expires_in": expires_in}));
            TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set")
        };
        // A 60-second token under a 300-second margin: due 6 seconds before it expires.
        let short = set(60);
        assert!(!short.is_due(issued, 300) && !short.is_due(issued + 53, 300));
        assert!(short.is_due(issued + 54, 300));
        // An 8-second one: at least a second before.
        assert!(!set(8).is_due(issued + 6, 300) && set(8).is_due(issued + 7, 300));
        // A one-hour token: due 300 seconds before it expires.
        let long = set(3600);
        assert!(!long.is_due(issued + 3299, 300));
        assert!(long.is_due(issued + 3300, 300));
        // No issue or receipt time known (a set stored before either was kept): the margin.
        let mut unknown = set(60);
        unknown.issued_at_ms = None;
        unknown.obtained_at_ms = None;
        assert!(unknown.is_due(issued, 300));
        // No expiry: never due by time.
        unknown.expires_at = None;
        assert!(!unknown.is_due(u64::MAX, 300));
    }

    #[test]
    fn scopes_use_the_profile_separator_or_fall_back_to_the_request() {
        let p = profile("{}");
        let r = map(json!({"access_token": "a", "scope": "api,refresh"}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
        assert_eq!(t.scopes, ["api", "refresh"]);
        let r = map(json!({"access_token": "a"}));
        let requested = vec!["api".to_owned()];
        let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &requested, None).expect("set");
        assert_eq!(t.scopes, requested);
    }

    #[test]
    fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
        let p = profile("{}");
        let old = SecretString::from("old-refresh");
        let r = map(json!({"access_token": "a2"}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::RefreshToken, NOW_MS, &[], Some(&old)).expect("set");
        assert_eq!(t.refresh_token.as_ref().map(|s| s.expose_secret()), Some("old-refresh"));
        let r = map(json!({"access_token": "a3", "refresh_token": "rotated"}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::RefreshToken, NOW_MS, &[], Some(&old)).expect("set");
        assert_eq!(t.refresh_token.as_ref().map(|s| s.expose_secret()), Some("rotated"));
    }

    #[test]
    fn no_access_token_is_an_error_that_quotes_nothing() {
        let p = profile("{}");
        for body in [json!({}), json!({"access_token": ""}), json!({"access_token": 42, "refresh_token": "secret-rt"})]
        {
            let err = TokenSet::from_response(&p, &map(body), GrantUsed::AuthorizationCode, NOW_MS, &[], None)
                .expect_err("no access token");
            assert!(!err.0.contains("secret-rt") && !err.0.contains("42"), "{err}");
        }
    }

    #[test]
    fn serialization_round_trips_and_debug_redacts() {
        let p = profile("{}");
        let r = map(json!({"access_token": "at-value", "refresh_token": "rt-value"}));
        let t = TokenSet::from_response(&p, &r, GrantUsed::AuthorizationCode, NOW_MS, &[], None).expect("set");
        let json = serde_json::to_string(&t).expect("json");
        assert!(json.contains("at-value") && json.contains("rt-value"), "exported for storage: {json}");
        let back: TokenSet = serde_json::from_str(&json).expect("back");
        assert_eq!(back.access_token.expose_secret(), "at-value");
        let debug = format!("{t:?}");
        assert!(!debug.contains("at-value") && !debug.contains("rt-value"), "{debug}");
    }

    #[test]
    fn timestamps_are_seconds_milliseconds_or_rfc_3339() {
        assert_eq!(timestamp_seconds(&json!(1_893_456_000u64)), Some(1_893_456_000));
        assert_eq!(timestamp_seconds(&json!(1_893_456_000_000u64)), Some(1_893_456_000), "milliseconds");
        assert_eq!(timestamp_seconds(&json!("1893456000")), Some(1_893_456_000));
        assert_eq!(timestamp_seconds(&json!("2030-01-01T00:00:00Z")), Some(1_893_456_000));
        assert_eq!(timestamp_seconds(&json!("2030-01-01T01:00:00+01:00")), Some(1_893_456_000));
        for bad in [json!(-5), json!(1.5), json!("tomorrow"), json!(null), json!([1])] {
            assert_eq!(timestamp_seconds(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_nested_token_set_is_read_only_when_the_top_level_has_none() {
        let p = profile("{response_pointer: /authed_user}");
        let read = |v: Value| TokenSet::from_response(&p, &map(v), GrantUsed::AuthorizationCode, NOW_MS, &[], None);
        let bot = read(json!({"access_token": "bot", "authed_user": {"access_token": "user"}})).expect("set");
        assert_eq!(bot.access_token.expose_secret(), "bot", "a bot install keeps its top-level token");
        let user = read(json!({"authed_user": {"access_token": "user", "expires_in": 60}})).expect("set");
        assert_eq!(user.access_token.expose_secret(), "user");
        assert_eq!(user.expires_at, Some(NOW_MS / 1000 + 60));
        let neither = read(json!({"ok": true})).expect_err("refused");
        assert!(neither.0.contains("/authed_user"), "{neither}");
    }
}
