//! Secrets at rest: AES-256-GCM (the `aes-gcm` crate), a random 96-bit nonce per write, the
//! key id in the blob's header, and the row's identity bound as associated data, so a blob
//! copied to another row or column does not decrypt.
//!
//! A key file holds one key per line, `ID:BASE64` (32 bytes); `#` starts a comment. The
//! first key encrypts; every key decrypts. Rotation: put a new key first (`keyway keys
//! generate`), restart, then `keyway keys rotate` re-encrypts every row to it.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;

/// The blob format's version byte.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
/// A key file is a few lines; anything larger is not one.
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// What a ciphertext belongs to: its table, row and column. Bound as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    /// The table.
    pub table: &'a str,
    /// The row's primary key.
    pub row: &'a str,
    /// The column.
    pub column: &'a str,
}

/// Why a key file or a blob could not be used. Never contains key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key file is malformed.
    #[error("key file line {line}: {problem}")]
    KeyFile {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The key file has no key.
    #[error("the key file holds no key")]
    NoKey,
    /// The blob names a key this keyring does not have.
    #[error("the data is encrypted with key `{0}`, which is not in the key file")]
    UnknownKey(String),
    /// The blob is damaged, or belongs to another row or column.
    #[error("the data does not decrypt (damaged, or copied from another row)")]
    Undecryptable,
}

struct Entry {
    id: String,
    cipher: Aes256Gcm,
}

