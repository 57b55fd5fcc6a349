-- points:no-transaction
-- The retention job deletes an event once no delivery refers to it: this finds a delivery by
-- its event without scanning them all.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_event ON deliveries (event_id);
