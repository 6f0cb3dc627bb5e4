-- The OpenID Connect `nonce` an authorization request sent (when it asked for `openid`): the
-- code exchange's ID token must repeat it (RFC 9700 §2.1.1). Not a secret: it travels in the
-- authorization URL.
ALTER TABLE authorizations ADD COLUMN nonce TEXT;
