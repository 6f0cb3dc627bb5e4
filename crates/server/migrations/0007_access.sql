-- Who may do what (issue 29). API keys gain scopes (a JSON array of names; NULL for a key
-- created before scopes, which keeps every scope), an expiry and the time of last use
-- (written at most once a minute per key and instance).
ALTER TABLE api_keys ADD COLUMN scopes TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;

-- The audit trail: one row per credential handed out, refresh, link, reconnect, revocation,
-- deletion, import, integration change, API key created or revoked, and request refused for
-- lack of a scope. Written in the same transaction as the change it records (reads: before
-- the answer). Never a secret, a token, a query string or a body. Rows are only ever
-- inserted, and deleted by the retention setting, oldest first.
-- Keyed by (seq, id), which grow with time: a batch of records is appended at the right edge
-- of each index, not scattered through a random one.
CREATE TABLE audit_log (
    id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT,
    instance TEXT,
    action TEXT NOT NULL,
    connection_id TEXT,
    integration_id TEXT,
    target_id TEXT,
    outcome TEXT NOT NULL,
    problem_code TEXT,
    request_id TEXT,
    detail TEXT,
    PRIMARY KEY (seq, id)
);

CREATE INDEX audit_log_by_at ON audit_log (at);
CREATE INDEX audit_log_by_connection ON audit_log (connection_id, seq);
