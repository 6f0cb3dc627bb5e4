//! `keyway import oidc` on discovery documents shaped like real providers' (written here,
//! from the providers' published metadata: members and value shapes as they serve them, with
//! placeholder tenants), each draft validated and snapshotted.

use keyway_import::oidc::{MetadataError, Options, draft};
use serde_json::json;

fn options(source: &str) -> Options {
    Options { source: source.to_owned(), ..Options::default() }
}

/// Drafts, checks the draft has no validation errors, and renders it for a snapshot.
fn drafted(metadata: &serde_json::Value, source: &str) -> String {
    let draft = draft(&metadata.to_string(), &options(source)).expect("drafts");
    let errors: Vec<String> = draft.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
    assert_eq!(errors, Vec::<String>::new(), "{}", draft.yaml);
    let warnings: Vec<String> = draft.diagnostics.iter().map(|d| d.to_string()).collect();
    format!("=== {}.yaml\n{}=== diagnostics\n{}\n", draft.id, draft.yaml, warnings.join("\n"))
}

#[test]
fn salesforce() {
    let metadata = json!({
        "issuer": "https://login.salesforce.com",
        "authorization_endpoint": "https://login.salesforce.com/services/oauth2/authorize",
        "token_endpoint": "https://login.salesforce.com/services/oauth2/token",
        "revocation_endpoint": "https://login.salesforce.com/services/oauth2/revoke",
        "userinfo_endpoint": "https://login.salesforce.com/services/oauth2/userinfo",
        "jwks_uri": "https://login.salesforce.com/id/keys",
        "registration_endpoint": "https://login.salesforce.com/services/oauth2/register",
        "introspection_endpoint": "https://login.salesforce.com/services/oauth2/introspect",
        "scopes_supported": ["id", "api", "web", "full", "chatter_api", "visualforce", "refresh_token", "openid", "profile", "email", "address", "phone", "offline_access", "custom_permissions", "wave_api", "eclair_api"],
        "response_types_supported": ["code", "token", "token id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "display_values_supported": ["page", "popup", "touch"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt"],
        "claims_supported": ["active", "address", "email", "email_verified", "family_name", "given_name", "is_app_installed", "language", "locale", "name", "nickname", "organization_id", "phone_number", "phone_number_verified", "photos", "picture", "preferred_username", "profile", "sub", "updated_at", "urls", "user_id", "user_type", "zoneinfo"]
    });
    insta::assert_snapshot!(drafted(&metadata, "https://login.salesforce.com/.well-known/openid-configuration"));
}

#[test]
fn google() {
    let metadata = json!({
        "issuer": "https://accounts.google.com",
        "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
        "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
        "token_endpoint": "https://oauth2.googleapis.com/token",
        "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
        "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
        "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
    });
    insta::assert_snapshot!(drafted(&metadata, "https://accounts.google.com/.well-known/openid-configuration"));
}

#[test]
fn microsoft_multi_tenant() {
    let metadata = json!({
        "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "device_authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": "https://login.microsoftonline.com/common/kerberos",
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    });
    let text = drafted(&metadata, "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration");
    assert!(text.contains("issuer: https://login.microsoftonline.com/{{ params.tenantid }}/v2.0"), "{text}");
    // Fetched for the multi-tenant `common` issuer, whose document says `{tenantid}`.
    let options = Options {
        expected_issuer: Some("https://login.microsoftonline.com/common/v2.0".to_owned()),
        ..options("https://login.microsoftonline.com/common/v2.0")
    };
    assert!(draft(&metadata.to_string(), &options).is_ok());
    insta::assert_snapshot!(text);
}

#[test]
fn okta() {
    let base = "https://dev-000000.okta.com/oauth2/default";
    let metadata = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/v1/authorize"),
        "token_endpoint": format!("{base}/v1/token"),
        "userinfo_endpoint": format!("{base}/v1/userinfo"),
        "registration_endpoint": "https://dev-000000.okta.com/oauth2/v1/clients",
        "jwks_uri": format!("{base}/v1/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post", "okta_post_message"],
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "password", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "urn:openid:params:grant-type:ciba"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access", "device_sso"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "claims_supported": ["iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp", "nonce", "name", "email"],
        "code_challenge_methods_supported": ["S256"],
        "introspection_endpoint": format!("{base}/v1/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "revocation_endpoint": format!("{base}/v1/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "end_session_endpoint": format!("{base}/v1/logout"),
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"],
        "device_authorization_endpoint": format!("{base}/v1/device/authorize"),
        "dpop_signing_alg_values_supported": ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"],
        "authorization_response_iss_parameter_supported": true
    });
    let text = drafted(&metadata, &format!("{base}/.well-known/openid-configuration"));
    assert!(text.contains("callback_iss_required: true"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn minimal_rfc8414_server() {
    // RFC 8414 section 2: only `issuer`, the endpoints the grants need and
    // `response_types_supported` are required; everything else has a default.
    let metadata = json!({
        "issuer": "https://as.example.com",
        "authorization_endpoint": "https://as.example.com/authorize",
        "token_endpoint": "https://as.example.com/token",
        "response_types_supported": ["code"]
    });
    let text = drafted(&metadata, "https://as.example.com/.well-known/oauth-authorization-server");
    // RFC 8414 defaults: client_secret_basic, the authorization code grant.
    assert!(text.contains("client_auth: client_secret_basic") && text.contains("- authorization_code"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn bad_documents_are_refused_with_the_reason() {
    let refuse = |text: &str, expected: Option<&str>| {
        let options = Options { expected_issuer: expected.map(str::to_owned), ..options("test") };
        draft(text, &options).expect_err("refused")
    };
    assert!(matches!(refuse("<html>", None), MetadataError::NotAnObject(_)));
    assert!(matches!(refuse("[1]", None), MetadataError::NotAnObject(_)));
    assert_eq!(refuse(r#"{"token_endpoint": "https://a.example/t"}"#, None), MetadataError::Missing("issuer"));
    assert_eq!(
        refuse(r#"{"issuer": "https://a.example", "token_endpoint": "http://a.example/t"}"#, None),
        MetadataError::NotHttps("token_endpoint")
    );
    assert_eq!(
        refuse(r#"{"issuer": "https://a.example", "authorization_endpoint": "https://a.example/a"}"#, None),
        MetadataError::Missing("token_endpoint")
    );
    // A document for another issuer than the one asked for is a mix-up waiting to happen.
    assert!(matches!(
        refuse(
            r#"{"issuer": "https://evil.example", "token_endpoint": "https://evil.example/t"}"#,
            Some("https://a.example")
        ),
        MetadataError::IssuerMismatch { .. }
    ));
    assert_eq!(
        refuse(
            r#"{"issuer": "https://a.example", "token_endpoint": "https://a.example/t", "grant_types_supported": ["password"]}"#,
            None
        ),
        MetadataError::NoGrant
    );
}
