-- points:no-transaction
-- A member's Idempotency-Key names one deduction: the same key sent with another order is
-- refused (IDEMPOTENCY_KEY_REUSED) instead of applying a second deduction. Holds the member
-- id, as every unique key of a distributed table must (deploy/citus).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS deductions_member_request
    ON deductions (user_id, request_id);
