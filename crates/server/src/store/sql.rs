//! The SQL store (sqlx's `Any` driver): one set of statements for SQLite and PostgreSQL.
//! Placeholders are `$1`, `$2`, ... numbered in the order they first appear (SQLite binds
//! `$NNN` by first appearance, PostgreSQL by number; written this way, both agree), and
//! anything dialect-specific is cast (`CAST($1 AS TEXT)`) rather than forked.
//!
//! SQLite (embedded, the default): WAL, a busy timeout, `synchronous=FULL` (a commit that
//! returned survives a crash: rotated refresh tokens must), foreign keys on. PostgreSQL: for
//! several instances on one database. Migrations run at open, under the same text (`BLOB`
//! becomes `BYTEA` on PostgreSQL).

use super::{
    ApiKeyRecord, AuditFilter, AuditRecord, AuthorizationRecord, Change, ChangeFeed, ChangeKind, ConnectionFilter,
    ConnectionRecord, ConnectionStamp, EventRecord, IntegrationRecord, SecretCell, SessionRecord, Store, StoreError,
    TokensUpdate,
};
use crate::domain::{Actor, AuditAction, ConnectionDiagnosis, ConnectionState, EventKind, KeyScopes, Outcome, Scope};
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row};
use std::time::Duration;

/// The migrations, in order. Their text is portable SQL (see the file's header).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_drop_authorize_origin.sql")),
    (3, include_str!("../../migrations/0003_authorization_nonce.sql")),
    (5, include_str!("../../migrations/0005_change_log.sql")),
    (6, include_str!("../../migrations/0006_refresher_indexes.sql")),
    (7, include_str!("../../migrations/0007_access.sql")),
    (8, include_str!("../../migrations/0008_credential_fields.sql")),
];

/// A value bound to a statement.
#[derive(Debug, Clone)]
enum SqlValue {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Blob(Option<Vec<u8>>),
}

/// A row as its columns: each name beside its value, so a statement built from it cannot
/// bind a value to the wrong column.
type Columns = Vec<(&'static str, SqlValue)>;

type Query = sqlx::query::Query<'static, Any, AnyArguments>;

fn bind_all(mut query: Query, values: impl IntoIterator<Item = SqlValue>) -> Query {
    for value in values {
        query = match value {
            SqlValue::Text(v) => query.bind(v),
            SqlValue::OptText(v) => query.bind(v),
            SqlValue::Int(v) => query.bind(v),
            SqlValue::OptInt(v) => query.bind(v),
            SqlValue::Blob(v) => query.bind(v),
        };
    }
    query
}

/// `INSERT INTO table (a, b) VALUES ($1, $2)` from a row's columns.
fn insert_into(table: &'static str, columns: Columns) -> Query {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let sql = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), marks.join(", "));
    // Table and column names are constants of this module, never input.
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), columns.into_iter().map(|(_, v)| v))
}

/// Rows per multi-row `INSERT`. SQLite finds each `$N` by a walk of the statement's
/// parameters (`sqlite3_bind_parameter_name`), so binding costs the square of a statement's
/// parameters: 32 rows of 15 columns cost little; 500 cost ten times the insert itself.
const ROWS_PER_INSERT: usize = 32;

/// Multi-row `INSERT`s of `rows` into `table`, [`ROWS_PER_INSERT`] a statement; every row
/// has the same columns.
fn insert_many(table: &'static str, rows: Vec<Columns>) -> Vec<Query> {
    let mut queries = Vec::with_capacity(rows.len().div_ceil(ROWS_PER_INSERT));
    let mut rows = rows.into_iter().peekable();
    while let Some(first) = rows.peek() {
        let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
        let width = names.len();
        let chunk: Vec<Columns> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        let tuples: Vec<String> = (0..chunk.len())
            .map(|row| {
                let marks: Vec<String> = (1..=width).map(|i| format!("${}", row * width + i)).collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO {table} ({}) VALUES {}", names.join(", "), tuples.join(", "));
        // Table and column names are constants of this module, never input.
        queries.push(bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk.into_iter().flatten().map(|(_, v)| v)));
    }
    queries
}

/// `UPDATE table SET a = $1, b = $2 WHERE k = $3 AND v = $4`.
fn update_where(table: &'static str, set: Columns, filter: Columns) -> Query {
    let assign: Vec<String> = set.iter().enumerate().map(|(i, (name, _))| format!("{name} = ${}", i + 1)).collect();
    let conditions: Vec<String> =
        filter.iter().enumerate().map(|(i, (name, _))| format!("{name} = ${}", set.len() + i + 1)).collect();
    let sql = format!("UPDATE {table} SET {} WHERE {}", assign.join(", "), conditions.join(" AND "));
    // Table and column names are constants of this module, never input.
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), set.into_iter().chain(filter).map(|(_, v)| v))
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

fn opt_text(v: &Option<String>) -> SqlValue {
    SqlValue::OptText(v.clone())
}

/// `$1, $2, ... $n`: the placeholders of an `IN` list.
fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A value stored as JSON text.
fn json<T: Serialize>(table: &str, column: &str, value: &T) -> Result<SqlValue, StoreError> {
    serde_json::to_string(value)
        .map(SqlValue::Text)
        .map_err(|e| StoreError::Database(format!("encode {table}.{column}: {e}")))
}

/// Reads one row of a table into typed values; a column that does not decode is an error
/// naming the table, the row and the column, never a default.
struct RowReader<'r> {
    row: &'r AnyRow,
    table: &'static str,
    id: String,
}

impl<'r> RowReader<'r> {
    fn new(row: &'r AnyRow, table: &'static str, key: &'static str) -> RowReader<'r> {
        let id = row.try_get::<String, _>(key).unwrap_or_else(|_| "?".to_owned());
        RowReader { row, table, id }
    }

    fn corrupt(&self, column: &'static str, why: String) -> StoreError {
        StoreError::Corrupt { table: self.table, row: self.id.clone(), column, why }
    }

    fn get<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
    {
        // sqlx names the types that do not match, never the value.
        self.row.try_get(column).map_err(|e| self.corrupt(column, e.to_string()))
    }

    fn json<T: DeserializeOwned>(&self, column: &'static str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        self.parse(column, &text)
    }

    fn json_opt<T: DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self.get(column)?;
        text.map(|t| self.parse(column, &t)).transpose()
    }

