-- The trace of the request that earned an award (W3C traceparent), so a credit settled later
-- (after a ledger outage) links back to the check-in or purchase that caused it.
ALTER TABLE awards ADD COLUMN traceparent text;
