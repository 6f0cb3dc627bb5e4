-- keyway serve's store. Times are seconds since the Unix epoch. Columns named *_blob hold
-- AES-256-GCM ciphertext (crypto.rs): never plaintext secrets. Portable SQL: the same text
-- runs on SQLite and PostgreSQL (BYTEA/BLOB is the one difference, written as BLOB here).

CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    name TEXT,
    client_id TEXT NOT NULL,
    client_secret_blob BLOB,
    staged_client_secret_blob BLOB,
    settings TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE connect_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    end_user TEXT NOT NULL,
    integrations TEXT NOT NULL,
    return_url TEXT,
    allowed_origins TEXT NOT NULL,
    connection_id TEXT,
    expires_at BIGINT NOT NULL,
    opened_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE authorizations (
    state_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    parameters TEXT NOT NULL,
    code_verifier_blob BLOB,
    authorize_origin TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL REFERENCES integrations (id),
    end_user TEXT NOT NULL,
    parameters TEXT NOT NULL,
    state TEXT NOT NULL,
    prev_state TEXT,
    tokens_blob BLOB,
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    diagnosis TEXT,
    verified_at BIGINT,
    failing_since BIGINT,
    version BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX connections_by_integration ON connections (integration_id, id);
CREATE INDEX connections_by_state ON connections (state, id);

-- The webhook outbox: written in the same transaction as the change it reports, delivered
-- at least once, in order per connection (seq), by whichever instance claims it.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    connection_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    delivered_at BIGINT,
    last_error TEXT
);

CREATE INDEX webhook_events_pending ON webhook_events (delivered_at, next_attempt_at, seq);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
