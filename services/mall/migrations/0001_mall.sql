-- The points mall. Per-user tables have user_id first in their primary key.

-- Catalog items: the serialized loyalty.mall.v1.Item, plus the columns queries and the stock
-- reservation need. `stock` is the live count (NULL: unlimited).
CREATE TABLE items (
    item_id         text PRIMARY KEY,
    item_type       text NOT NULL,
    points_price    bigint NOT NULL CHECK (points_price > 0),
    stock           bigint CHECK (stock >= 0),
    enabled         boolean NOT NULL,
    available_from  timestamptz,
    available_until timestamptz,
    definition      bytea NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id    text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Redemptions and their saga state. `step` is how far the saga got:
--   STARTED → STOCK_RESERVED → HOLD_PLACED → FULFILLED → COMPLETED
--   any failure → FAILED (after compensation); COMPLETED → CANCELLED (refund).
CREATE TABLE redemptions (
    user_id          text NOT NULL,
    redemption_id    bigint GENERATED ALWAYS AS IDENTITY,
    request_id       text NOT NULL,
    payload_sha256   bytea NOT NULL,
    item_id          text NOT NULL,
    item_type        text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    points           bigint NOT NULL CHECK (points >= 0),  -- 0: a lottery prize
    step             text NOT NULL DEFAULT 'STARTED' CHECK (step IN
        ('STARTED', 'STOCK_RESERVED', 'HOLD_PLACED', 'FULFILLED', 'COMPLETED', 'FAILED',
         'CANCELLED')),
    stock_reserved   boolean NOT NULL DEFAULT false,  -- true while stock is taken for it
    failure_reason   text NOT NULL DEFAULT '',
    hold_id          text,
    capture_id       text,       -- the ledger transfer that spent the points
    code             text,
    code_expires_at  timestamptz,
    shipment_status  text CHECK (shipment_status IN ('PENDING', 'SHIPPED', 'DELIVERED')),
    shipping_address text NOT NULL DEFAULT '',
    cash_minor       bigint NOT NULL DEFAULT 0 CHECK (cash_minor >= 0),  -- points-plus-cash
    cash_currency    text NOT NULL DEFAULT '',
    device_id        text NOT NULL DEFAULT '',
    ip               text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, redemption_id),
    UNIQUE (user_id, request_id)
);
CREATE UNIQUE INDEX redemptions_code ON redemptions (code) WHERE code IS NOT NULL;
CREATE INDEX redemptions_unfinished ON redemptions (updated_at)
    WHERE step NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
CREATE INDEX redemptions_by_item ON redemptions (user_id, item_id, created_at);

-- Points-as-cash: one deduction per (user, order), settled through a ledger hold.
CREATE TABLE deductions (
    user_id         text NOT NULL,
    order_id        text NOT NULL,
    request_id      text NOT NULL,
    points          bigint NOT NULL CHECK (points > 0),
    order_minor     bigint NOT NULL CHECK (order_minor > 0),
    currency        text NOT NULL,
    covered_minor   bigint NOT NULL CHECK (covered_minor > 0),
    hold_id         text NOT NULL,
    capture_id      text,
    status          text NOT NULL DEFAULT 'APPLIED'
        CHECK (status IN ('APPLIED', 'CONFIRMED', 'CANCELLED')),
    refunded_points bigint NOT NULL DEFAULT 0,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, order_id),
    CHECK (refunded_points <= points AND refunded_minor <= order_minor)
);

CREATE TABLE deduction_refunds (
    user_id      text NOT NULL,
    order_id     text NOT NULL,
    request_id   text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    points       bigint NOT NULL CHECK (points >= 0),
    PRIMARY KEY (user_id, order_id, request_id)
);

-- Coupons issued by redemptions of COUPON items (and, later, lottery prizes).
CREATE TABLE coupons (
    user_id         text NOT NULL,
    code            text NOT NULL UNIQUE,
    redemption_id   bigint,
    value_minor     bigint NOT NULL CHECK (value_minor > 0),
    min_spend_minor bigint NOT NULL DEFAULT 0 CHECK (min_spend_minor >= 0),
    currency        text NOT NULL,
    state           text NOT NULL DEFAULT 'ISSUED' CHECK (state IN ('ISSUED', 'USED', 'REVOKED')),
    expires_at      timestamptz,
    used_order_id   text,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code)
);

-- Lotteries: the serialized loyalty.mall.v1.Lottery (prize table) plus live prize counters.
CREATE TABLE lotteries (
    lottery_id text PRIMARY KEY,
    enabled    boolean NOT NULL,
    definition bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lottery_prizes (
    lottery_id text NOT NULL,
    prize_id   text NOT NULL,
    stock      bigint CHECK (stock >= 0),  -- NULL: unlimited
    PRIMARY KEY (lottery_id, prize_id)
);

CREATE TABLE lottery_prize_days (
    lottery_id text NOT NULL,
    prize_id   text NOT NULL,
    day        date NOT NULL,
    won        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (lottery_id, prize_id, day)
);

-- Server seeds: the current one is the newest unrevealed; its hash is public from creation.
CREATE TABLE lottery_seeds (
    lottery_id  text NOT NULL,
    seed_id     bigint NOT NULL,
    seed        bytea NOT NULL,
    seed_sha256 text NOT NULL,
    revealed_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lottery_id, seed_id)
);

CREATE TABLE draws (
    user_id      text NOT NULL,
    draw_id      bigint GENERATED ALWAYS AS IDENTITY,
    request_id   text NOT NULL,
    lottery_id   text NOT NULL,
    nonce        bigint NOT NULL,
    seed_id      bigint NOT NULL,
    roll         numeric(20) NOT NULL,   -- an unsigned 64-bit value
    pick         bigint NOT NULL,
    prize_table  jsonb NOT NULL,         -- [[prize_id, weight, available], ...] at draw time
    no_prize_weight bigint NOT NULL,
    prize_id     text NOT NULL DEFAULT '',
    points_won   bigint NOT NULL DEFAULT 0,
    coupon_code  text,
    redemption_id bigint,                -- item prizes: the redemption fulfilling it
    state        text NOT NULL DEFAULT 'DRAWN' CHECK (state IN ('DRAWN', 'COMPLETED', 'FAILED')),
    day          date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, draw_id),
    UNIQUE (user_id, request_id),
    UNIQUE (user_id, lottery_id, nonce)
);
