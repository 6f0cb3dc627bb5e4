//! The OpenAPI 3.1 document of the HTTP API (utoipa), as committed in `schemas/openapi.json`
//! and served at `/openapi.json`. Handlers' annotations give the success answers; the
//! problem answers are one shared response (`#/components/responses/Problem`), attached to
//! each operation for the statuses [`PROBLEMS`] lists.

use super::api::*;
use super::problem::Problem;
use utoipa::OpenApi;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// A caller with an API key: the key is checked against the database, then its scopes.
const KEYED: &[u16] = &[401, 403, 500, 503];
/// A JSON body: malformed, cut short, too large, not JSON, or not the resource.
const BODY: &[u16] = &[400, 413, 415, 422];
/// A path naming a resource, and the resource's row read.
const BY_ID: &[u16] = &[404];
/// A connection's credential: not usable in its state, a configuration refused, the
/// provider unavailable.
const CREDENTIAL: &[u16] = &[409, 422];

/// The problem statuses each operation answers, by operation id (the handler's name).
const PROBLEMS: &[(&str, &[&[u16]])] = &[
    ("healthz", &[]),
    ("readyz", &[&[503]]),
    ("metrics", &[]),
    ("openapi_json", &[]),
    ("reload", &[KEYED, &[422]]),
    ("create_integration", &[KEYED, BODY]),
    ("list_integrations", &[KEYED]),
    ("get_integration", &[KEYED, BY_ID]),
    ("patch_integration", &[KEYED, BY_ID, BODY, &[409]]),
    ("delete_integration", &[KEYED, BY_ID, &[409]]),
    ("create_session", &[KEYED, BODY, &[409]]),
    ("list_connections", &[KEYED, &[400, 422]]),
    ("import_connection", &[KEYED, BODY]),
    ("get_connection", &[KEYED, BY_ID]),
    ("connection_token", &[KEYED, BY_ID, CREDENTIAL]),
    ("connection_credentials", &[KEYED, BY_ID, CREDENTIAL]),
    ("refresh_connection", &[KEYED, BY_ID, CREDENTIAL]),
    ("test_connection", &[KEYED, BY_ID, CREDENTIAL]),
    ("revoke_connection", &[KEYED, BY_ID, CREDENTIAL]),
    ("delete_connection", &[KEYED, BY_ID, CREDENTIAL]),
    ("create_api_key", &[KEYED, BODY]),
    ("list_api_keys", &[KEYED]),
    ("revoke_api_key", &[KEYED, BY_ID]),
    ("list_audit", &[KEYED, &[400, 422]]),
];

/// The problem statuses an operation answers, sorted; `None` for an operation the table
/// does not list.
pub fn problem_statuses(operation_id: &str) -> Option<Vec<u16>> {
    let (_, groups) = PROBLEMS.iter().find(|(id, _)| *id == operation_id)?;
    let mut statuses: Vec<u16> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    Some(statuses)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyway serve",
        description = "A self-hosted connect hub: integrations (a tenant's app per provider profile), connect sessions and the hosted connect page, connections and their access tokens. Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        healthz, readyz, metrics, openapi_json, reload,
        create_integration, list_integrations, get_integration, patch_integration, delete_integration,
        create_session,
        list_connections, import_connection, get_connection, connection_token, connection_credentials, refresh_connection,
        test_connection, revoke_connection, delete_connection,
        create_api_key, list_api_keys, revoke_api_key, list_audit,
    ),
    components(schemas(Problem)),
    modifiers(&SecurityAddon, &ProblemResponses),
    tags(
        (name = "integrations", description = "A tenant's app registered with a provider, checked against its profile."),
        (name = "connect", description = "Sessions that let an end user link an account on the hosted connect page."),
        (name = "connections", description = "Linked accounts and their tokens."),
        (name = "operations", description = "Health, readiness, metrics, reload, API keys, the audit trail."),
    ),
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `keyway keys api create` or `POST /v1/api-keys` (`kwk_...`). Each operation names the one scope it needs in its security requirement; a key without it is refused with 403 `insufficient_scope`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The shared problem response, and a reference to it for each status [`PROBLEMS`] lists.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = ResponseBuilder::new()
            .description("A problem document (RFC 9457) with a stable `code` (docs/server.md lists them).")
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build();
        openapi.components.get_or_insert_with(Default::default).responses.insert("Problem".to_owned(), problem.into());
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let statuses = operation.operation_id.as_deref().and_then(problem_statuses).unwrap_or_default();
                for status in statuses {
                    operation
                        .responses
                        .responses
                        .insert(status.to_string(), RefOr::Ref(Ref::from_response_name("Problem")));
                }
            }
        }
    }
}

/// The OpenAPI 3.1 document of the HTTP API, pretty-printed (as committed in
/// `schemas/openapi.json`).
pub fn openapi() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// Every operation id of the document.
#[cfg(test)]
fn operation_ids() -> Vec<String> {
    let doc = ApiDoc::openapi();
    let mut ids = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten() {
            ids.extend(op.operation_id.clone());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_lists_its_problems_and_the_table_lists_only_operations() {
        let ids = operation_ids();
        assert_eq!(ids.len(), PROBLEMS.len(), "{ids:?}");
        for id in &ids {
            assert!(problem_statuses(id).is_some(), "`{id}` is not in PROBLEMS");
        }
        for (id, _) in PROBLEMS {
            assert!(ids.iter().any(|i| i == id), "PROBLEMS lists `{id}`, which is no operation");
        }
    }
}
