//! Credentials other than OAuth 2.0: what each `auth.kind` needs and refuses (`KW0421`..
//! `KW0425`), and the end user's entered fields checked against the profile (`KW0512`).

use crate::patterns::{check_pattern, compile};
use crate::templates::analyse;
use indexmap::IndexMap;
use keyway_diagnostics::{Code, Diagnostic};
use keyway_manifest::escape_pointer_token as esc;
use keyway_manifest::model::{AuthKind, Profile};

/// The longest value a credential field may hold, in bytes: they travel in headers, and
/// servers refuse header lines much longer (8 KiB is common).
pub const MAX_FIELD_BYTES: usize = 4096;

/// The longest value of a multi-line field (a PEM key: an RSA 4096-bit key is about 3.3 KiB).
pub const MAX_MULTILINE_FIELD_BYTES: usize = 16384;

/// The longest header name a profile may give.
const MAX_HEADER_NAME: usize = 256;

/// Headers keyway sets itself or that frame the message; a profile cannot set them.
pub const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// The rules of `auth` for its kind. OAuth 2.0 profiles keep every rule they had; the keys
/// they require are checked here, not by the schema, so a profile of another kind need not
/// carry them.
pub(crate) fn rules(profile: &Profile, out: &mut Vec<Diagnostic>) {
    kind_keys(profile, out);
    header_names(profile, out);
    secrets_in_query(profile, out);
    pointers(profile, out);
    fields(profile, out);
    signing_key(profile, out);
    parameter_names(profile, out);
}

/// A query parameter's name as keyway writes it: a short token URLs carry as is.
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Renamed authorization parameters and the callback's code parameter.
fn parameter_names(profile: &Profile, out: &mut Vec<Diagnostic>) {
    const RENAMABLE: [&str; 4] = ["client_id", "redirect_uri", "response_type", "scope"];
    for (standard, name) in &profile.auth.authorization_param_names {
        let pointer = format!("/auth/authorization_param_names/{}", esc(standard));
        let problem = if !RENAMABLE.contains(&standard.as_str()) {
            Some(format!(
                "`{}` cannot be renamed; only {} can (`state`, PKCE and `nonce` protect the flow)",
                standard.escape_debug(),
                RENAMABLE.join(", ")
            ))
        } else if name.is_empty() && standard != "response_type" {
            Some(format!("`{standard}` cannot be left out; only `response_type` can"))
        } else if !name.is_empty() && !is_parameter_name(name) {
            Some(format!("`{}` is not a parameter name a URL carries as is", name.escape_debug()))
        } else {
            None
        };
        if let Some(problem) = problem {
            out.push(Diagnostic::new(Code::InvalidParameterName, problem).at_pointer(pointer).with_help(
                "rename one of client_id, redirect_uri, response_type, scope to letters, digits, `_`, `.` or `-`",
            ));
        }
    }
    if let Some(name) = &profile.auth.callback_code_param {
        if !is_parameter_name(name) || ["state", "iss", "error", "error_description"].contains(&name.as_str()) {
            out.push(
                Diagnostic::new(
                    Code::InvalidParameterName,
                    format!("`{}` cannot carry the authorization code", name.escape_debug()),
                )
                .at_pointer("/auth/callback_code_param")
                .with_help("name the callback parameter the provider puts the code in (letters, digits, `_`, `.`, `-`), other than `state`, `iss` and `error`"),
            );
        }
    }
}

