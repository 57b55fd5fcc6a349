-- An award the ledger refused for good is REFUSED: never sent again, not counted as issued,
-- and recorded as a dead letter for operators (who may retry it).
ALTER TABLE awards DROP CONSTRAINT awards_review_check;
ALTER TABLE awards ADD CONSTRAINT awards_review_check
    CHECK (review IN ('', 'PENDING', 'APPROVED', 'REJECTED', 'REFUSED')) NOT VALID;
ALTER TABLE awards VALIDATE CONSTRAINT awards_review_check;

-- Work a peer refused for good, after its outcome was settled (services/common/dead_letters.py).
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
