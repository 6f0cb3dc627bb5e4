//! Every diagnostic code, in one place.
//!
//! Codes are grouped by area: `KW00xx` reading files, `KW01xx` YAML, `KW02xx` schema,
//! `KW03xx` inheritance and the profile set, `KW04xx` semantic rules over a profile, `KW05xx`
//! a connector configuration checked against its profile. A code, once shipped, keeps its
//! meaning forever; retired codes are not reused. Each is documented in
//! `docs/diagnostics.md` (a test checks).

use crate::Severity;
use serde::Serialize;

macro_rules! codes {
    ($( $name:ident = $id:literal, $severity:ident, $summary:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( #[doc = $summary] $name, )*
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

            /// What the code means, in one line.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$name => $summary,)* }
            }
        }
    };
}

codes! {
    Io = "KW0001", Error, "A file or directory could not be read.";
    NotUtf8 = "KW0002", Error, "A file is not valid UTF-8.";
    TooLarge = "KW0003", Error, "A file is larger than a profile can reasonably be.";
    TooDeep = "KW0004", Error, "A directory of profiles is nested deeper than the walk goes.";
    YamlSyntax = "KW0101", Error, "The YAML is malformed.";
    DuplicateKey = "KW0102", Error, "A mapping has the same key twice.";
    NotAMapping = "KW0103", Error, "The document is empty or its top level is not a mapping.";
    UnsupportedYaml = "KW0104", Error, "A YAML feature profiles do not use: tags, non-scalar keys, several documents, nesting or alias expansion past limits.";
    UnknownKey = "KW0201", Error, "A key the profile format does not have.";
    MissingKey = "KW0202", Error, "A key the profile format requires is missing.";
    WrongType = "KW0203", Error, "A value has the wrong type.";
    InvalidValue = "KW0204", Error, "A value has the right type but is not allowed.";
    UnknownParent = "KW0301", Error, "`extends` names a profile that is not in the set being loaded.";
    ExtendsCycle = "KW0302", Error, "`extends` forms a cycle.";
    DuplicateProfileId = "KW0303", Error, "Two files define the same profile id.";
    BadReplacePointer = "KW0304", Error, "A `replace` pointer is malformed or points at nothing in the parent.";
    BadPlacement = "KW0305", Error, "A `place` names an entry that does not exist among its siblings.";
    IdFileMismatch = "KW0306", Warning, "The profile id does not match the file name.";
    ExtendsTooDeep = "KW0307", Error, "An `extends` chain is longer than profiles may inherit.";
    UnknownScope = "KW0401", Error, "An action names a scope that is not in the scope catalogue.";
    UnknownDefaultScope = "KW0402", Error, "A default scope is not in the scope catalogue.";
    NoRefreshScope = "KW0403", Error, "The profile refreshes tokens but requests no refresh-granting scope by default.";
    UnknownImpliedScope = "KW0404", Error, "A scope implies a scope that is not in the catalogue.";
    ScopeImplicationCycle = "KW0405", Error, "Scope implications form a cycle.";
    MalformedActionId = "KW0406", Error, "An action id is not snake_case.";
    TemplateSyntax = "KW0407", Error, "A template does not parse.";
    UnknownTemplateVariable = "KW0408", Error, "A template names a variable the profile cannot supply.";
    InsecureEndpoint = "KW0409", Error, "An endpoint does not render to a safe URL: https (http only for loopback hosts) to a public host, with no user information or fragment.";
    UnsafeParameterPattern = "KW0410", Error, "A parameter that reaches a URL has a pattern that is not anchored or can match URL delimiters, whitespace or non-ASCII characters.";
    InvalidRegex = "KW0411", Error, "A regular expression does not compile.";
    DefaultEnvironment = "KW0412", Error, "Not exactly one environment is the default.";
    UnknownConditionName = "KW0413", Error, "A guide condition names an action, scope, environment or variant that does not exist.";
    DefaultVariant = "KW0414", Error, "Guide variants are declared but not exactly one is the default.";
    UnusedParameter = "KW0415", Warning, "A parameter no template uses.";
    UnusedScope = "KW0416", Warning, "A profile offers actions, and a scope no action, default or implication needs is not marked `custom_only`.";
    BadParameterExample = "KW0417", Error, "A parameter's example does not pass its own pattern and rejections.";
    TransformedParameter = "KW0418", Error, "A URL template transforms a parameter instead of inserting the value its pattern checked.";
    UnsafeGuideLink = "KW0419", Error, "Guide text or a documentation link points somewhere other than an http(s) page, a `mailto:` address or a place in the page.";
    UnusedObject = "KW0420", Warning, "An `objects` entry names an object no action works on.";
    AuthKindMismatch = "KW0421", Error, "`auth` lacks a key its `kind` needs, or has one its `kind` does not use.";
    InvalidHeaderName = "KW0422", Error, "A header name in `auth.apply` or `auth.exchange` is not an HTTP field name, or names a header keyway sets itself.";
    SecretInQuery = "KW0423", Error, "A secret field or token is put in a query string (`auth.apply.query`, a `get` exchange) without `secret_in_query: true`.";
    InvalidJsonPointer = "KW0424", Error, "A JSON pointer into an answer (an exchange's `token_pointer`, `expires_in_pointer`, `expires_at_pointer`, `auth.tokens.response_pointer`) is malformed.";
    UnusedCredentialField = "KW0425", Warning, "A credential field the end user is asked for is sent nowhere.";
    KeyInProfile = "KW0426", Error, "A signed JWT's key is written into the profile instead of coming from a field.";
    InvalidParameterName = "KW0427", Error, "A renamed authorization parameter or the callback's code parameter is one keyway cannot rename, or a name a URL cannot carry.";
    MultilineFieldInRequest = "KW0428", Error, "A multi-line credential field (a PEM key) is put in a header or query string, which cannot carry line breaks.";
    MalformedActionPath = "KW0429", Error, "An action's path is not `/` segments with whole-segment `{snake_case}` placeholders, or has a segment that could move a request elsewhere.";
    UnknownAction = "KW0501", Error, "A connection selects an action the profile does not offer.";
    UnknownCustomScope = "KW0502", Error, "A custom scope is not in the profile's scope catalogue.";
    CustomScopesWithoutRefresh = "KW0503", Error, "Custom scopes include no refresh-granting scope, but the profile needs refresh.";
    CustomScopesMissActionScope = "KW0504", Error, "Custom scopes do not cover a scope a selected action needs.";
    UnknownEnvironment = "KW0505", Error, "A connection names an environment the profile does not have.";
    InvalidParameter = "KW0506", Error, "A connection parameter is unknown, missing, or fails its pattern.";
    InvalidRedirectUri = "KW0507", Error, "A redirect URI is not https, a private-use scheme, or loopback http.";
    UnknownVariant = "KW0508", Error, "A guide is asked for a console variant the profile does not have.";
    InvalidAppName = "KW0509", Error, "A guide's app name is empty, longer than 255 characters, or contains a control character.";
    InvalidGuideUrl = "KW0510", Error, "A guide URL, or the base URL a guide is shared under, is not an absolute http(s) URL, or its query is not a guide selection.";
    UnknownGrant = "KW0511", Error, "A guide is asked for a grant (flow) the profile does not offer.";
    InvalidCredentialField = "KW0512", Error, "An entered credential field is unknown, missing, empty, too long, holds a control character, or fails its pattern.";
    PkceRequired = "KW0601", Error, "A connection turns PKCE off, and the profile requires it.";
    PkceUnsupported = "KW0602", Error, "A connection turns PKCE on, and the profile says the provider does not support it.";
    MissingPrivateKey = "KW0603", Error, "The profile authenticates the client with `private_key_jwt`, and the connection has no private key.";
    InvalidClientCredentials = "KW0604", Error, "The connection's client id or secret is empty or longer than 2,000 bytes.";
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
