-- Credentials other than OAuth 2.0 (issue 27): the fields an end user entered to link an
-- account (an API key, a user and a password), AES-256-GCM ciphertext like tokens_blob. A
-- token exchange keeps both: its fields here, the exchanged token in tokens_blob.
ALTER TABLE connections ADD COLUMN fields_blob BLOB;
