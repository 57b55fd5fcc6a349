-- points:no-transaction
-- Pending lots whose maturity is still to be announced (credits available at once never are).
CREATE INDEX CONCURRENTLY IF NOT EXISTS lots_maturing_unannounced ON lots (matures_at)
    WHERE maturity_announced_at IS NULL AND matures_at > created_at;
