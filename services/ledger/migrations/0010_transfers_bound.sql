-- Transfers by month, step 2 of 4: every transfer so far, and any written until the first
-- month of the partitioned table, is before that month. It starts the month after next, so a
-- deploy that spans a month's end cannot refuse a write. NOT VALID: no scan under this lock.
DO $$
BEGIN
    EXECUTE format(
        'ALTER TABLE transfers ADD CONSTRAINT transfers_before_months CHECK (created_at < %L) NOT VALID',
        (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months')::date::text
            || ' 00:00+00');
END $$;
