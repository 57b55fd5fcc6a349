-- The transactional outbox (services/common/outbox.py): events written in the transaction of
-- the change they describe, handed on in `seq` order. The same table in every service.
CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    type         text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    member_id    text,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    data         jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
