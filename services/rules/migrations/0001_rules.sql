-- Rules & risk. Per-user tables have user_id first in their primary key.

-- Rule definitions (the serialized loyalty.rules.v1.Rule), plus the columns we query by.
CREATE TABLE rules (
    rule_id    text PRIMARY KEY,
    event_type text NOT NULL,
    enabled    boolean NOT NULL,
    version    integer NOT NULL,
    definition bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every version of every campaign, tier and budget, kept (rules have rule_versions).
CREATE TABLE config_versions (
    kind       text NOT NULL CHECK (kind IN ('campaign', 'tier', 'budget')),
    id         text NOT NULL,
    version    integer NOT NULL,
    definition bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id, version)
);

-- Every version of every rule, kept: awards name the version that produced them.
CREATE TABLE rule_versions (
    rule_id    text NOT NULL,
    version    integer NOT NULL,
    definition bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);
CREATE INDEX rules_by_event ON rules (event_type) WHERE enabled;

CREATE TABLE cap_groups (
    name      text PRIMARY KEY,
    daily_cap bigint NOT NULL CHECK (daily_cap > 0)
);

CREATE TABLE blacklist (
    kind       text NOT NULL CHECK (kind IN ('USER', 'DEVICE', 'IP')),
    value      text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- One row per user: locked by every event of that user, so counters stay exact.
CREATE TABLE users (
    user_id    text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Recorded events: idempotency (payload hash + the response to replay) and velocity.
CREATE TABLE events (
    user_id        text NOT NULL,
    event_id       text NOT NULL,
    event_type     text NOT NULL,
    payload_sha256 bytea NOT NULL,
    response       bytea NOT NULL,
    occurred_at    timestamptz NOT NULL,
    device_id      text NOT NULL DEFAULT '',
    ip             text NOT NULL DEFAULT '',
    decision       text NOT NULL DEFAULT 'ALLOW',
    risk_reasons   text[] NOT NULL DEFAULT '{}',
    amount_minor   bigint NOT NULL DEFAULT 0,  -- purchases: the amount paid
    currency       text NOT NULL DEFAULT '',
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX events_recent ON events (user_id, recorded_at);

-- Points and counts earned per user per scope ("rule:<id>", "group:<name>") per period
-- ("day:YYYY-MM-DD", "life").
CREATE TABLE counters (
    user_id text NOT NULL,
    scope   text NOT NULL,
    period  text NOT NULL,
    points  bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    PRIMARY KEY (user_id, scope, period)
);

CREATE TABLE streaks (
    user_id  text NOT NULL,
    rule_id  text NOT NULL,
    last_day date NOT NULL,
    length   integer NOT NULL CHECK (length > 0),
    PRIMARY KEY (user_id, rule_id)
);

-- Tasks done: once per user (item_id '') or once per item.
CREATE TABLE completions (
    user_id  text NOT NULL,
    rule_id  text NOT NULL,
    item_id  text NOT NULL,
    event_id text NOT NULL,
    PRIMARY KEY (user_id, rule_id, item_id)
);

-- Awards and the ledger calls that settle them (an outbox): written in the event's
-- transaction, sent to the ledger after commit, retried until the ledger confirms.
CREATE TABLE awards (
    user_id      text NOT NULL,
    event_id     text NOT NULL,
    rule_id      text NOT NULL,
    rule_version integer NOT NULL DEFAULT 0,
    points       bigint NOT NULL CHECK (points > 0),
    campaign_points bigint NOT NULL DEFAULT 0,  -- of points, added by tier and campaigns
    campaign_ids text[] NOT NULL DEFAULT '{}',
    order_id     text NOT NULL DEFAULT '',
    matures_at   timestamptz,
    expires_at   timestamptz,
    transfer_id  text,          -- the ledger's credit, once confirmed
    reversed_by  text,          -- the refund event that took it back
    reversed     boolean NOT NULL DEFAULT false,  -- the ledger confirmed the reversal
    -- '' (no review), or an operator's decision on an event decided REVIEW.
    review       text NOT NULL DEFAULT '' CHECK (review IN ('', 'PENDING', 'APPROVED', 'REJECTED')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id, rule_id)
);
CREATE INDEX awards_unsettled ON awards (created_at)
    WHERE review IN ('', 'APPROVED')
      AND (transfer_id IS NULL OR (reversed_by IS NOT NULL AND NOT reversed));
CREATE INDEX awards_by_order ON awards (user_id, order_id) WHERE order_id <> '';

-- Campaigns (the serialized loyalty.rules.v1.Campaign) and points budgets.
CREATE TABLE campaigns (
    campaign_id text PRIMARY KEY,
    enabled     boolean NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    definition  bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE budgets (
    budget_id  text PRIMARY KEY,
    definition bytea NOT NULL,
    global     boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Points issued against a budget per period. Rows are locked in budget-id order after the
-- user's row, so concurrent awards never overspend and never deadlock.
CREATE TABLE budget_usage (
    budget_id  text NOT NULL,
    period_key text NOT NULL,
    used       bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (budget_id, period_key)
);

-- Risk review and cross-account signals.
CREATE INDEX events_in_review ON events (recorded_at) WHERE decision = 'REVIEW';
CREATE INDEX events_by_device ON events (device_id, recorded_at) WHERE device_id <> '';
CREATE INDEX events_by_ip ON events (ip, recorded_at) WHERE ip <> '';

-- Invitations: who invited whom (a forest: no loops), and which invite rewards were paid.
CREATE TABLE referrals (
    user_id     text PRIMARY KEY,   -- the invitee
    referrer_id text NOT NULL CHECK (referrer_id <> user_id),
    event_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referrals_by_referrer ON referrals (referrer_id, created_at);

CREATE TABLE invite_rewards (
    user_id    text NOT NULL,       -- the referrer
    invitee_id text NOT NULL,
    rule_id    text NOT NULL,
    PRIMARY KEY (user_id, invitee_id, rule_id)
);

-- Tiers (the serialized loyalty.rules.v1.Tier) and each user's current tier with its history.
CREATE TABLE tiers (
    tier_id        text PRIMARY KEY,
    min_points_12m bigint NOT NULL CHECK (min_points_12m >= 0),
    definition     bytea NOT NULL
);

CREATE TABLE user_tiers (
    user_id      text PRIMARY KEY,
    tier_id      text NOT NULL,
    evaluated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tier_changes (
    user_id      text NOT NULL,
    change_id    bigint GENERATED ALWAYS AS IDENTITY,
    from_tier_id text NOT NULL,
    to_tier_id   text NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, change_id)
);
CREATE INDEX awards_recent ON awards (user_id, created_at);
CREATE INDEX events_recorded ON events (recorded_at);
CREATE INDEX awards_created ON awards (created_at);
