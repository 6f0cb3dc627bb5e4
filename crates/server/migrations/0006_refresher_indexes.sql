-- The background refresher's two claims, each an ordered range scan that stops after its
-- limit: tokens falling due (by expiry) and connections not written for a day (by update).
-- Partial on exactly the predicate of the claim statements (`store/sql.rs`, `claim_due`) so
-- neither engine visits revoked, pending or token-less rows, however many accumulate.
CREATE INDEX connections_due_by_expiry ON connections (expires_at)
    WHERE state IN ('active', 'degraded') AND tokens_blob IS NOT NULL AND expires_at IS NOT NULL;
CREATE INDEX connections_due_by_update ON connections (updated_at)
    WHERE state IN ('active', 'degraded') AND tokens_blob IS NOT NULL;
