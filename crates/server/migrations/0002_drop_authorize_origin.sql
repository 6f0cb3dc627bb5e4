-- authorizations.authorize_origin was written and never read: the callback's `iss` is
-- judged by the runtime against the profile (keyway_runtime::check_issuer).
ALTER TABLE authorizations DROP COLUMN authorize_origin;
