//! The values an end user entered to link an account: an API key, a user and a password.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// A connection's entered credential fields, by the profile's field names (`auth.fields`),
/// as [`Connector::check_fields`] accepted them.
///
/// `Debug` shows the names, never the values. Serializing (stores persist them, encrypted)
/// writes the values out: treat serialized fields as secrets.
///
/// [`Connector::check_fields`]: crate::Connector::check_fields
#[derive(Clone, Default)]
pub struct CredentialFields(BTreeMap<String, SecretString>);

impl CredentialFields {
    pub(crate) fn new(values: BTreeMap<String, SecretString>) -> CredentialFields {
        CredentialFields(values)
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    /// The names of the fields held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The fields, names with values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for CredentialFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Serialize for CredentialFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v.expose_secret())))
    }
}

impl<'de> Deserialize<'de> for CredentialFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let plain = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(CredentialFields(plain.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_fields_and_hides_values() {
        let fields = CredentialFields::new(BTreeMap::from([("api_key".to_owned(), SecretString::from("sk-live-123"))]));
        let shown = format!("{fields:?}");
        assert!(shown.contains("api_key") && !shown.contains("sk-live-123"), "{shown}");
        let stored = serde_json::to_string(&fields).expect("serialize");
        let back: CredentialFields = serde_json::from_str(&stored).expect("deserialize");
        assert_eq!(back.get("api_key").map(|v| v.expose_secret().to_owned()), Some("sk-live-123".to_owned()));
    }
}