/// A signed JWT's key comes from a field: a key written in the profile would be a secret in
/// a file anyone reading profiles can read, and the same for every connection.
fn signing_key(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let Some(jwt) = &profile.auth.jwt else { return };
    let Ok(names) = analyse(&jwt.key) else { return };
    if !names.iter().any(|n| n == "fields" || n.starts_with("fields.")) {
        out.push(
            Diagnostic::new(Code::KeyInProfile, "the signing key is written into the profile")
                .at_pointer("/auth/jwt/key")
                .with_help("declare a secret field for it (`auth.fields`) and write `{{ fields.NAME }}`"),
        );
    }
    for reserved in ["iat", "exp"] {
        if jwt.claims.contains_key(reserved) {
            out.push(
                Diagnostic::new(Code::AuthKindMismatch, format!("the claim `{reserved}` is keyway's to set"))
                    .at_pointer(format!("/auth/jwt/claims/{reserved}"))
                    .with_help("remove it; `lifetime_seconds` says how long each JWT is good for"),
            );
        }
    }
    if jwt.lifetime_seconds == 0 || jwt.lifetime_seconds > 24 * 3600 {
        out.push(
            Diagnostic::new(Code::AuthKindMismatch, "`lifetime_seconds` must be 1 to 86,400")
                .at_pointer("/auth/jwt/lifetime_seconds"),
        );
    }
}

fn mismatch(kind: AuthKind, key: &str, needed: bool) -> Diagnostic {
    let kind = kind.as_str();
    let (message, help) = if needed {
        (
            format!("`auth.kind: {kind}` needs `auth.{key}`"),
            format!("add `auth.{key}`; docs/profiles.md shows a complete `{kind}` profile"),
        )
    } else {
        (
            format!("`auth.{key}` has no meaning for `auth.kind: {kind}`"),
            format!("remove `auth.{key}`, or set `auth.kind` to the kind it belongs to"),
        )
    };
    let pointer = if needed { "/auth".to_owned() } else { format!("/auth/{key}") };
    Diagnostic::new(Code::AuthKindMismatch, message).at_pointer(pointer).with_help(help)
}

/// Each kind's keys present, and no key of another kind.
fn kind_keys(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let auth = &profile.auth;
    let kind = auth.kind;
    let oauth = kind == AuthKind::Oauth2;
    let entered = matches!(kind, AuthKind::ApiKey | AuthKind::Basic | AuthKind::TokenExchange | AuthKind::SignedJwt);
    let oauth_only = [
        ("issuer", auth.issuer.is_some()),
        ("callback_iss_required", auth.callback_iss_required),
        ("default_scopes", !auth.default_scopes.is_empty()),
        ("authorization_params", !auth.authorization_params.is_empty()),
        ("authorization_param_names", !auth.authorization_param_names.is_empty()),
        ("callback_code_param", auth.callback_code_param.is_some()),
        ("token_params", !auth.token_params.is_empty()),
        ("refresh_params", !auth.refresh_params.is_empty()),
        ("refresh", auth.refresh.is_some()),
        ("jwt_bearer", auth.jwt_bearer.is_some()),
        ("device", auth.device.is_some()),
    ];
    let required = [
        ("grants", !auth.grants.is_empty(), oauth),
        ("endpoints", auth.endpoints.is_some(), oauth),
        ("pkce", auth.pkce.is_some(), oauth),
        ("fields", !auth.fields.is_empty(), entered),
        ("apply", auth.apply.is_some(), entered),
        ("exchange", auth.exchange.is_some(), kind == AuthKind::TokenExchange),
        ("jwt", auth.jwt.is_some(), kind == AuthKind::SignedJwt),
    ];
    for (key, present, belongs) in required {
        if belongs && !present {
            out.push(mismatch(kind, key, true));
        } else if !belongs && present {
            out.push(mismatch(kind, key, false));
        }
    }
    if !oauth {
        for (key, present) in oauth_only {
            if present {
                out.push(mismatch(kind, key, false));
            }
        }
    }
    if let Some(apply) = &auth.apply {
        if kind == AuthKind::Basic && apply.basic.is_none() {
            out.push(mismatch(kind, "apply.basic", true));
        }
        if apply.headers.is_empty() && apply.query.is_empty() && apply.basic.is_none() {
            out.push(
                Diagnostic::new(Code::AuthKindMismatch, "`auth.apply` puts nothing on requests")
                    .at_pointer("/auth/apply")
                    .with_help("give `headers`, `query` or `basic`"),
            );
        }
    }
}

