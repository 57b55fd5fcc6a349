-- points:no-transaction
-- Events by month (docs/scaling.md), step 1 of 4: the key the partitioned table will have,
-- built without blocking writes, so step 4 adopts it instead of building one under a lock.
-- A replayed event is still found by member and event id: under the member's lock, before the
-- event is written (services/rules/evaluator.py), not by this key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_dated_key
    ON events (user_id, event_id, recorded_at);
