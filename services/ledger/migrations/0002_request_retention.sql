-- Idempotency records are kept for a retention period (LEDGER_REQUEST_RETENTION_DAYS) and then
-- deleted by a periodic job, oldest first: this index finds them.
CREATE INDEX requests_created ON requests (created_at);