/// An HTTP field name (RFC 9110 section 5.6.2: a token).
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header_names(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let apply = profile.auth.apply.iter().flat_map(|a| a.headers.keys().map(|k| ("apply", k)));
    let exchange = profile.auth.exchange.iter().flat_map(|e| e.headers.keys().map(|k| ("exchange", k)));
    for (block, name) in apply.chain(exchange) {
        let pointer = format!("/auth/{block}/headers/{}", esc(name));
        let shown: String = name.escape_debug().take(80).collect();
        if name.len() > MAX_HEADER_NAME {
            out.push(
                Diagnostic::new(
                    Code::InvalidHeaderName,
                    format!("a header name is longer than {MAX_HEADER_NAME} characters"),
                )
                .at_pointer(pointer)
                .with_help("header names are short tokens: `X-Api-Key`"),
            );
        } else if !is_token(name) {
            out.push(
                Diagnostic::new(Code::InvalidHeaderName, format!("`{shown}` is not an HTTP header name"))
                    .at_pointer(pointer)
                    .with_help("header names are letters, digits and `!#$%&'*+-.^_`|~`, with no spaces or colons"),
            );
        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            out.push(
                Diagnostic::new(Code::InvalidHeaderName, format!("`{name}` is set by keyway, not by a profile"))
                    .at_pointer(pointer)
                    .with_help("keyway sets the headers that frame a request; remove this one"),
            );
        }
    }
}

/// A query string ends up in access logs and proxies' records: a secret goes there only when
/// the profile says the provider takes it nowhere else.
fn secrets_in_query(profile: &Profile, out: &mut Vec<Diagnostic>) {
    if let Some(exchange) = &profile.auth.exchange {
        if exchange.method == keyway_manifest::model::ExchangeMethod::Get && !exchange.secret_in_query {
            for (name, source) in &exchange.body {
                if let Some(secret) = secret_named(profile, source) {
                    out.push(
                        Diagnostic::new(
                            Code::SecretInQuery,
                            format!("the `get` exchange's parameter `{name}` carries the secret `{secret}` in its URL"),
                        )
                        .at_pointer(format!("/auth/exchange/body/{}", esc(name)))
                        .with_help("use `method: post`; if the provider takes it only in the query, say so with `secret_in_query: true` on the exchange"),
                    );
                }
            }
        }
    }
    let Some(apply) = &profile.auth.apply else { return };
    if apply.secret_in_query {
        return;
    }
    for (name, source) in &apply.query {
        if let Some(secret) = secret_named(profile, source) {
            out.push(
                Diagnostic::new(
                    Code::SecretInQuery,
                    format!("query parameter `{name}` carries the secret `{secret}`"),
                )
                .at_pointer(format!("/auth/apply/query/{}", esc(name)))
                .with_help("put it in a header; if the provider takes it only in the query, say so with `secret_in_query: true`"),
            );
        }
    }
}

fn pointers(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let Some(exchange) = &profile.auth.exchange else { return };
    let both = [
        ("token_pointer", Some(&exchange.token_pointer)),
        ("expires_in_pointer", exchange.expires_in_pointer.as_ref()),
    ];
    for (key, pointer) in both {
        let Some(pointer) = pointer else { continue };
        if let Some(problem) = pointer_problem(pointer) {
            out.push(
                Diagnostic::new(Code::InvalidJsonPointer, format!("`{key}` is not a JSON pointer: {problem}"))
                    .at_pointer(format!("/auth/exchange/{key}"))
                    .with_help("a JSON pointer (RFC 6901) starts with `/` and names keys or indexes: `/access_token`, `/data/token`"),
            );
        }
    }
}

/// The secret a template names (a secret field, all fields, or a token), if any. A template
/// that does not parse names none here: it is reported as a template error.
fn secret_named(profile: &Profile, source: &str) -> Option<String> {
    let names = analyse(source).ok()?;
    names.iter().find_map(|n| {
        if n == "fields" || n == "token" || n.starts_with("token.") {
            return Some(n.to_owned());
        }
        let field = n.strip_prefix("fields.")?.split('.').next()?;
        profile.auth.fields.get(field).filter(|f| f.secret).map(|_| n.to_owned())
    })
}

