//! The ID token of an OpenID Connect code exchange, read for what binds the code to the
//! authorization request that asked for it: the `nonce` (RFC 9700 §2.1.1; OpenID Connect Core
//! §3.1.3.7). The token comes straight from the token endpoint over TLS, which OpenID Connect
//! accepts in place of checking its signature; its audience must still be this client.

use crate::errors::FlowError;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What the code exchange's ID token must repeat.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExpectedNonce<'a> {
    /// The authorization request's `nonce`.
    pub(super) nonce: &'a str,
    /// An answer without an ID token is refused: without PKCE, the nonce is the only thing
    /// that binds the code to this request.
    pub(super) id_token_required: bool,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Checks the answer's `id_token` against `expected`, for the client `client_id`. Claims are
/// named in errors, never their values.
pub(super) fn check(
    answer: &Map<String, Value>,
    expected: ExpectedNonce<'_>,
    client_id: &str,
) -> Result<(), FlowError> {
    let refused = FlowError::IdToken;
    let id_token = match answer.get("id_token") {
        Some(Value::String(token)) => token,
        Some(_) => return Err(refused("`id_token` is not a string")),
        None if expected.id_token_required => {
            return Err(refused(
                "the answer has no `id_token`, so its `nonce` cannot be checked and nothing binds the code \
                 to this authorization (PKCE is off); the authorization was refused",
            ));
        }
        None => return Ok(()),
    };
    let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(id_token)
        .map_err(|_| refused("`id_token` is not a readable JWT"))?
        .claims;
    let audience_is_us = match &claims.aud {
        Some(Audience::One(aud)) => aud == client_id,
        Some(Audience::Many(all)) => all.iter().any(|aud| aud == client_id),
        None => false,
    };
    if !audience_is_us {
        return Err(refused("the ID token's `aud` is not this client"));
    }
    match claims.nonce {
        Some(nonce) if nonce == expected.nonce => Ok(()),
        Some(_) => Err(refused(
            "the ID token's `nonce` is not this authorization's: the code was issued for another \
             authorization (a code injected into this session?); the authorization was refused",
        )),
        None => Err(refused("the ID token has no `nonce`, though the authorization request sent one")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(claims: Value) -> Map<String, Value> {
        let key = jsonwebtoken::EncodingKey::from_secret(b"k");
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign");
        let mut map = Map::new();
        map.insert("id_token".into(), Value::String(token));
        map
    }

    const REQUIRED: ExpectedNonce<'static> = ExpectedNonce { nonce: "n-1", id_token_required: true };

    #[test]
    fn the_request_s_nonce_and_this_client_as_audience_pass() {
        assert!(check(&answer(json!({"aud": "client", "nonce": "n-1"})), REQUIRED, "client").is_ok());
        assert!(check(&answer(json!({"aud": ["other", "client"], "nonce": "n-1"})), REQUIRED, "client").is_ok());
    }

    #[test]
    fn another_authorization_s_nonce_or_none_is_refused() {
        for claims in [json!({"aud": "client", "nonce": "n-2"}), json!({"aud": "client"})] {
            let error = check(&answer(claims.clone()), REQUIRED, "client").expect_err("refused");
            assert!(matches!(error, FlowError::IdToken(_)), "{claims}: {error}");
            assert!(!error.to_string().contains("n-2"), "values are not repeated: {error}");
        }
    }

    #[test]
    fn another_audience_or_an_unreadable_token_is_refused() {
        assert!(check(&answer(json!({"aud": "someone", "nonce": "n-1"})), REQUIRED, "client").is_err());
        assert!(check(&answer(json!({"nonce": "n-1"})), REQUIRED, "client").is_err());
        let mut garbage = Map::new();
        garbage.insert("id_token".into(), json!("not.a.jwt"));
        assert!(check(&garbage, REQUIRED, "client").is_err());
        garbage.insert("id_token".into(), json!(42));
        assert!(check(&garbage, REQUIRED, "client").is_err());
    }

    #[test]
    fn a_missing_id_token_is_refused_only_without_pkce() {
        assert!(check(&Map::new(), REQUIRED, "client").is_err(), "nothing else binds the code");
        let with_pkce = ExpectedNonce { nonce: "n-1", id_token_required: false };
        assert!(check(&Map::new(), with_pkce, "client").is_ok(), "PKCE binds it");
    }
}