    fn parse<T: DeserializeOwned>(&self, column: &'static str, text: &str) -> Result<T, StoreError> {
        // serde's message could quote the value: say only what broke where.
        serde_json::from_str(text).map_err(|e| {
            self.corrupt(
                column,
                format!("{:?} error in its JSON at line {} column {}", e.classify(), e.line(), e.column()),
            )
        })
    }

    fn state(&self, column: &'static str) -> Result<ConnectionState, StoreError> {
        let text: String = self.get(column)?;
        ConnectionState::parse(&text).ok_or_else(|| self.corrupt(column, "not a connection state".to_owned()))
    }

    fn state_opt(&self, column: &'static str) -> Result<Option<ConnectionState>, StoreError> {
        let text: Option<String> = self.get(column)?;
        text.map(|t| {
            ConnectionState::parse(&t).ok_or_else(|| self.corrupt(column, "not a connection state".to_owned()))
        })
        .transpose()
    }
}

/// The columns holding ciphertext, for key rotation: (table, primary key, column).
const SECRET_COLUMNS: &[(&str, &str, &str)] = &[
    ("integrations", "id", "client_secret_blob"),
    ("integrations", "id", "staged_client_secret_blob"),
    ("connections", "id", "tokens_blob"),
    ("connections", "id", "fields_blob"),
    ("authorizations", "state_hash", "code_verifier_blob"),
];

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An embedded SQLite file: one instance.
    Sqlite,
    /// A PostgreSQL server: one or several instances.
    Postgres,
}

/// SQLite or PostgreSQL behind a connection pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// Whether state changes write webhook events.
    events: bool,
}

fn db(context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Database(format!("{context}: {e}"))
}

/// A pool on `url`: SQLite connections set up for the store (WAL, `synchronous=FULL`, a busy
/// timeout, foreign keys).
async fn connect(url: &str, dialect: Dialect, max: u32) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(max)
        // Long enough for a burst, short enough that a database that is down answers 503 soon.
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if dialect == Dialect::Sqlite {
                    sqlx::raw_sql(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; \
                         PRAGMA foreign_keys = ON;",
                    )
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        // The URL may hold a password: name the kind of failure, not the URL.
        .map_err(db("open"))
}

impl SqlStore {
    /// Opens the database at `url` and runs the migrations: `sqlite://PATH` (created if
    /// missing), `sqlite::memory:`, or `postgres://USER@HOST:PORT/DB`.
    pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("sqlite:") {
            // Created if missing, unless the URL says otherwise.
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_owned())
        } else {
            let scheme = url.split("://").next().unwrap_or(url);
            return Err(StoreError::Database(format!(
                "unsupported database URL scheme `{scheme}`: use sqlite://PATH or postgres://..."
            )));
        };
        // An in-memory SQLite database exists per connection: keep it to one.
        let max = match dialect {
            Dialect::Sqlite if url.contains(":memory:") => 1,
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let pool = connect(&url, dialect, max).await?;
        let mut store = SqlStore { pool, dialect, events: false };
        if store.migrate().await? > 0 && dialect == Dialect::Sqlite && !url.contains(":memory:") {
            // A SQLite connection that last read the schema before a migration prepares its next
            // statements against the old schema and re-prepares them when they run, so a
            // `SELECT *` answers more columns than sqlx described: go on with fresh connections.
            // (An in-memory database has one connection, which ran the migrations itself.)
            store.pool.close().await;
            store.pool = connect(&url, dialect, max).await?;
        }
        Ok(store)
    }

    /// The database behind the store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Records webhook events in the outbox from now on (`keyway serve` with a webhook URL).
    pub fn with_events(mut self, events: bool) -> SqlStore {
        self.events = events;
        self
    }

    /// Inserts connections as they are given (tokens already encrypted, any state), in one
    /// transaction of multi-row `INSERT`s: a bulk path for seeding many rows (the serve
    /// benchmark's million), where a commit per row would cost a disk flush each. No webhook
    /// event is written: nothing changed state.
    pub async fn insert_connections(&self, records: &[ConnectionRecord]) -> Result<(), StoreError> {
        let rows = records.iter().map(connection_columns).collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.pool.begin().await.map_err(db("insert connections"))?;
        for query in insert_many("connections", rows) {
            query.execute(&mut *tx).await.map_err(db("insert connections"))?;
        }
        tx.commit().await.map_err(db("insert connections"))
    }

    /// Ends a connection's transition: its webhook event, and (for a change that retires what
    /// other instances may hold, `logged`) its change-log row, then the commit.
    async fn finish_transition(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        row: Option<AnyRow>,
        logged: bool,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let Some(row) = row else { return Ok(false) };
        let record = connection(&row)?;
        insert_audit_of(&mut tx, audit, &record).await?;
        if self.events {
            let previous = RowReader::new(&row, "connections", "id").state_opt("prev_state")?;
            if let Some(kind) = EventKind::of_transition(previous, record.state) {
                insert_event(&mut tx, &record, kind, previous, now, audit.request_id.as_deref()).await?;
            }
        }
        if logged {
            log_change(&mut tx, ChangeKind::Connection, &record.id, now).await?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(true)
    }

    /// Runs the migrations not yet applied; how many ran.
    async fn migrate(&self) -> Result<usize, StoreError> {
        let mut applied = 0;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS keyway_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(db("migrations"))?;
        for &(version, script) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(db("migrations"))?;
            let done: Option<i64> = sqlx::query_scalar("SELECT version FROM keyway_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("migrations"))?;
            if done.is_some() {
                continue;
            }
            let script = match self.dialect {
                Dialect::Sqlite => script.to_owned(),
                Dialect::Postgres => script.replace(" BLOB", " BYTEA"),
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut *tx).await.map_err(db("migration"))?;
            sqlx::query("INSERT INTO keyway_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::unix_now())
                .execute(&mut *tx)
                .await
                .map_err(db("migrations"))?;
            tx.commit().await.map_err(db("migrations"))?;
            tracing::info!(version, "database migrated");
            applied += 1;
        }
        Ok(applied)
    }

    /// One of the refresher's claims: up to `limit` rows due by `due`, most urgent first,
    /// leased to `owner` until `until` (rows another instance holds a lease on are skipped).
    async fn claim_ordered(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        due: DueBy,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // The one dialect fork: SQLite has one writer at a time and no row locks to skip.
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let (DueBy::Expiry(before) | DueBy::Update(before)) = due;
        let sql = format!(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 WHERE id IN ({}{skip_locked}) RETURNING id",
            due_rows(due, self.dialect)
        );
        // The statement's only variable parts are the constants above.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(until)
            .bind(before)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("claim due connections"))?;
        rows.iter().map(|row| RowReader::new(row, "connections", "id").get("id")).collect()
    }
}