/// Why `pointer` is not a usable JSON pointer into an answer, or `None`.
pub fn pointer_problem(pointer: &str) -> Option<String> {
    if pointer.is_empty() || !pointer.starts_with('/') {
        return Some("it must start with `/` (the whole answer is never the token)".to_owned());
    }
    if pointer.len() > 256 {
        return Some("it is longer than 256 characters".to_owned());
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some("`~` must be followed by `0` or `1`".to_owned());
        }
        if c.is_control() {
            return Some("it contains a control character".to_owned());
        }
    }
    None
}

/// Field patterns compile and are anchored, documentation links are web pages, and every
/// field is used by some template.
fn fields(profile: &Profile, out: &mut Vec<Diagnostic>) {
    let mut used = std::collections::BTreeSet::new();
    let mut any = false;
    for (_, kind, source) in crate::templates::templates(profile) {
        if !matches!(kind, crate::templates::TemplateKind::Credential | crate::templates::TemplateKind::Exchange) {
            continue;
        }
        let Ok(names) = analyse(source) else { continue };
        for name in names.iter() {
            match name.strip_prefix("fields.") {
                Some(field) => {
                    used.insert(field.split('.').next().unwrap_or(field).to_owned());
                }
                None if name == "fields" => any = true,
                None => {}
            }
        }
    }
    multiline_in_requests(profile, out);
    for (id, field) in &profile.auth.fields {
        let at = format!("/auth/fields/{}", esc(id));
        if let Some(pattern) = &field.pattern {
            let checked = check_pattern(pattern, field.case_insensitive);
            if let Err(e) = &checked.compiled {
                out.push(
                    Diagnostic::new(Code::InvalidRegex, format!("regular expression does not compile: {e}"))
                        .at_pointer(format!("{at}/pattern"))
                        .with_help("patterns use Rust regex syntax (no look-around, no backreferences)"),
                );
            } else if !(pattern.starts_with('^') && pattern.ends_with('$')) {
                out.push(
                    Diagnostic::new(Code::InvalidRegex, "a field's pattern must be anchored: `^...$`")
                        .at_pointer(format!("{at}/pattern"))
                        .with_help("without anchors the pattern checks only part of the value"),
                );
            }
        }
        for (i, r) in field.reject.iter().enumerate() {
            if let Err(e) = &check_pattern(&r.pattern, false).compiled {
                out.push(
                    Diagnostic::new(Code::InvalidRegex, format!("regular expression does not compile: {e}"))
                        .at_pointer(format!("{at}/reject/{i}/pattern")),
                );
            }
        }
        if let Some(docs) = &field.docs {
            if let Some(problem) = crate::urls::web_url_problem(docs, crate::urls::MAX_REDIRECT_URI_CHARS, true) {
                out.push(
                    Diagnostic::new(Code::UnsafeGuideLink, format!("the documentation link is refused: {problem}"))
                        .at_pointer(format!("{at}/docs"))
                        .with_help("link to an `https://` page"),
                );
            }
        }
        if !any && !used.contains(id) {
            out.push(
                Diagnostic::new(Code::UnusedCredentialField, format!("field `{id}` is asked for but never sent"))
                    .at_pointer(at)
                    .with_help(format!(
                        "use it in `auth.apply` or `auth.exchange` as `{{{{ fields.{id} }}}}`, or remove it"
                    )),
            );
        }
    }
}

/// A multi-line field (a PEM key) cannot go in a header or a query string.
fn multiline_in_requests(profile: &Profile, out: &mut Vec<Diagnostic>) {
    if !profile.auth.fields.values().any(|f| f.multiline) {
        return;
    }
    for (pointer, kind, source) in crate::templates::templates(profile) {
        let in_request = kind == crate::templates::TemplateKind::Credential
            || pointer.starts_with("/auth/exchange/headers/")
            || pointer.starts_with("/auth/jwt/key_id")
            || pointer.starts_with("/auth/jwt/claims/");
        if !in_request {
            continue;
        }
        let Ok(names) = analyse(source) else { continue };
        for name in names.iter() {
            let Some(field) = name.strip_prefix("fields.").and_then(|f| f.split('.').next()) else { continue };
            if profile.auth.fields.get(field).is_some_and(|f| f.multiline) {
                out.push(
                    Diagnostic::new(
                        Code::MultilineFieldInRequest,
                        format!("the multi-line field `{field}` is put where line breaks cannot go"),
                    )
                    .at_pointer(pointer.clone())
                    .with_help("a multi-line field is for a signing key (`auth.jwt.key`) or an exchange's body; give a one-line field here"),
                );
            }
        }
    }
}

