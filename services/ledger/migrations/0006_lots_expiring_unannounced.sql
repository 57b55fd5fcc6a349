-- points:no-transaction
-- Open lots whose "expiring soon" event is still to be written, soonest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS lots_expiring_unannounced ON lots (expires_at)
    WHERE remaining > 0 AND expiring_announced_at IS NULL;