/// The rows the refresher may claim, word for word the predicate of migration 6's partial
/// indexes (an engine uses a partial index only when it can see the query implies it).
const DUE_PREDICATE: &str = "state IN ('active', 'degraded') AND tokens_blob IS NOT NULL";

/// The rows due by `due`'s column (before `$3`) and not leased at `$4`, most urgent first, at
/// most `$5`. SQLite is told the index (without statistics its planner prefers the state
/// index and sorts every active row); PostgreSQL's planner picks it from its statistics.
fn due_rows(due: DueBy, dialect: Dialect) -> String {
    let (column, index) = match due {
        DueBy::Expiry(_) => ("expires_at", "connections_due_by_expiry"),
        DueBy::Update(_) => ("updated_at", "connections_due_by_update"),
    };
    let indexed_by = match dialect {
        Dialect::Sqlite => format!(" INDEXED BY {index}"),
        Dialect::Postgres => String::new(),
    };
    format!(
        "SELECT id FROM connections{indexed_by} WHERE {DUE_PREDICATE} AND {column} < $3 \
         AND (lease_until IS NULL OR lease_until < $4) ORDER BY {column} LIMIT $5"
    )
}

/// What makes a row due for the refresher: its token expiring before, or its last write
/// before, the instant given.
#[derive(Clone, Copy)]
enum DueBy {
    Expiry(i64),
    Update(i64),
}

/// Writes one webhook event for a connection into the outbox. Its payload names the
/// connection, its integration, states and diagnosis: never a credential.
async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    record: &ConnectionRecord,
    kind: EventKind,
    previous: Option<ConnectionState>,
    now: i64,
    request_id: Option<&str>,
) -> Result<(), StoreError> {
    let id = crate::ids::new_id(crate::ids::EVENT);
    let payload = serde_json::json!({
        "id": id,
        "type": kind.as_str(),
        "created_at": now,
        "request_id": request_id,
        "data": {
            "connection_id": record.id,
            "integration_id": record.integration_id,
            "state": if kind == EventKind::Deleted { "deleted" } else { record.state.as_str() },
            "previous_state": previous.map_or("", ConnectionState::as_str),
            "diagnosis": record.diagnosis,
        },
    });
    let columns = vec![
        ("id", text(&id)),
        ("seq", SqlValue::Int(super::next_event_seq())),
        ("connection_id", text(&record.id)),
        ("type", text(kind.as_str())),
        ("payload", SqlValue::Text(payload.to_string())),
        ("created_at", SqlValue::Int(now)),
        ("attempts", SqlValue::Int(0)),
        ("next_attempt_at", SqlValue::Int(now)),
    ];
    insert_into("webhook_events", columns).execute(&mut **tx).await.map_err(db("outbox")).map(drop)
}

/// How many change-log rows are kept behind the head; an instance further behind than this
/// forgets everything it holds (see migration 5).
const CHANGES_KEPT: i64 = 10_000;

/// Appends a change to the log, in the writer's transaction. The head's row is updated last,
/// just before the commit, so writers wait on its lock for as short a time as possible; that
/// lock orders them, so the committed changes are always a prefix of the sequence.
async fn log_change(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    kind: ChangeKind,
    target: &str,
    now: i64,
) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query_scalar("UPDATE change_log_head SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .fetch_one(&mut **tx)
        .await
        .map_err(db("change log"))?;
    let columns = vec![
        ("seq", SqlValue::Int(seq)),
        ("kind", text(kind.as_str())),
        ("target", text(target)),
        ("created_at", SqlValue::Int(now)),
    ];
    insert_into("change_log", columns).execute(&mut **tx).await.map_err(db("change log"))?;
    // Pruned in bounded steps, by whichever writer crosses a thousand.
    if seq % 1000 == 0 && seq > CHANGES_KEPT {
        let through = seq - CHANGES_KEPT;
        sqlx::query("DELETE FROM change_log WHERE seq <= $1")
            .bind(through)
            .execute(&mut **tx)
            .await
            .map_err(db("change log"))?;
        sqlx::query("UPDATE change_log_head SET pruned_through = $1 WHERE id = 1")
            .bind(through)
            .execute(&mut **tx)
            .await
            .map_err(db("change log"))?;
    }
    Ok(())
}

