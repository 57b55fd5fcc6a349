-- The outbox keyed by member and partitioned by month (docs/scaling.md, deploy/citus).
-- Its primary key holds the member (Citus distributes it with the member's other rows) and the
-- month (old months are dropped whole: services/common/partitions.py keeps months ahead and
-- drops those past OUTBOX_RETENTION_DAYS once every event in them is handed on). Events not yet
-- handed on move over; those already handed on are dropped with the old table: the webhooks
-- service keeps its own copy of every event for replays.
-- squawk-ignore renaming-table
ALTER TABLE outbox RENAME TO outbox_before_months;
-- squawk-ignore renaming-object
ALTER INDEX outbox_unpublished RENAME TO outbox_before_months_unpublished;
CREATE SEQUENCE outbox_seq AS bigint;
SELECT setval('outbox_seq', (SELECT coalesce(max(seq), 0) + 1 FROM outbox_before_months), false);
CREATE TABLE outbox_by_month (
    member_id    text NOT NULL,  -- '' for a program-wide event (a budget exhausted)
    seq          bigint NOT NULL DEFAULT nextval('outbox_seq'),
    event_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    type         text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    data         jsonb NOT NULL,
    published_at timestamptz,
    PRIMARY KEY (member_id, seq, occurred_at)
) PARTITION BY RANGE (occurred_at);
-- squawk-ignore renaming-table
ALTER TABLE outbox_by_month RENAME TO outbox;
ALTER SEQUENCE outbox_seq OWNED BY outbox.seq;
-- The safety net for a month no partition covers yet (the job keeps three months ahead).
CREATE TABLE outbox_default PARTITION OF outbox DEFAULT;
DO $$
DECLARE
    first_day date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    starts date;
BEGIN
    FOR ahead IN 0..3 LOOP
        starts := (first_day + make_interval(months => ahead))::date;
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF outbox FOR VALUES FROM (%L) TO (%L)',
            'outbox_' || to_char(starts, 'YYYY_MM'),
            starts::text || ' 00:00+00',
            (starts + interval '1 month')::date::text || ' 00:00+00');
    END LOOP;
END $$;
-- The table is new and empty: nothing waits on this index.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
-- A replica of the previous release, during a rolling deploy, writes NULL for a program-wide
-- event; the key column takes '' instead.
CREATE FUNCTION outbox_member_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.member_id := coalesce(NEW.member_id, '');
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_member_key BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_member_key();
INSERT INTO outbox (member_id, seq, event_id, type, occurred_at, data)
SELECT coalesce(member_id, ''), seq, event_id, type, occurred_at, data
FROM outbox_before_months WHERE published_at IS NULL;
-- squawk-ignore ban-drop-table
DROP TABLE outbox_before_months;
-- squawk-ignore renaming-object
ALTER INDEX outbox_by_month_pkey RENAME TO outbox_pkey;
