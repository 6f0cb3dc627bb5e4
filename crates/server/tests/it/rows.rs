//! A stored row that does not decode is an error naming its table, its row and its column,
//! never a silent default (a corrupt list read as empty, an unknown state as another one).

use crate::support::Harness;
use keyway_server::store::{AuthorizationRecord, StoreError};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Runs one statement on the harness's database, beside the hub.
async fn execute(db: &str, sql: String) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(db).await.expect("database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("statement");
}

fn assert_names(error: StoreError, table: &str, row: &str, column: &str) {
    match error {
        StoreError::Corrupt { table: t, row: r, column: c, why } => {
            assert_eq!((t, r.as_str(), c), (table, row, column), "{why}");
            assert!(!why.contains("not-json") && !why.contains("s3cret"), "the value is not quoted: {why}");
        }
        other => panic!("{table}.{column}: expected a corrupt row, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_with_corrupt_json_in_any_column_is_an_error_naming_table_row_and_column() {
    let hub = Harness::start().await;
    let integration = hub.create_integration(json!({})).await;
    let connection = hub.link(&integration).await;
    let session = hub.create_session(json!({})).await["id"].as_str().expect("id").to_owned();
    let store = hub.hub.store();
    store
        .insert_authorization(&AuthorizationRecord {
            state_hash: "ab".repeat(32),
            session_id: session.clone(),
            integration_id: integration.clone(),
            parameters: Default::default(),
            code_verifier_blob: None,
            nonce: None,
            expires_at: i64::MAX,
        })
        .await
        .expect("authorization");
    let state_hash = "ab".repeat(32);
    // (table, key column, id, column, the corruption)
    let cases = [
        ("integrations", "id", integration.as_str(), "settings", "'not-json {'"),
        ("integrations", "id", integration.as_str(), "settings", "'{\"actions\": \"s3cret\"}'"),
        ("connect_sessions", "id", session.as_str(), "end_user", "'not-json'"),
        ("connect_sessions", "id", session.as_str(), "integrations", "'{\"a\": 1}'"),
        ("connect_sessions", "id", session.as_str(), "allowed_origins", "'[1, 2]'"),
        ("authorizations", "state_hash", state_hash.as_str(), "parameters", "'[\"s3cret\"]'"),
        ("connections", "id", connection.as_str(), "end_user", "'{}'"),
        ("connections", "id", connection.as_str(), "parameters", "'not-json'"),
        ("connections", "id", connection.as_str(), "scopes", "'\"api\"'"),
        ("connections", "id", connection.as_str(), "diagnosis", "'{\"kind\": \"s3cret\", \"at\": 1}'"),
        ("connections", "id", connection.as_str(), "state", "'enabled'"),
    ];
    for (table, key, id, column, corruption) in cases {
        let original = format!("(SELECT {column} FROM {table} WHERE {key} = '{id}')");
        execute(&hub.db, "CREATE TABLE IF NOT EXISTS saved (v TEXT)".to_owned()).await;
        execute(&hub.db, "DELETE FROM saved".to_owned()).await;
        execute(&hub.db, format!("INSERT INTO saved (v) VALUES ({original})")).await;
        execute(&hub.db, format!("UPDATE {table} SET {column} = {corruption} WHERE {key} = '{id}'")).await;
        let error = match table {
            "integrations" => store.integration(id).await.map(drop),
            "connect_sessions" => store.session(id).await.map(drop),
            "authorizations" => store.authorization(id).await.map(drop),
            _ => store.connection(id).await.map(drop),
        }
        .expect_err("a corrupt row is an error");
        assert_names(error, table, id, column);
        if table == "connections" {
            // Through the API too: a 500 naming the row, never a connection with defaults.
            let (status, problem) = hub.call(Method::GET, &format!("/v1/connections/{connection}"), None).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{problem}");
            assert_eq!(problem["code"], "row_unreadable");
            let detail = problem["detail"].as_str().expect("detail");
            assert!(detail.contains(&connection) && detail.contains(column), "{detail}");
            assert!(!detail.contains("s3cret") && !detail.contains("not-json"), "{detail}");
            let (status, _) = hub.call(Method::GET, "/v1/connections", None).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "a list with a corrupt row fails too");
        }
        execute(&hub.db, format!("UPDATE {table} SET {column} = (SELECT v FROM saved) WHERE {key} = '{id}'")).await;
    }
    // Restored, everything reads again.
    let (status, _) = hub.call(Method::GET, &format!("/v1/connections/{connection}"), None).await;
    assert_eq!(status, StatusCode::OK);
}
