-- Subscriptions: where events go. Secrets are kept to sign with (HMAC needs the key itself).
CREATE TABLE subscriptions (
    subscription_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types           text[] NOT NULL CHECK (cardinality(event_types) > 0),
    description           text NOT NULL DEFAULT '',
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text NOT NULL DEFAULT '',
    secret                text NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Events as published by the services' outboxes (deduplicated on the event id).
CREATE TABLE events (
    event_id    uuid PRIMARY KEY,
    type        text NOT NULL,
    member_id   text NOT NULL DEFAULT '',  -- '' for program-wide events
    occurred_at timestamptz NOT NULL,
    source      text NOT NULL,
    sequence    bigint NOT NULL,
    body        text NOT NULL,  -- the envelope, exactly as signed and sent
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_occurred ON events (occurred_at);

-- One event to one subscription. A member's deliveries to a subscription go out in
-- delivery_id order: one waits while an earlier one of the same member is PENDING.
CREATE TABLE deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES subscriptions ON DELETE CASCADE,
    event_id        uuid NOT NULL REFERENCES events,
    member_id       text NOT NULL,
    status          text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,  -- a worker is sending it (a dead worker's lease runs out)
    last_status     integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    last_latency_ms integer NOT NULL DEFAULT 0,
    last_response   text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX deliveries_pending ON deliveries (subscription_id, member_id, delivery_id)
    WHERE status = 'PENDING';
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX deliveries_listing ON deliveries (subscription_id, delivery_id);

-- Every attempt, for the delivery log.
CREATE TABLE attempts (
    delivery_id bigint NOT NULL REFERENCES deliveries ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status      integer NOT NULL,
    latency_ms  integer NOT NULL,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- Idempotency records of operators' calls (see services/common/idempotency.py).
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