/// The end user's entered values checked against the profile's `auth.fields` (`KW0512`):
/// none unknown, every required one there, each bounded, without control characters, matching
/// its pattern and no rejection. Secret values are never quoted.
pub fn check_fields(profile: &Profile, values: &IndexMap<String, String>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, value) in values {
        let pointer = format!("/fields/{}", esc(name));
        let Some(field) = profile.auth.fields.get(name) else {
            let shown: String = name.escape_debug().take(64).collect();
            let mut d =
                Diagnostic::new(Code::InvalidCredentialField, format!("`{shown}` is not a field of `{}`", profile.id))
                    .at_pointer(pointer);
            if let Some(best) = keyway_stdx::closest(name, profile.auth.fields.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{best}`?"));
            }
            out.push(d);
            continue;
        };
        let label = &field.label;
        let shown = if field.secret {
            "the value".to_owned()
        } else {
            format!("`{}`", value.escape_debug().take(64).collect::<String>())
        };
        let most = if field.multiline { MAX_MULTILINE_FIELD_BYTES } else { MAX_FIELD_BYTES };
        let line_break = |c: char| field.multiline && (c == '\n' || c == '\r');
        let problem = if value.is_empty() {
            Some(format!("{label} is empty"))
        } else if value.len() > most {
            Some(format!("{label} is longer than {most} bytes"))
        } else if value.chars().any(|c| c.is_control() && !line_break(c)) {
            Some(if field.multiline {
                format!("{label} contains a control character other than a line break")
            } else {
                format!("{label} contains a control character (a line break, a tab)")
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            out.push(Diagnostic::new(Code::InvalidCredentialField, problem).at_pointer(pointer));
            continue;
        }
        if let Some(rejection) =
            field.reject.iter().find(|r| compile(&r.pattern, false).is_ok_and(|re| re.is_match(value)))
        {
            out.push(
                Diagnostic::new(Code::InvalidCredentialField, format!("{shown} is not accepted for {label}"))
                    .at_pointer(pointer)
                    .with_help(rejection.message.trim()),
            );
            continue;
        }
        if let Some(pattern) = &field.pattern {
            // A pattern that does not compile is reported by validation; refuse the value.
            if !compile(pattern, field.case_insensitive).is_ok_and(|re| re.is_match(value)) {
                let mut d = Diagnostic::new(Code::InvalidCredentialField, format!("{shown} is not a valid {label}"))
                    .at_pointer(pointer);
                d = match &field.example {
                    Some(example) => d.with_help(format!("expected something like `{example}`")),
                    None => d.with_help(format!("it must match `{pattern}`")),
                };
                out.push(d);
            }
        }
    }
    for (name, field) in &profile.auth.fields {
        if field.required && !values.contains_key(name) {
            out.push(
                Diagnostic::new(Code::InvalidCredentialField, format!("{} (`{name}`) is missing", field.label))
                    .at_pointer("/fields"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_tokens() {
        assert!(is_token("X-Api-Key"));
        assert!(is_token("authorization"));
        for bad in ["", "X Key", "X:Key", "Ключ", "a\nb"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn pointers_must_be_rooted_and_escaped() {
        assert_eq!(pointer_problem("/access_token"), None);
        assert_eq!(pointer_problem("/data/0/a~1b"), None);
        assert!(pointer_problem("access_token").is_some());
        assert!(pointer_problem("").is_some());
        assert!(pointer_problem("/a~2").is_some());
        assert!(pointer_problem(&format!("/{}", "a".repeat(300))).is_some());
    }
}
