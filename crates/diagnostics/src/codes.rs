//! Every diagnostic code, in one place.
//!
//! Codes are grouped by area: `KW00xx` reading files, `KW01xx` YAML, `KW02xx` schema,
//! `KW03xx` inheritance and the profile set, `KW04xx` semantic rules. A code, once shipped,
//! keeps its meaning forever; retired codes are not reused. Each is documented in
//! `docs/diagnostics.md` (a test checks).

use crate::Severity;
use serde::Serialize;

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, $severity:ident; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $name, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as shown to users: `KW0102`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$name => $id,)* }
            }

            /// The severity a diagnostic with this code has unless the rule says otherwise.
            pub const fn default_severity(self) -> Severity {
                match self { $(Code::$name => Severity::$severity,)* }
            }
        }
    };
}

codes! {
    /// A file or directory could not be read.
    Io = "KW0001", Error;
    /// A file is not valid UTF-8.
    NotUtf8 = "KW0002", Error;
    /// A file is larger than a profile can reasonably be.
    TooLarge = "KW0003", Error;
    /// The YAML is malformed.
    YamlSyntax = "KW0101", Error;
    /// A mapping has the same key twice.
    DuplicateKey = "KW0102", Error;
    /// The document is empty or its top level is not a mapping.
    NotAMapping = "KW0103", Error;
    /// A YAML feature profiles do not use: tags, non-scalar keys, alias expansion past limits,
    /// nesting past limits.
    UnsupportedYaml = "KW0104", Error;
    /// A key the profile format does not have.
    UnknownKey = "KW0201", Error;
    /// A key the profile format requires is missing.
    MissingKey = "KW0202", Error;
    /// A value has the wrong type.
    WrongType = "KW0203", Error;
    /// A value has the right type but is not allowed (an unknown enum value, a pattern mismatch).
    InvalidValue = "KW0204", Error;
    /// `extends` names a profile that is not in the set being loaded.
    UnknownParent = "KW0301", Error;
    /// `extends` forms a cycle.
    ExtendsCycle = "KW0302", Error;
    /// Two files define the same profile id.
    DuplicateProfileId = "KW0303", Error;
    /// A `replace` pointer is malformed or points at nothing in the parent.
    BadReplacePointer = "KW0304", Error;
    /// A `place` names an entry that does not exist among its siblings.
    BadPlacement = "KW0305", Error;
    /// The profile id does not match the file name.
    IdFileMismatch = "KW0306", Warning;
    /// An action names a scope that is not in the scope catalogue.
    UnknownScope = "KW0401", Error;
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_well_formed() {
        let ids: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "codes must be unique and listed in numeric order");
        for id in ids {
            assert!(id.len() == 6 && id.starts_with("KW") && id[2..].bytes().all(|b| b.is_ascii_digit()), "{id}");
        }
    }
}
