-- The change log: what every instance reads (one small statement per batch of requests) to
-- learn which of the rows it holds in memory another instance retired. Each change that
-- retires what a cache may hold (a connection deleted, revoked, reconnected or changing
-- state; an integration changed or deleted; an API key revoked) appends a row here in the
-- same transaction. `change_log_head.seq` is bumped by each writer in its transaction (its
-- row lock orders the writers), so committed changes are always a prefix of the sequence:
-- a reader that saw `seq` has seen every change numbered up to it. Rows at or below
-- `pruned_through` are gone; a reader that last saw less forgets everything it holds.
CREATE TABLE change_log_head (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO change_log_head (id, seq, pruned_through) VALUES (1, 0, 0);
CREATE TABLE change_log (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
