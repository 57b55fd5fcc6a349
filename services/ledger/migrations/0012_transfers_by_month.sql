-- Transfers by month, step 4 of 4 (docs/scaling.md): `transfers` becomes a table partitioned by
-- created_at. The existing table is attached whole as the partition of everything before its
-- bound (no copy, no scan: steps 1 to 3 prepared the key and the bound); the ledger's job
-- (services/common/partitions.py) creates the months from the bound on, and a default
-- partition catches a month not made yet. Transfer ids keep counting from the last one.
-- squawk-ignore renaming-table
ALTER TABLE transfers RENAME TO transfers_before_months;
-- squawk-ignore ban-drop-constraint
ALTER TABLE transfers_before_months DROP CONSTRAINT transfers_pkey,
    ADD CONSTRAINT transfers_before_months_pkey PRIMARY KEY USING INDEX transfers_dated_key;
-- The same columns, defaults and checks (the bound too, so the attach finds it). The
-- partitioned table issues the ids from now on, going on from the last one issued (read from
-- the sequence: max(transfer_id) would scan the table under this lock).
DO $$
DECLARE
    next_id bigint := coalesce(pg_sequence_last_value(
        pg_get_serial_sequence('transfers_before_months', 'transfer_id')), 0) + 1;
BEGIN
    ALTER TABLE transfers_before_months ALTER transfer_id DROP IDENTITY;
    CREATE TABLE transfers (LIKE transfers_before_months INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        PARTITION BY RANGE (created_at);
    ALTER TABLE transfers ALTER transfer_id ADD GENERATED ALWAYS AS IDENTITY;
    PERFORM setval(pg_get_serial_sequence('transfers', 'transfer_id'), next_id, false);
END $$;
-- The parent has no partition yet: this key is built on nothing, and the attach below adopts
-- the one step 1 built on the old table.
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE transfers ADD PRIMARY KEY (user_id, transfer_id, created_at);
DO $$
DECLARE
    bound text := substring(pg_get_constraintdef((SELECT oid FROM pg_constraint
        WHERE conname = 'transfers_before_months' AND conrelid = 'transfers_before_months'::regclass))
        FROM '''([^'']+)''');
BEGIN
    EXECUTE format(
        'ALTER TABLE transfers ATTACH PARTITION transfers_before_months FOR VALUES FROM (MINVALUE) TO (%L)',
        bound);
END $$;
-- The bound served the attach; the partition's own range now says it, and later months must
-- not inherit it.
-- squawk-ignore ban-drop-constraint
ALTER TABLE transfers DROP CONSTRAINT transfers_before_months;
-- The table is new and its one partition already has this index (transfers_created): adopted.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX transfers_by_time ON transfers (created_at);
CREATE TABLE transfers_default PARTITION OF transfers DEFAULT;
