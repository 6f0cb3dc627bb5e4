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
    ApiKeyRecord, AuthorizationRecord, ConnectionFilter, ConnectionRecord, EventRecord, IntegrationRecord, SecretCell,
    SessionRecord, Store, StoreError, TokensUpdate,
};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

/// The migrations, in order. Their text is portable SQL (see the file's header).
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/0001_init.sql"))];

/// The columns holding ciphertext, for key rotation: (table, primary key, column).
const SECRET_COLUMNS: &[(&str, &str, &str)] = &[
    ("integrations", "id", "client_secret_blob"),
    ("integrations", "id", "staged_client_secret_blob"),
    ("connections", "id", "tokens_blob"),
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

fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
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
        let pool = AnyPoolOptions::new()
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
            .connect(&url)
            .await
            // The URL may hold a password: name the kind of failure, not the URL.
            .map_err(db("open"))?;
        let store = SqlStore { pool, dialect, events: false };
        store.migrate().await?;
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

    /// Ends a state-changing statement's transaction: the event its transition means goes
    /// into the outbox in the same transaction, so a change is never reported without
    /// happening, nor happens unreported. `false` when no row changed.
    async fn finish_transition(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        row: Option<AnyRow>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(row) = row else { return Ok(false) };
        if self.events {
            let record = connection(&row)?;
            let previous: Option<String> = row.try_get("prev_state").map_err(corrupt)?;
            let previous = previous.unwrap_or_default();
            if let Some(kind) = super::transition_event(&previous, &record.state) {
                insert_event(&mut tx, &record, kind, &previous, now).await?;
            }
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(true)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
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
        }
        Ok(())
    }
}

/// Writes one webhook event for a connection into the outbox. Its payload names the
/// connection, its integration, states and diagnosis: never a credential.
async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    record: &ConnectionRecord,
    kind: &str,
    previous: &str,
    now: i64,
) -> Result<(), StoreError> {
    let id = super::new_event_id();
    let diagnosis: serde_json::Value =
        record.diagnosis.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(serde_json::Value::Null);
    let payload = serde_json::json!({
        "id": id,
        "type": kind,
        "created_at": now,
        "data": {
            "connection_id": record.id,
            "integration_id": record.integration_id,
            "state": if kind == "connection.deleted" { "deleted" } else { record.state.as_str() },
            "previous_state": previous,
            "diagnosis": diagnosis,
        },
    });
    sqlx::query(
        "INSERT INTO webhook_events (id, seq, connection_id, type, payload, created_at, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
    )
    .bind(&id)
    .bind(super::next_event_seq())
    .bind(&record.id)
    .bind(kind)
    .bind(payload.to_string())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db("outbox"))
    .map(drop)
}

fn integration(row: &AnyRow) -> Result<IntegrationRecord, StoreError> {
    Ok(IntegrationRecord {
        id: row.try_get("id").map_err(corrupt)?,
        profile: row.try_get("profile").map_err(corrupt)?,
        name: row.try_get("name").map_err(corrupt)?,
        client_id: row.try_get("client_id").map_err(corrupt)?,
        client_secret_blob: row.try_get("client_secret_blob").map_err(corrupt)?,
        staged_client_secret_blob: row.try_get("staged_client_secret_blob").map_err(corrupt)?,
        settings: row.try_get("settings").map_err(corrupt)?,
        version: row.try_get("version").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        updated_at: row.try_get("updated_at").map_err(corrupt)?,
    })
}

fn session(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.try_get("id").map_err(corrupt)?,
        token_hash: row.try_get("token_hash").map_err(corrupt)?,
        end_user: row.try_get("end_user").map_err(corrupt)?,
        integrations: row.try_get("integrations").map_err(corrupt)?,
        return_url: row.try_get("return_url").map_err(corrupt)?,
        allowed_origins: row.try_get("allowed_origins").map_err(corrupt)?,
        connection_id: row.try_get("connection_id").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
        opened_at: row.try_get("opened_at").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
    })
}

fn authorization(row: &AnyRow) -> Result<AuthorizationRecord, StoreError> {
    Ok(AuthorizationRecord {
        state_hash: row.try_get("state_hash").map_err(corrupt)?,
        session_id: row.try_get("session_id").map_err(corrupt)?,
        integration_id: row.try_get("integration_id").map_err(corrupt)?,
        parameters: row.try_get("parameters").map_err(corrupt)?,
        code_verifier_blob: row.try_get("code_verifier_blob").map_err(corrupt)?,
        authorize_origin: row.try_get("authorize_origin").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
    })
}

