-- Each event carries its member's number in this service's stream (1, 2, 3... with no gap), so
-- a receiver can tell an event still on its way from one that will never come. The counter
-- row is taken by the transaction that writes the event and held until it commits: a member's
-- numbers follow the order in which their changes commit, and a rolled-back change takes its
-- number back with it. The same trigger stamps occurred_at with the time the event is written,
-- at the end of its change (and after the member's previous event committed), instead of the
-- time its transaction began. And it tells the service's relay there is something to hand on
-- (a notification arrives when the transaction commits; several in one are sent once).
CREATE TABLE outbox_sequences (
    member_id text PRIMARY KEY,  -- '' for program-wide events
    last      bigint NOT NULL
);
ALTER TABLE outbox ADD COLUMN member_seq bigint;
-- Events still waiting to be handed on are numbered now, in the order they were written.
WITH numbered AS (
    SELECT member_id, seq, occurred_at,
           row_number() OVER (PARTITION BY member_id ORDER BY seq) AS n
    FROM outbox WHERE published_at IS NULL
)
UPDATE outbox o SET member_seq = numbered.n FROM numbered
WHERE o.member_id = numbered.member_id AND o.seq = numbered.seq
  AND o.occurred_at = numbered.occurred_at;
INSERT INTO outbox_sequences (member_id, last)
SELECT member_id, max(member_seq) FROM outbox WHERE member_seq IS NOT NULL GROUP BY member_id;
CREATE FUNCTION outbox_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written timestamptz;
BEGIN
    INSERT INTO outbox_sequences AS s (member_id, last) VALUES (NEW.member_id, 1)
    ON CONFLICT (member_id) DO UPDATE SET last = s.last + 1
    RETURNING last INTO NEW.member_seq;
    written := clock_timestamp();
    -- The row's month partition was chosen before this trigger ran: a row may not move to
    -- another, so at a month's turn the transaction's start time stays.
    IF date_trunc('month', written AT TIME ZONE 'UTC')
       = date_trunc('month', NEW.occurred_at AT TIME ZONE 'UTC') THEN
        NEW.occurred_at := written;
    END IF;
    PERFORM pg_notify('points_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NEW;
END $$;
-- Fires after outbox_member_key (triggers fire in name order), which fills in member_id.
CREATE TRIGGER outbox_number BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_number();
