//! API keys of the management API: created once (the secret shown once, stored as a hash),
//! checked in constant time.

use super::*;

impl Hub {
    /// Creates an API key; the returned string is shown once and stored only as a hash.
    pub async fn create_api_key(store: &dyn Store, name: &str, now: i64) -> Result<String, DbError> {
        let id = ids::random(12);
        let secret = ids::random(40);
        let record = ApiKeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            secret_hash: sha256_hex(&secret),
            created_at: now,
            revoked_at: None,
        };
        store.insert_api_key(&record).await?;
        Ok(format!("kwk_{id}_{secret}"))
    }

    /// Checks a management API key (`kwk_ID_SECRET`): the secret's hash is compared in
    /// constant time.
    pub async fn check_api_key(&self, presented: &str) -> Result<(), HubError> {
        let unauthorized = |detail: &str| HubError::new(ProblemCode::Unauthorized, detail);
        if presented.starts_with("kwcs_") {
            return Err(unauthorized("a connect session token opens only its connect page, not the API"));
        }
        let Some((id, secret)) = presented.strip_prefix("kwk_").and_then(|rest| rest.split_once('_')) else {
            return Err(unauthorized("the API key is malformed or missing"));
        };
        let presented_hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Asked of the database on every request (batched): a key revoked on any instance is
        // refused on its next use everywhere.
        let expected = if id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            match self.freshness.api_key(id).await? {
                Some(record) if record.revoked_at.is_none() => hex_to_32(&record.secret_hash),
                _ => None,
            }
        } else {
            None
        };
        match expected {
            Some(hash) if bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &presented_hash[..])) => Ok(()),
            _ => Err(unauthorized("the API key is not valid")),
        }
    }
}

fn hex_to_32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