/// The columns of an audit record.
fn audit_columns(r: &AuditRecord) -> Columns {
    vec![
        ("id", text(&r.id)),
        ("seq", SqlValue::Int(r.seq)),
        ("at", SqlValue::Int(r.at)),
        ("actor_kind", text(r.actor.kind())),
        ("actor_id", SqlValue::OptText(r.actor.id().map(str::to_owned))),
        ("actor_name", SqlValue::OptText(r.actor.name().map(str::to_owned))),
        ("instance", opt_text(&r.instance)),
        ("action", text(r.action.as_str())),
        ("connection_id", opt_text(&r.connection_id)),
        ("integration_id", opt_text(&r.integration_id)),
        ("target_id", opt_text(&r.target_id)),
        ("outcome", text(r.outcome.as_str())),
        ("problem_code", opt_text(&r.problem_code)),
        ("request_id", opt_text(&r.request_id)),
        ("detail", opt_text(&r.detail)),
    ]
}

/// Writes an audit record in a change's transaction.
async fn insert_audit_row(tx: &mut sqlx::Transaction<'static, sqlx::Any>, r: &AuditRecord) -> Result<(), StoreError> {
    insert_into("audit_log", audit_columns(r)).execute(&mut **tx).await.map_err(db("audit")).map(drop)
}

/// Writes the audit record of a change to a connection, naming the connection and its
/// integration as the changed row does.
async fn insert_audit_of(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    audit: &AuditRecord,
    row: &ConnectionRecord,
) -> Result<(), StoreError> {
    let mut audit = audit.clone();
    audit.connection_id = Some(row.id.clone());
    audit.integration_id = Some(row.integration_id.clone());
    insert_audit_row(tx, &audit).await
}

fn audit_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let r = RowReader::new(row, "audit_log", "id");
    let kind: String = r.get("actor_kind")?;
    let actor = Actor::from_parts(&kind, r.get("actor_id")?, r.get("actor_name")?)
        .ok_or_else(|| r.corrupt("actor_kind", "not an actor with these id and name columns".to_owned()))?;
    let action: String = r.get("action")?;
    let outcome: String = r.get("outcome")?;
    Ok(AuditRecord {
        id: r.get("id")?,
        seq: r.get("seq")?,
        at: r.get("at")?,
        actor,
        instance: r.get("instance")?,
        action: AuditAction::parse(&action).ok_or_else(|| r.corrupt("action", "not an audit action".to_owned()))?,
        connection_id: r.get("connection_id")?,
        integration_id: r.get("integration_id")?,
        target_id: r.get("target_id")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| r.corrupt("outcome", "not an outcome".to_owned()))?,
        problem_code: r.get("problem_code")?,
        request_id: r.get("request_id")?,
        detail: r.get("detail")?,
    })
}

