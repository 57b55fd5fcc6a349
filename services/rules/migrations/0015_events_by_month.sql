-- Events by month, step 4 of 4 (docs/scaling.md): `events` becomes a table partitioned by
-- recorded_at. The existing table is attached whole as the partition of everything before its
-- bound (no copy, no scan); the rules service's job (services/common/partitions.py) creates
-- the months from the bound on and drops those past RULES_EVENT_RETENTION_DAYS, and a default
-- partition catches a month not made yet.
-- squawk-ignore renaming-table
ALTER TABLE events RENAME TO events_before_months;
-- squawk-ignore ban-drop-constraint
ALTER TABLE events_before_months DROP CONSTRAINT events_pkey,
    ADD CONSTRAINT events_before_months_pkey PRIMARY KEY USING INDEX events_dated_key;
-- The same columns, defaults and checks (the bound too, so the attach finds it).
CREATE TABLE events (LIKE events_before_months INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (recorded_at);
-- The parent has no partition yet: this key is built on nothing, and the attach below adopts
-- the one step 1 built on the old table.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE events ADD PRIMARY KEY (user_id, event_id, recorded_at);
DO $$
DECLARE
    bound text := substring(pg_get_constraintdef((SELECT oid FROM pg_constraint
        WHERE conname = 'events_before_months' AND conrelid = 'events_before_months'::regclass))
        FROM '''([^'']+)''');
BEGIN
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION events_before_months FOR VALUES FROM (MINVALUE) TO (%L)',
        bound);
END $$;
-- The bound served the attach; later months must not inherit it.
-- squawk-ignore ban-drop-constraint
ALTER TABLE events DROP CONSTRAINT events_before_months;
-- The same indexes as the old table's, which its partition already has: adopted, not built.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX events_recent_by_month ON events (user_id, recorded_at);
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX events_in_review_by_month ON events (recorded_at) WHERE decision = 'REVIEW';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX events_by_device_by_month ON events (device_id, recorded_at) WHERE device_id <> '';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX events_by_ip_by_month ON events (ip, recorded_at) WHERE ip <> '';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX events_recorded_by_month ON events (recorded_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
