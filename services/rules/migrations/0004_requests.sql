-- Idempotency records of operators' calls (request_id on the admin RPCs), see
-- services/common/idempotency.py. Same shape as the ledger's and the mall's.
CREATE TABLE requests (
    user_id        text NOT NULL,
    request_id     text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 256),
    method         text NOT NULL,
    payload_sha256 bytea NOT NULL,
    response       bytea,
    error          jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, request_id),
    CHECK (response IS NULL OR error IS NULL)
);
CREATE INDEX requests_created ON requests (created_at);
