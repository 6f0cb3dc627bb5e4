//! Small helpers: form encoding, random strings, PKCE hashing. None of them panic on hostile input.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte; a broken
/// escape is kept literally; invalid UTF-8 is replaced.
pub(crate) fn form_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes one component the way HTML forms (and Salesforce's redirects) do: unreserved characters
/// stay, a space becomes `+`, everything else `%XX`.
pub(crate) fn form_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits `a=1&b=2` (a query string or a form body) into decoded pairs, in order. Empty segments are skipped.
pub(crate) fn parse_pairs(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(segment), String::new()),
        })
        .collect()
}

/// A random alphanumeric string.
pub(crate) fn random_alnum(len: usize) -> String {
    keyway_stdx::random_alphanumeric(len)
}

/// A random Salesforce-style user code: four capital letters, a dash, four digits (`ABCD-1234`).
pub(crate) fn random_user_code() -> String {
    let mut rng = rand::thread_rng();
    let letters: String = (0..4).map(|_| char::from(rng.gen_range(b'A'..=b'Z'))).collect();
    let digits: String = (0..4).map(|_| char::from(rng.gen_range(b'0'..=b'9'))).collect();
    format!("{letters}-{digits}")
}

/// `BASE64URL-NOPAD(SHA256(input))`: the S256 PKCE transform.
pub(crate) fn s256(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// Standard base64 of SHA-256 of the parts: the `signature` field of token responses.
pub(crate) fn signature(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// A stable 18-character Salesforce-like id with the given 3-character key prefix, derived from `seed`.
pub(crate) fn stable_id(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut id = String::from(prefix);
    for byte in digest.iter().take(6) {
        id.push_str(&format!("{byte:02X}"));
    }
    id.push_str("AAA");
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_handles_broken_escapes() {
        assert_eq!(form_decode("a+b%20c%zz%4"), "a b c%zz%4");
        assert_eq!(form_decode("%E2%82%AC"), "€");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn encode_round_trips() {
        let s = "st ate&=?/é+%";
        assert_eq!(form_decode(&form_encode(s)), s);
        assert_eq!(form_encode("end-user denied authorization"), "end-user+denied+authorization");
    }

    #[test]
    fn pairs_in_order() {
        assert_eq!(
            parse_pairs("a=1&&b&c=x%3Dy"),
            vec![("a".into(), "1".into()), ("b".into(), String::new()), ("c".into(), "x=y".into())]
        );
    }

    #[test]
    fn s256_matches_rfc7636_example() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(stable_id("005", "a@b"), stable_id("005", "a@b"));
        assert_eq!(stable_id("005", "a@b").len(), 18);
        assert_ne!(stable_id("005", "a@b"), stable_id("005", "c@d"));
    }
}
