-- The event as received (a serialized loyalty.rules.v1.Event, occurred_at filled in), so a
-- simulation can replay real traffic exactly; NULL on events recorded before this column.
ALTER TABLE events ADD COLUMN event bytea;
