-- Who may do what (issue 29). API keys gain scopes (a JSON array of names; NULL for a key
-- created before scopes, which keeps every scope), an expiry and the time of last use
-- (written at most once a minute per key and instance).
ALTER TABLE api_keys ADD COLUMN scopes TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