fn integration(row: &AnyRow) -> Result<IntegrationRecord, StoreError> {
    let r = RowReader::new(row, "integrations", "id");
    Ok(IntegrationRecord {
        id: r.get("id")?,
        profile: r.get("profile")?,
        name: r.get("name")?,
        client_id: r.get("client_id")?,
        client_secret_blob: r.get("client_secret_blob")?,
        staged_client_secret_blob: r.get("staged_client_secret_blob")?,
        settings: r.json("settings")?,
        version: r.get("version")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// The columns an integration's insert and update write (`id` and `profile` never change).
fn integration_columns(r: &IntegrationRecord) -> Result<Columns, StoreError> {
    Ok(vec![
        ("name", opt_text(&r.name)),
        ("client_id", text(&r.client_id)),
        ("client_secret_blob", SqlValue::Blob(r.client_secret_blob.clone())),
        ("staged_client_secret_blob", SqlValue::Blob(r.staged_client_secret_blob.clone())),
        ("settings", json("integrations", "settings", &r.settings)?),
        ("version", SqlValue::Int(r.version)),
        ("updated_at", SqlValue::Int(r.updated_at)),
    ])
}

fn session(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let r = RowReader::new(row, "connect_sessions", "id");
    Ok(SessionRecord {
        id: r.get("id")?,
        token_hash: r.get("token_hash")?,
        end_user: r.json("end_user")?,
        integrations: r.json("integrations")?,
        return_url: r.get("return_url")?,
        allowed_origins: r.json("allowed_origins")?,
        connection_id: r.get("connection_id")?,
        expires_at: r.get("expires_at")?,
        opened_at: r.get("opened_at")?,
        created_at: r.get("created_at")?,
    })
}

fn authorization(row: &AnyRow) -> Result<AuthorizationRecord, StoreError> {
    let r = RowReader::new(row, "authorizations", "state_hash");
    Ok(AuthorizationRecord {
        state_hash: r.get("state_hash")?,
        session_id: r.get("session_id")?,
        integration_id: r.get("integration_id")?,
        parameters: r.json("parameters")?,
        code_verifier_blob: r.get("code_verifier_blob")?,
        nonce: r.get("nonce")?,
        expires_at: r.get("expires_at")?,
    })
}

fn connection(row: &AnyRow) -> Result<ConnectionRecord, StoreError> {
    let r = RowReader::new(row, "connections", "id");
    Ok(ConnectionRecord {
        id: r.get("id")?,
        integration_id: r.get("integration_id")?,
        end_user: r.json("end_user")?,
        parameters: r.json("parameters")?,
        state: r.state("state")?,
        tokens_blob: r.get("tokens_blob")?,
        fields_blob: r.get("fields_blob")?,
        scopes: r.json("scopes")?,
        expires_at: r.get("expires_at")?,
        diagnosis: r.json_opt("diagnosis")?,
        verified_at: r.get("verified_at")?,
        failing_since: r.get("failing_since")?,
        version: r.get("version")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn api_key(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    let r = RowReader::new(row, "api_keys", "id");
    let scopes = match r.json_opt::<Vec<String>>("scopes")? {
        None => KeyScopes::Every,
        Some(names) => KeyScopes::only(
            names
                .iter()
                .map(|n| Scope::parse(n).ok_or_else(|| r.corrupt("scopes", "holds a name that is no scope".to_owned())))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(ApiKeyRecord {
        id: r.get("id")?,
        name: r.get("name")?,
        secret_hash: r.get("secret_hash")?,
        scopes,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        revoked_at: r.get("revoked_at")?,
        last_used_at: r.get("last_used_at")?,
    })
}

fn event(row: &AnyRow) -> Result<EventRecord, StoreError> {
    let r = RowReader::new(row, "webhook_events", "id");
    Ok(EventRecord {
        id: r.get("id")?,
        seq: r.get("seq")?,
        connection_id: r.get("connection_id")?,
        kind: r.get("type")?,
        payload: r.get("payload")?,
        attempts: r.get("attempts")?,
    })
}

/// The columns a connection's insert writes.
fn connection_columns(r: &ConnectionRecord) -> Result<Columns, StoreError> {
    let table = "connections";
    Ok(vec![
        ("id", text(&r.id)),
        ("integration_id", text(&r.integration_id)),
        ("end_user", json(table, "end_user", &r.end_user)?),
        ("parameters", json(table, "parameters", &r.parameters)?),
        ("state", text(r.state.as_str())),
        ("tokens_blob", SqlValue::Blob(r.tokens_blob.clone())),
        ("fields_blob", SqlValue::Blob(r.fields_blob.clone())),
        ("scopes", json(table, "scopes", &r.scopes)?),
        ("expires_at", SqlValue::OptInt(r.expires_at)),
        ("diagnosis", r.diagnosis.as_ref().map_or(Ok(SqlValue::OptText(None)), |d| json(table, "diagnosis", d))?),
        ("verified_at", SqlValue::OptInt(r.verified_at)),
        ("version", SqlValue::Int(r.version)),
        ("created_at", SqlValue::Int(r.created_at)),
        ("updated_at", SqlValue::Int(r.updated_at)),
    ])
}

/// The columns a token save writes: the set, what is shown of it, and state `active`.
fn tokens_columns(t: &TokensUpdate, now: i64) -> Result<Columns, StoreError> {
    Ok(vec![
        ("tokens_blob", SqlValue::Blob(Some(t.tokens_blob.clone()))),
        ("scopes", json("connections", "scopes", &t.scopes)?),
        ("expires_at", SqlValue::OptInt(t.expires_at)),
        ("state", text(ConnectionState::Active.as_str())),
        ("diagnosis", SqlValue::OptText(None)),
        ("failing_since", SqlValue::OptInt(None)),
        ("updated_at", SqlValue::Int(now)),
    ])
}

/// `UPDATE connections SET prev_state = state, version = version + 1, <set> WHERE <filter>
/// RETURNING *`: every state-changing statement records the previous state and bumps the
/// version, so the transition and its event follow from the returned row.
fn change_connection(set: Columns, filter: Columns) -> Query {
    let assign: Vec<String> = set.iter().enumerate().map(|(i, (name, _))| format!("{name} = ${}", i + 1)).collect();
    let conditions: Vec<String> =
        filter.iter().enumerate().map(|(i, (name, _))| format!("{name} = ${}", set.len() + i + 1)).collect();
    let sql = format!(
        "UPDATE connections SET prev_state = state, version = version + 1, {} WHERE {} RETURNING *",
        assign.join(", "),
        conditions.join(" AND ")
    );
    // Column names are constants of this module, never input.
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), set.into_iter().chain(filter).map(|(_, v)| v))
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db("ping")).map(drop)
    }

    async fn insert_integration(&self, r: &IntegrationRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut columns =
            vec![("id", text(&r.id)), ("profile", text(&r.profile)), ("created_at", SqlValue::Int(r.created_at))];
        columns.extend(integration_columns(r)?);
        let mut tx = self.pool.begin().await.map_err(db("insert integration"))?;
        insert_into("integrations", columns).execute(&mut *tx).await.map_err(db("insert integration"))?;
        insert_audit_row(&mut tx, audit).await?;
        tx.commit().await.map_err(db("insert integration"))
    }

    async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM integrations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read integration"))?;
        row.as_ref().map(integration).transpose()
    }

    async fn integrations(&self) -> Result<Vec<IntegrationRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM integrations ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list integrations"))?;
        rows.iter().map(integration).collect()
    }

    async fn update_integration(
        &self,
        r: &IntegrationRecord,
        expected_version: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let filter = vec![("id", text(&r.id)), ("version", SqlValue::Int(expected_version))];
        let mut tx = self.pool.begin().await.map_err(db("update integration"))?;
        let done = update_where("integrations", integration_columns(r)?, filter)
            .execute(&mut *tx)
            .await
            .map_err(db("update integration"))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        log_change(&mut tx, ChangeKind::Integration, &r.id, crate::unix_now()).await?;
        insert_audit_row(&mut tx, audit).await?;
        tx.commit().await.map_err(db("update integration"))?;
        Ok(true)
    }

    async fn delete_integration(&self, id: &str, audit: &AuditRecord) -> Result<Option<bool>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("delete integration"))?;
        let done = sqlx::query(
            "DELETE FROM integrations WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM connections WHERE integration_id = $2)",
        )
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db("delete integration"))?;
        if done.rows_affected() == 1 {
            log_change(&mut tx, ChangeKind::Integration, id, crate::unix_now()).await?;
            insert_audit_row(&mut tx, audit).await?;
            tx.commit().await.map_err(db("delete integration"))?;
            return Ok(Some(true));
        }
        drop(tx);
        Ok(self.integration(id).await?.map(|_| false))
    }

    async fn insert_session(&self, r: &SessionRecord) -> Result<(), StoreError> {
        let table = "connect_sessions";
        let columns = vec![
            ("id", text(&r.id)),
            ("token_hash", text(&r.token_hash)),
            ("end_user", json(table, "end_user", &r.end_user)?),
            ("integrations", json(table, "integrations", &r.integrations)?),
            ("return_url", opt_text(&r.return_url)),
            ("allowed_origins", json(table, "allowed_origins", &r.allowed_origins)?),
            ("connection_id", opt_text(&r.connection_id)),
            ("expires_at", SqlValue::Int(r.expires_at)),
            ("opened_at", SqlValue::OptInt(r.opened_at)),
            ("created_at", SqlValue::Int(r.created_at)),
        ];
        insert_into(table, columns).execute(&self.pool).await.map_err(db("insert session")).map(drop)
    }

    async fn open_session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "UPDATE connect_sessions SET opened_at = $1 WHERE token_hash = $2 AND opened_at IS NULL AND expires_at > $3 \
             RETURNING *",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("open session"))?;
        row.as_ref().map(session).transpose()
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM connect_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read session"))?;
        row.as_ref().map(session).transpose()
    }

    async fn insert_authorization(&self, r: &AuthorizationRecord) -> Result<(), StoreError> {
        let table = "authorizations";
        let columns = vec![
            ("state_hash", text(&r.state_hash)),
            ("session_id", text(&r.session_id)),
            ("integration_id", text(&r.integration_id)),
            ("parameters", json(table, "parameters", &r.parameters)?),
            ("code_verifier_blob", SqlValue::Blob(r.code_verifier_blob.clone())),
            ("nonce", SqlValue::OptText(r.nonce.clone())),
            ("expires_at", SqlValue::Int(r.expires_at)),
        ];
        insert_into(table, columns).execute(&self.pool).await.map_err(db("insert authorization")).map(drop)
    }

    async fn authorization(&self, state_hash: &str) -> Result<Option<AuthorizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM authorizations WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read authorization"))?;
        row.as_ref().map(authorization).transpose()
    }

    async fn take_authorization(
        &self,
        state_hash: &str,
        session_id: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError> {
        let row = sqlx::query("DELETE FROM authorizations WHERE state_hash = $1 AND session_id = $2 RETURNING *")
            .bind(state_hash)
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("take authorization"))?;
        row.as_ref().map(authorization).transpose()
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let a = sqlx::query("DELETE FROM authorizations WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("purge"))?;
        let s = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("purge"))?;
        Ok(a.rows_affected() + s.rows_affected())
    }

    async fn insert_connection(&self, r: &ConnectionRecord) -> Result<(), StoreError> {
        insert_into("connections", connection_columns(r)?)
            .execute(&self.pool)
            .await
            .map_err(db("insert connection"))
            .map(drop)
    }

    async fn connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read connection"))?;
        row.as_ref().map(connection).transpose()
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StoreError> {
        // One statement: the head row, joined with the changes past `after` (none: one row of
        // NULLs), so the head and the changes come from one snapshot.
        let rows = sqlx::query(
            "SELECT h.seq AS head, h.pruned_through AS pruned_through, c.seq AS seq, c.kind AS kind, c.target AS target \
             FROM change_log_head h LEFT JOIN change_log c ON c.seq > $1 WHERE h.id = 1 ORDER BY c.seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("change log"))?;
        let first = rows.first().ok_or_else(|| StoreError::Corrupt {
            table: "change_log_head",
            row: "1".to_owned(),
            column: "seq",
            why: "the change log's head row is missing".to_owned(),
        })?;
        let head = RowReader::new(first, "change_log_head", "head");
        let mut feed =
            ChangeFeed { head: head.get("head")?, pruned_through: head.get("pruned_through")?, changes: Vec::new() };
        for row in &rows {
            let r = RowReader::new(row, "change_log", "seq");
            let Some(seq) = r.get::<Option<i64>>("seq")? else { continue };
            let kind: String = r.get("kind")?;
            let kind = ChangeKind::ALL
                .into_iter()
                .find(|k| k.as_str() == kind)
                .ok_or_else(|| r.corrupt("kind", "not a change kind".to_owned()))?;
            feed.changes.push(Change { seq, kind, target: r.get("target")? });
        }
        Ok(feed)
    }

    async fn connection_stamps(&self, ids: &[String]) -> Result<Vec<ConnectionStamp>, StoreError> {
        let sql = format!(
            "SELECT c.id, c.state, c.version, i.version AS integration_version FROM connections c \
             JOIN integrations i ON i.id = c.integration_id WHERE c.id IN ({})",
            placeholders(ids.len())
        );
        // The statement's only variable part is its number of placeholders.
        let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), ids.iter().map(|id| text(id)));
        let rows = query.fetch_all(&self.pool).await.map_err(db("connection stamps"))?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "connections", "id");
                Ok(ConnectionStamp {
                    id: r.get("id")?,
                    state: r.state("state")?,
                    version: r.get("version")?,
                    integration_version: r.get("integration_version")?,
                })
            })
            .collect()
    }

    async fn connections(&self, f: &ConnectionFilter) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM connections WHERE (CAST($1 AS TEXT) IS NULL OR integration_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR state = $2) AND (CAST($3 AS TEXT) IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(&f.integration)
        .bind(f.state.map(ConnectionState::as_str))
        .bind(&f.after)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list connections"))?;
        rows.iter().map(connection).collect()
    }

    async fn connection_counts(&self) -> Result<Vec<(ConnectionState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM connections GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db("count connections"))?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "connections", "state");
                Ok((r.state("state")?, r.get("n")?))
            })
            .collect()
    }

    async fn save_tokens(&self, id: &str, t: &TokensUpdate, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("save tokens"))?;
        let row = change_connection(tokens_columns(t, now)?, vec![("id", text(id))])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("save tokens"))?;
        // A new grant (a link or reconnect) retires what other instances hold.
        self.finish_transition(tx, row, true, now, audit).await
    }

    async fn save_credentials(
        &self,
        id: &str,
        fields_blob: &[u8],
        tokens: Option<&TokensUpdate>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("save credentials"))?;
        let mut set = match tokens {
            Some(t) => tokens_columns(t, now)?,
            None => vec![
                ("tokens_blob", SqlValue::Blob(None)),
                ("scopes", json("connections", "scopes", &Vec::<String>::new())?),
                ("expires_at", SqlValue::OptInt(None)),
                ("state", text(ConnectionState::Active.as_str())),
                ("diagnosis", SqlValue::OptText(None)),
                ("failing_since", SqlValue::OptInt(None)),
                ("updated_at", SqlValue::Int(now)),
            ],
        };
        set.push(("fields_blob", SqlValue::Blob(Some(fields_blob.to_vec()))));
        let row = change_connection(set, vec![("id", text(id))])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("save credentials"))?;
        // New credentials (a link or reconnect) retire what other instances hold.
        self.finish_transition(tx, row, true, now, audit).await
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        expiring_before: i64,
        stale_before: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // Two claims, each an ordered scan of its own partial index (migration 6) that stops
        // after its limit: tokens falling due first, then rows not written since
        // `stale_before`. The state literals are the indexes' predicate, so both engines can
        // use them; the test `claim_statements_match_the_index_predicate` holds them together.
        let mut claimed = self.claim_ordered(owner, now, until, DueBy::Expiry(expiring_before), limit).await?;
        if let Some(rest) = limit.checked_sub(claimed.len() as u32).filter(|rest| *rest > 0) {
            claimed.extend(self.claim_ordered(owner, now, until, DueBy::Update(stale_before), rest).await?);
        }
        Ok(claimed)
    }

    async fn take_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
             AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $1) RETURNING version, tokens_blob",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("take lease"))?;
        row.map(|row| {
            let r = RowReader { row: &row, table: "connections", id: id.to_owned() };
            Ok((r.get("version")?, r.get("tokens_blob")?))
        })
        .transpose()
    }

    async fn release_lease(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db("release lease"))
            .map(drop)
    }

    async fn save_tokens_if(
        &self,
        id: &str,
        t: &TokensUpdate,
        version: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("save tokens"))?;
        let mut set = tokens_columns(t, now)?;
        set.extend([("lease_owner", SqlValue::OptText(None)), ("lease_until", SqlValue::OptInt(None))]);
        let row = change_connection(set, vec![("id", text(id)), ("version", SqlValue::Int(version))])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("save tokens"))?;
        // A refresh retires nothing: the access token other instances hold stays valid until
        // it falls due, and their refresh claims see the newer row (the lease's check).
        self.finish_transition(tx, row, false, now, audit).await
    }

    async fn set_state(
        &self,
        id: &str,
        state: ConnectionState,
        diagnosis: Option<&ConnectionDiagnosis>,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("set state"))?;
        let diagnosis = diagnosis.map_or(Ok(SqlValue::OptText(None)), |d| json("connections", "diagnosis", d))?;
        let row = sqlx::query(
            "UPDATE connections SET prev_state = state, state = $1, diagnosis = $2, version = version + 1, updated_at = $3, \
             failing_since = CASE WHEN $1 = $4 THEN COALESCE(failing_since, $3) ELSE failing_since END \
             WHERE id = $5 RETURNING *",
        )
        .bind(state.as_str())
        .bind(match diagnosis {
            SqlValue::Text(t) => Some(t),
            _ => None,
        })
        .bind(now)
        .bind(ConnectionState::Degraded.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("set state"))?;
        self.finish_transition(tx, row, true, now, audit).await
    }

    async fn mark_revoked(&self, id: &str, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("revoke connection"))?;
        let set = vec![
            ("state", text(ConnectionState::Revoked.as_str())),
            ("tokens_blob", SqlValue::Blob(None)),
            ("fields_blob", SqlValue::Blob(None)),
            ("expires_at", SqlValue::OptInt(None)),
            ("diagnosis", SqlValue::OptText(None)),
            ("updated_at", SqlValue::Int(now)),
        ];
        let row = change_connection(set, vec![("id", text(id))])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("revoke connection"))?;
        self.finish_transition(tx, row, true, now, audit).await
    }

    async fn set_verified(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE connections SET verified_at = $1, updated_at = $2 WHERE id = $3")
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("set verified"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connection(&self, id: &str, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("delete connection"))?;
        let row = sqlx::query("DELETE FROM connections WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("delete connection"))?;
        let Some(row) = row else { return Ok(false) };
        let record = connection(&row)?;
        let now = crate::unix_now();
        insert_audit_of(&mut tx, audit, &record).await?;
        if self.events {
            insert_event(&mut tx, &record, EventKind::Deleted, Some(record.state), now, audit.request_id.as_deref())
                .await?;
        }
        log_change(&mut tx, ChangeKind::Connection, id, now).await?;
        tx.commit().await.map_err(db("delete connection"))?;
        Ok(true)
    }

    async fn pending_events(&self, now: i64, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, seq, connection_id, type, payload, attempts FROM webhook_events e \
             WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
             AND NOT EXISTS (SELECT 1 FROM webhook_events f WHERE f.connection_id = e.connection_id \
                             AND f.delivered_at IS NULL AND f.seq < e.seq) \
             ORDER BY seq LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("outbox"))?;
        rows.iter().map(event).collect()
    }

    async fn claim_event(&self, id: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_events SET claimed_until = $1 WHERE id = $2 AND delivered_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until < $3)",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("outbox"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn event_delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_events SET delivered_at = $1, attempts = attempts + 1, claimed_until = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("outbox"))
        .map(drop)
    }

    async fn event_failed(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
             claimed_until = NULL WHERE id = $3",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("outbox"))
        .map(drop)
    }

    async fn insert_api_key(&self, r: &ApiKeyRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let columns = vec![
            ("id", text(&r.id)),
            ("name", text(&r.name)),
            ("secret_hash", text(&r.secret_hash)),
            (
                "scopes",
                match &r.scopes {
                    KeyScopes::Every => SqlValue::OptText(None),
                    KeyScopes::Only(_) => json("api_keys", "scopes", &r.scopes.names())?,
                },
            ),
            ("created_at", SqlValue::Int(r.created_at)),
            ("expires_at", SqlValue::OptInt(r.expires_at)),
            ("revoked_at", SqlValue::OptInt(r.revoked_at)),
            ("last_used_at", SqlValue::OptInt(r.last_used_at)),
        ];
        let mut tx = self.pool.begin().await.map_err(db("insert API key"))?;
        insert_into("api_keys", columns).execute(&mut *tx).await.map_err(db("insert API key"))?;
        insert_audit_row(&mut tx, audit).await?;
        tx.commit().await.map_err(db("insert API key"))
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read API key"))?;
        row.as_ref().map(api_key).transpose()
    }

    async fn api_keys(&self, ids: &[String]) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT * FROM api_keys WHERE id IN ({})", placeholders(ids.len()));
        // The statement's only variable part is its number of placeholders.
        let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), ids.iter().map(|id| text(id)));
        let rows = query.fetch_all(&self.pool).await.map_err(db("read API keys"))?;
        rows.iter().map(api_key).collect()
    }

    async fn all_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list API keys"))?;
        rows.iter().map(api_key).collect()
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("revoke API key"))?;
        let row = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING *")
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("revoke API key"))?;
        let Some(record) = row.as_ref().map(api_key).transpose()? else { return Ok(None) };
        insert_audit_row(&mut tx, audit).await?;
        // Every instance refuses the key on its next request (revoking again logs again:
        // harmless, and an instance that missed nothing loses nothing).
        log_change(&mut tx, ChangeKind::ApiKey, id, now).await?;
        tx.commit().await.map_err(db("revoke API key"))?;
        Ok(Some(record))
    }

    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut queries = insert_many("audit_log", records.iter().map(audit_columns).collect());
        if queries.len() == 1 {
            // One statement is its own transaction: no BEGIN and COMMIT round trips.
            return queries.remove(0).execute(&self.pool).await.map_err(db("audit")).map(drop);
        }
        let mut tx = self.pool.begin().await.map_err(db("audit"))?;
        for query in queries {
            query.execute(&mut *tx).await.map_err(db("audit"))?;
        }
        tx.commit().await.map_err(db("audit"))
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let (after_seq, after_id) = match &f.after {
            Some((seq, id)) => (Some(*seq), Some(id.clone())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (CAST($1 AS TEXT) IS NULL OR connection_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR actor_id = $2) AND (CAST($3 AS TEXT) IS NULL OR action = $3) \
             AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) AND (CAST($5 AS BIGINT) IS NULL OR at < $5) \
             AND (CAST($6 AS BIGINT) IS NULL OR seq > $6 OR (seq = $6 AND id > $7)) \
             ORDER BY seq, id LIMIT $8",
        )
        .bind(&f.connection)
        .bind(&f.actor)
        .bind(f.action.map(AuditAction::as_str))
        .bind(f.since)
        .bind(f.until)
        .bind(after_seq)
        .bind(after_id)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read audit"))?;
        rows.iter().map(audit_record).collect()
    }

    async fn prune_audit(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            // By `seq`, the key: the few rows of another instance sharing a pruned one's `seq`
            // are pruned with it only if they are as old.
            "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2) \
             AND at < $1",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(db("prune audit"))?;
        Ok(done.rows_affected())
    }

    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        for (id, at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("API key use"))?;
        }
        Ok(())
    }

    async fn cells_not_under(&self, key_id: &str, limit: u32) -> Result<Vec<SecretCell>, StoreError> {
        // A blob starts with its format byte, the key id's length and the key id (crypto.rs).
        let mut prefix = vec![1u8, key_id.len() as u8];
        prefix.extend_from_slice(key_id.as_bytes());
        let mut cells = Vec::new();
        for &(table, key, column) in SECRET_COLUMNS {
            let remaining = i64::from(limit) - cells.len() as i64;
            if remaining <= 0 {
                break;
            }
            let sql = format!(
                "SELECT {key} AS row_id, {column} AS blob FROM {table} WHERE {column} IS NOT NULL \
                 AND substr({column}, 1, CAST($1 AS INTEGER)) <> $2 ORDER BY {key} LIMIT $3"
            );
            // Table and column names come from SECRET_COLUMNS, never from input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(prefix.len() as i64)
                .bind(&prefix)
                .bind(remaining)
                .fetch_all(&self.pool)
                .await
                .map_err(db("rotation scan"))?;
            for row in rows {
                let r = RowReader::new(&row, table, "row_id");
                cells.push(SecretCell { table, row: r.get("row_id")?, column, blob: r.get("blob")? });
            }
        }
        Ok(cells)
    }

    async fn replace_cell(&self, cell: &SecretCell, new_blob: &[u8]) -> Result<bool, StoreError> {
        let (_, key, column) = SECRET_COLUMNS
            .iter()
            .find(|(t, _, c)| *t == cell.table && *c == cell.column)
            .ok_or_else(|| StoreError::Database(format!("{}.{} holds no secret", cell.table, cell.column)))?;
        let sql = format!("UPDATE {} SET {column} = $1 WHERE {key} = $2 AND {column} = $3", cell.table);
        // Table and column names come from SECRET_COLUMNS, never from input.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_blob)
            .bind(&cell.row)
            .bind(&cell.blob)
            .execute(&self.pool)
            .await
            .map_err(db("rotation write"))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each claim is an ordered scan of its partial index, not a scan and sort of every row
    /// (2 s at a million rows, holding SQLite's one write lock). `INDEXED BY` fails the
    /// statement if the engine cannot see that it implies the index's predicate.
    #[tokio::test]
    async fn each_claim_scans_its_partial_index() {
        let store = SqlStore::open("sqlite::memory:").await.expect("store");
        for (due, index) in
            [(DueBy::Expiry(1), "connections_due_by_expiry"), (DueBy::Update(1), "connections_due_by_update")]
        {
            let rows =
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", due_rows(due, Dialect::Sqlite))))
                    .bind(1_i64)
                    .bind(1_i64)
                    .bind(1_i64)
                    .fetch_all(&store.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{index}: {e}"));
            let plan: Vec<String> = rows.iter().map(|row| row.get::<String, _>("detail")).collect();
            let plan = plan.join("; ");
            assert!(plan.contains(index), "{index}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{index}: no sort: {plan}");
        }
    }
}
