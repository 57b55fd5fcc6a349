-- points:no-transaction
-- Transfers by month (docs/scaling.md), step 1 of 4: the key the partitioned table will have,
-- built without blocking writes, so step 4 adopts it instead of building one under a lock.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS transfers_dated_key
    ON transfers (user_id, transfer_id, created_at);