/// Keys by id; the first encrypts. `Debug` shows ids only.
pub struct Keyring {
    keys: Vec<Entry>,
    cookie_key: [u8; 32],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish_non_exhaustive()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<Keyring, CryptoError> {
        if text.len() > MAX_KEY_FILE_BYTES {
            return Err(CryptoError::KeyFile { line: 1, problem: format!("larger than {MAX_KEY_FILE_BYTES} bytes") });
        }
        let mut keys: Vec<Entry> = Vec::new();
        let mut primary: Option<[u8; 32]> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let problem = |problem: &str| CryptoError::KeyFile { line: i + 1, problem: problem.to_owned() };
            let (id, encoded) = line.split_once(':').ok_or_else(|| problem("expected `ID:BASE64`"))?;
            let id = id.trim();
            if !valid_id(id) {
                return Err(problem("the key id must be 1-32 letters, digits, `-` or `_`"));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(problem(&format!("the key id `{id}` appears twice")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| problem("the key is not base64"))?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| problem("the key must be 32 bytes (AES-256)"))?;
            primary.get_or_insert(bytes);
            keys.push(Entry { id: id.to_owned(), cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)) });
        }
        let primary = primary.ok_or(CryptoError::NoKey)?;
        // Cookies are signed with a key derived from the encrypting key, never with it directly.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&primary).map_err(|_| CryptoError::NoKey)?;
        mac.update(b"keyway/cookie-signing/v1");
        let cookie_key: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(Keyring { keys, cookie_key })
    }

    /// A new key file line: a random id and 32 random bytes.
    pub fn generate_line() -> String {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let mut id = [0u8; 4];
        OsRng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        format!("k{id}:{}", base64::engine::general_purpose::STANDARD.encode(key))
    }

    /// The id of the encrypting key.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the encrypting one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The key signing the connect page's cookies.
    pub fn cookie_key(&self) -> &[u8; 32] {
        &self.cookie_key
    }

    fn aad(cell: Cell<'_>, id: &str) -> Vec<u8> {
        format!("keyway/v{FORMAT}\0{id}\0{}\0{}\0{}", cell.table, cell.row, cell.column).into_bytes()
    }

    /// Encrypts `plaintext` for `cell` with the encrypting key.
    pub fn encrypt(&self, cell: Cell<'_>, plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::aad(cell, &key.id);
        // Encryption fails only for plaintexts beyond GCM's 64 GiB limit, far past any secret.
        let ciphertext = key.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &aad }).unwrap_or_default();
        let mut blob = Vec::with_capacity(2 + key.id.len() + NONCE_LEN + ciphertext.len());
        blob.push(FORMAT);
        blob.push(key.id.len() as u8);
        blob.extend_from_slice(key.id.as_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// The id of the key a blob was encrypted with.
    pub fn key_id(blob: &[u8]) -> Option<&str> {
        let (&format, rest) = blob.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if format != FORMAT || rest.len() < usize::from(len) {
            return None;
        }
        std::str::from_utf8(&rest[..usize::from(len)]).ok()
    }

    /// Decrypts a blob written for `cell`.
    pub fn decrypt(&self, cell: Cell<'_>, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = Self::key_id(blob).ok_or(CryptoError::Undecryptable)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let rest = &blob[2 + id.len()..];
        if rest.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Undecryptable)?;
        let aad = Self::aad(cell, id);
        key.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| CryptoError::Undecryptable)
    }

    /// Signs a value for a cookie: `VALUE.MAC` (base64url).
    pub fn sign(&self, value: &str) -> String {
        format!("{value}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac(value)))
    }

    /// The value of a signed cookie, when its MAC is right (checked in constant time).
    pub fn verify_signed<'v>(&self, signed: &'v str) -> Option<&'v str> {
        let (value, mac) = signed.rsplit_once('.')?;
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut check = <Hmac<Sha256> as Mac>::new_from_slice(&self.cookie_key).ok()?;
        check.update(value.as_bytes());
        check.verify_slice(&mac).ok().map(|()| value)
    }

    fn mac(&self, value: &str) -> Vec<u8> {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.cookie_key) else { return Vec::new() };
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::parse(&lines.join("\n")).expect("key file")
    }

    const CELL: Cell<'static> = Cell { table: "connections", row: "conn_1", column: "tokens_blob" };

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let line = Keyring::generate_line();
        let keys = ring(&[&line]);
        let a = keys.encrypt(CELL, b"refresh-token-value");
        let b = keys.encrypt(CELL, b"refresh-token-value");
        assert_ne!(a, b, "a random nonce per write");
        assert_eq!(keys.decrypt(CELL, &a).expect("decrypts"), b"refresh-token-value");
        assert!(!a.windows(7).any(|w| w == b"refresh"), "no plaintext in the blob");
        assert_eq!(Keyring::key_id(&a), Some(keys.primary_id()));
    }

    #[test]
    fn a_blob_copied_to_another_row_or_column_does_not_decrypt() {
        let keys = ring(&[&Keyring::generate_line()]);
        let blob = keys.encrypt(CELL, b"secret");
        for other in [
            Cell { row: "conn_2", ..CELL },
            Cell { column: "client_secret_blob", ..CELL },
            Cell { table: "integrations", ..CELL },
        ] {
            assert_eq!(keys.decrypt(other, &blob), Err(CryptoError::Undecryptable));
        }
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(keys.decrypt(CELL, &flipped), Err(CryptoError::Undecryptable));
        for junk in [&b""[..], b"\x01", b"\x01\x05ab", b"\x02\x01a0123456789012345678901234567"] {
            assert!(keys.decrypt(CELL, junk).is_err());
        }
    }

    #[test]
    fn old_keys_decrypt_and_only_the_first_encrypts() {
        let old = Keyring::generate_line();
        let new = Keyring::generate_line();
        let before = ring(&[&old]);
        let blob = before.encrypt(CELL, b"secret");
        let after = ring(&[&new, "# the previous key, until `keyway keys rotate` has run", &old]);
        assert_eq!(after.decrypt(CELL, &blob).expect("old key decrypts"), b"secret");
        assert_eq!(Keyring::key_id(&after.encrypt(CELL, b"x")), Some(after.primary_id()));
        let only_new = ring(&[&new]);
        let old_id = before.primary_id().to_owned();
        assert_eq!(only_new.decrypt(CELL, &blob), Err(CryptoError::UnknownKey(old_id)));
    }

    #[test]
    fn bad_key_files_are_located_and_never_echo_key_material() {
        let cases = [
            ("", CryptoError::NoKey),
            ("# only a comment\n", CryptoError::NoKey),
            ("no-colon", CryptoError::KeyFile { line: 1, problem: "expected `ID:BASE64`".into() }),
            ("\nk1:c2hvcnQ=", CryptoError::KeyFile { line: 2, problem: "the key must be 32 bytes (AES-256)".into() }),
            ("k1:!!!", CryptoError::KeyFile { line: 1, problem: "the key is not base64".into() }),
        ];
        for (text, expected) in cases {
            assert_eq!(Keyring::parse(text).map(|_| ()), Err(expected), "{text:?}");
        }
        let line = Keyring::generate_line();
        let twice = format!("{line}\n{line}");
        let error = Keyring::parse(&twice).expect_err("duplicate id").to_string();
        assert!(error.contains("appears twice") && !error.contains(line.split(':').nth(1).unwrap_or("?")));
        let debug = format!("{:?}", ring(&[&line]));
        assert!(!debug.contains(line.split(':').nth(1).unwrap_or("?")), "{debug}");
    }

    #[test]
    fn signed_values_verify_and_tampering_fails() {
        let keys = ring(&[&Keyring::generate_line()]);
        let signed = keys.sign("sess_123");
        assert_eq!(keys.verify_signed(&signed), Some("sess_123"));
        assert_eq!(keys.verify_signed(&signed.replace("sess_123", "sess_124")), None);
        assert_eq!(keys.verify_signed("sess_123"), None);
        let other = ring(&[&Keyring::generate_line()]);
        assert_eq!(other.verify_signed(&signed), None);
    }
}
