-- Risky changes waiting for a second person (the gateway asks, another operator decides,
-- the gateway carries the change out and records its answer).
CREATE TABLE approvals (
    approval_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author        text NOT NULL,
    author_roles  text[] NOT NULL,
    action        text NOT NULL,
    target        text NOT NULL,
    request_json  text NOT NULL,
    request_key   text NOT NULL,
    reason        text NOT NULL,
    detail_json   text NOT NULL,
    needs         text NOT NULL,
    status        text NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'APPROVED', 'DONE', 'REJECTED')),
    decided_by    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    result_status integer NOT NULL DEFAULT 0,
    result_json   text NOT NULL DEFAULT '',
    UNIQUE (author, request_key)
);
CREATE INDEX approvals_by_status ON approvals (status, approval_id);