fn connection(row: &AnyRow) -> Result<ConnectionRecord, StoreError> {
    Ok(ConnectionRecord {
        id: row.try_get("id").map_err(corrupt)?,
        integration_id: row.try_get("integration_id").map_err(corrupt)?,
        end_user: row.try_get("end_user").map_err(corrupt)?,
        parameters: row.try_get("parameters").map_err(corrupt)?,
        state: row.try_get("state").map_err(corrupt)?,
        tokens_blob: row.try_get("tokens_blob").map_err(corrupt)?,
        scopes: row.try_get("scopes").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
        diagnosis: row.try_get("diagnosis").map_err(corrupt)?,
        verified_at: row.try_get("verified_at").map_err(corrupt)?,
        failing_since: row.try_get("failing_since").map_err(corrupt)?,
        version: row.try_get("version").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        updated_at: row.try_get("updated_at").map_err(corrupt)?,
    })
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db("ping")).map(drop)
    }

    async fn insert_integration(&self, r: &IntegrationRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO integrations (id, profile, name, client_id, client_secret_blob, staged_client_secret_blob, \
             settings, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.id)
        .bind(&r.profile)
        .bind(&r.name)
        .bind(&r.client_id)
        .bind(&r.client_secret_blob)
        .bind(&r.staged_client_secret_blob)
        .bind(&r.settings)
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert integration"))
        .map(drop)
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

    async fn update_integration(&self, r: &IntegrationRecord, expected_version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE integrations SET name = $1, client_id = $2, client_secret_blob = $3, staged_client_secret_blob = $4, \
             settings = $5, version = $6, updated_at = $7 WHERE id = $8 AND version = $9",
        )
        .bind(&r.name)
        .bind(&r.client_id)
        .bind(&r.client_secret_blob)
        .bind(&r.staged_client_secret_blob)
        .bind(&r.settings)
        .bind(r.version)
        .bind(r.updated_at)
        .bind(&r.id)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(db("update integration"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_integration(&self, id: &str) -> Result<Option<bool>, StoreError> {
        let done = sqlx::query(
            "DELETE FROM integrations WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM connections WHERE integration_id = $2)",
        )
        .bind(id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("delete integration"))?;
        if done.rows_affected() == 1 {
            return Ok(Some(true));
        }
        Ok(self.integration(id).await?.map(|_| false))
    }

    async fn insert_session(&self, r: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connect_sessions (id, token_hash, end_user, integrations, return_url, allowed_origins, \
             connection_id, expires_at, opened_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.id)
        .bind(&r.token_hash)
        .bind(&r.end_user)
        .bind(&r.integrations)
        .bind(&r.return_url)
        .bind(&r.allowed_origins)
        .bind(&r.connection_id)
        .bind(r.expires_at)
        .bind(r.opened_at)
        .bind(r.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert session"))
        .map(drop)
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
        sqlx::query(
            "INSERT INTO authorizations (state_hash, session_id, integration_id, parameters, code_verifier_blob, \
             authorize_origin, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.state_hash)
        .bind(&r.session_id)
        .bind(&r.integration_id)
        .bind(&r.parameters)
        .bind(&r.code_verifier_blob)
        .bind(&r.authorize_origin)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert authorization"))
        .map(drop)
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
        sqlx::query(
            "INSERT INTO connections (id, integration_id, end_user, parameters, state, tokens_blob, scopes, \
             expires_at, diagnosis, verified_at, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&r.id)
        .bind(&r.integration_id)
        .bind(&r.end_user)
        .bind(&r.parameters)
        .bind(&r.state)
        .bind(&r.tokens_blob)
        .bind(&r.scopes)
        .bind(r.expires_at)
        .bind(&r.diagnosis)
        .bind(r.verified_at)
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at)
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

    async fn connections(&self, f: &ConnectionFilter) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM connections WHERE (CAST($1 AS TEXT) IS NULL OR integration_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR state = $2) AND (CAST($3 AS TEXT) IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(&f.integration)
        .bind(&f.state)
        .bind(&f.after)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list connections"))?;
        rows.iter().map(connection).collect()
    }

    async fn connection_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM connections GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db("count connections"))?;
        rows.iter().map(|r| Ok((r.try_get("state").map_err(corrupt)?, r.try_get("n").map_err(corrupt)?))).collect()
    }

    async fn save_tokens(&self, id: &str, t: &TokensUpdate, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("save tokens"))?;
        let row = sqlx::query(
            "UPDATE connections SET prev_state = state, tokens_blob = $1, scopes = $2, expires_at = $3, state = 'active', \
             diagnosis = NULL, failing_since = NULL, version = version + 1, updated_at = $4 WHERE id = $5 RETURNING *",
        )
        .bind(&t.tokens_blob)
        .bind(&t.scopes)
        .bind(t.expires_at)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("save tokens"))?;
        self.finish_transition(tx, row, now).await
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
        // The one dialect fork: SQLite has one writer at a time and no row locks to skip.
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 WHERE id IN (\
             SELECT id FROM connections WHERE state IN ('active', 'degraded') AND tokens_blob IS NOT NULL \
             AND ((expires_at IS NOT NULL AND expires_at < $3) OR updated_at < $4) \
             AND (lease_until IS NULL OR lease_until < $5) \
             ORDER BY COALESCE(expires_at, updated_at) LIMIT $6{skip_locked}) RETURNING id"
        );
        // The statement's only variable part is the constant above.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(until)
            .bind(expiring_before)
            .bind(stale_before)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("claim due connections"))?;
        rows.iter().map(|r| r.try_get("id").map_err(corrupt)).collect()
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
        row.map(|r| Ok((r.try_get("version").map_err(corrupt)?, r.try_get("tokens_blob").map_err(corrupt)?)))
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

    async fn save_tokens_if(&self, id: &str, t: &TokensUpdate, version: i64, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("save tokens"))?;
        let row = sqlx::query(
            "UPDATE connections SET prev_state = state, tokens_blob = $1, scopes = $2, expires_at = $3, state = 'active', \
             diagnosis = NULL, failing_since = NULL, version = version + 1, updated_at = $4, lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND version = $6 RETURNING *",
        )
        .bind(&t.tokens_blob)
        .bind(&t.scopes)
        .bind(t.expires_at)
        .bind(now)
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("save tokens"))?;
        self.finish_transition(tx, row, now).await
    }

    async fn set_state(&self, id: &str, state: &str, diagnosis: Option<&str>, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("set state"))?;
        let row = sqlx::query(
            "UPDATE connections SET prev_state = state, state = $1, diagnosis = $2, version = version + 1, updated_at = $3, \
             failing_since = CASE WHEN $1 = 'degraded' THEN COALESCE(failing_since, $3) ELSE failing_since END \
             WHERE id = $4 RETURNING *",
        )
        .bind(state)
        .bind(diagnosis)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("set state"))?;
        self.finish_transition(tx, row, now).await
    }

    async fn mark_revoked(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("revoke connection"))?;
        let row = sqlx::query(
            "UPDATE connections SET prev_state = state, state = 'revoked', tokens_blob = NULL, expires_at = NULL, \
             diagnosis = NULL, version = version + 1, updated_at = $1 WHERE id = $2 RETURNING *",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("revoke connection"))?;
        self.finish_transition(tx, row, now).await
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

    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("delete connection"))?;
        let row = sqlx::query("DELETE FROM connections WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("delete connection"))?;
        let Some(row) = row else { return Ok(false) };
        let record = connection(&row)?;
        if self.events {
            let now = crate::unix_now();
            insert_event(&mut tx, &record, "connection.deleted", &record.state, now).await?;
        }
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
        rows.iter()
            .map(|r| {
                Ok(EventRecord {
                    id: r.try_get("id").map_err(corrupt)?,
                    seq: r.try_get("seq").map_err(corrupt)?,
                    connection_id: r.try_get("connection_id").map_err(corrupt)?,
                    kind: r.try_get("type").map_err(corrupt)?,
                    payload: r.try_get("payload").map_err(corrupt)?,
                    attempts: r.try_get("attempts").map_err(corrupt)?,
                })
            })
            .collect()
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

    async fn insert_api_key(&self, r: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, name, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.secret_hash)
            .bind(r.created_at)
            .bind(r.revoked_at)
            .execute(&self.pool)
            .await
            .map_err(db("insert API key"))
            .map(drop)
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read API key"))?;
        row.map(|r| {
            Ok(ApiKeyRecord {
                id: r.try_get("id").map_err(corrupt)?,
                name: r.try_get("name").map_err(corrupt)?,
                secret_hash: r.try_get("secret_hash").map_err(corrupt)?,
                created_at: r.try_get("created_at").map_err(corrupt)?,
                revoked_at: r.try_get("revoked_at").map_err(corrupt)?,
            })
        })
        .transpose()
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
                cells.push(SecretCell {
                    table,
                    row: row.try_get("row_id").map_err(corrupt)?,
                    column,
                    blob: row.try_get("blob").map_err(corrupt)?,
                });
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
