-- Events by month, step 2 of 4: every event so far, and any recorded until the first month of
-- the partitioned table, is before that month (the month after next, so a deploy that spans a
-- month's end cannot refuse an event). NOT VALID: no scan under this lock.
DO $$
BEGIN
    EXECUTE format(
        'ALTER TABLE events ADD CONSTRAINT events_before_months CHECK (recorded_at < %L) NOT VALID',
        (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months')::date::text
            || ' 00:00+00');
END $$;
