-- Checkout claims the order before the ledger hold: a PENDING row holds the deadline and the
-- request's fingerprint, so concurrent applies meet on the row instead of racing in the
-- ledger. A claim the ledger or risk refuses ends FAILED; another request may claim it again.
ALTER TABLE deductions ALTER COLUMN hold_id DROP NOT NULL;
ALTER TABLE deductions ADD COLUMN payload_sha256 bytea;
ALTER TABLE deductions ADD COLUMN hold_request_id text;
ALTER TABLE deductions ADD COLUMN hold_deadline timestamptz;
ALTER TABLE deductions ADD COLUMN failure_reason text;
ALTER TABLE deductions ALTER COLUMN status SET DEFAULT 'PENDING';
ALTER TABLE deductions DROP CONSTRAINT deductions_status_check;
ALTER TABLE deductions ADD CONSTRAINT deductions_status_check
    CHECK (status IN ('PENDING', 'APPLIED', 'CONFIRMED', 'CANCELLED', 'FAILED')) NOT VALID;
ALTER TABLE deductions VALIDATE CONSTRAINT deductions_status_check;

-- Draws remember what was asked (a reused request id is refused) and why one failed.
ALTER TABLE draws ADD COLUMN payload_sha256 bytea;
ALTER TABLE draws ADD COLUMN failure_reason text;

-- Work a peer refused for good, after its outcome was settled: operators list, retry and
-- resolve these (services/common/dead_letters.py).
CREATE TABLE dead_letters (
    user_id     text NOT NULL,
    letter_id   bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    subject     text NOT NULL,
    reason      text NOT NULL,
    message     text NOT NULL,
    status      text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'RETRIED', 'RESOLVED')),
    attempts    integer NOT NULL DEFAULT 1,
    note        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, letter_id),
    UNIQUE (user_id, kind, subject)
);
CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE status = 'OPEN';
