-- Opening balances from another system (`points import balances`, services/balance_import.py),
-- one chunk of the file per transaction. The CLI checks each row's form, streams the chunk with
-- COPY into the temporary table import_rows (made by the same transaction, dropped at commit):
--   line bigint, user_id text, points bigint, expires_at timestamptz (NULL: the policy's),
--   reference text, request_id text, payload_sha256 bytea
-- and calls import_balances once. It applies the chunk set-based, each row exactly once by its
-- request id, and returns the rows it did not apply: 'already' (imported by an earlier run, or
-- the same row earlier in the file) or 'refused' with the reason. Refused rows record nothing,
-- so a corrected row imports later under the same request id.
CREATE FUNCTION import_balances(import_id text, issuance text, default_expiry timestamptz)
RETURNS TABLE (line bigint, outcome text, reason text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    notified bigint;
BEGIN
    -- Statistics of the chunk, so the planner probes the requests' key for each row instead
    -- of scanning every request ever recorded.
    ANALYZE import_rows;
    -- The chunk's members are locked in one order, as every batch of the ledger locks them:
    -- a concurrent batch touching the same members waits, and none deadlocks.
    INSERT INTO members AS m (user_id)
    SELECT DISTINCT r.user_id FROM import_rows r ORDER BY 1
    ON CONFLICT (user_id) DO UPDATE SET updated_at = m.updated_at;

    -- Each row's fate. A row whose key is recorded is 'already' imported when its payload is
    -- the same ('reused' otherwise); a key recorded by an earlier release's import (method
    -- 'Credit') hashed another form of the payload, and is taken as the same row. A row
    -- repeating an earlier line's key is that line again, or 'reused' if it disagrees.
    CREATE TEMPORARY TABLE import_fates ON COMMIT DROP AS
    WITH ranked AS (
        SELECT r.line, r.user_id, r.request_id, r.payload_sha256, r.expires_at,
               first_value(r.line) OVER w AS first_line,
               first_value(r.payload_sha256) OVER w AS first_payload
        FROM import_rows r
        WINDOW w AS (PARTITION BY r.user_id, r.request_id ORDER BY r.line)
    )
    SELECT k.line,
           CASE
               WHEN k.first_payload <> k.payload_sha256 THEN 'reused'
               WHEN q.request_id IS NOT NULL AND (q.method = 'Credit'
                    OR (q.method = 'ImportBalance' AND q.payload_sha256 = k.payload_sha256))
                   THEN 'already'
               WHEN q.request_id IS NOT NULL THEN 'reused'
               WHEN coalesce(k.expires_at, default_expiry) <= now() THEN 'expired'
               WHEN k.first_line <> k.line THEN 'already'
               ELSE 'apply'
           END AS fate
    FROM ranked k
    LEFT JOIN requests q ON q.user_id = k.user_id AND q.request_id = k.request_id;

    -- The applied rows: the request, the transfer, the lot, the event, the member's totals.
    WITH todo AS (
        SELECT r.*, coalesce(r.expires_at, default_expiry) AS expires
        FROM import_rows r JOIN import_fates f USING (line) WHERE f.fate = 'apply'
    ), claimed AS (
        INSERT INTO requests (user_id, request_id, method, payload_sha256)
        SELECT t.user_id, t.request_id, 'ImportBalance', t.payload_sha256 FROM todo t
    ), made AS (
        INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                               request_id, reason_code, metadata)
        SELECT t.user_id, 'EARN', 'issuance:' || issuance, 'member', t.points, t.request_id,
               'OPENING_BALANCE',
               jsonb_build_object('import', import_id, 'line', t.line::text,
                                  'reference', t.reference)
        FROM todo t ORDER BY t.line
        RETURNING user_id, transfer_id, request_id, amount
    ), lots_made AS (
        INSERT INTO lots (user_id, transfer_id, source, granted, remaining, expires_at)
        SELECT m.user_id, m.transfer_id, issuance, m.amount, m.amount, t.expires
        FROM made m JOIN todo t USING (user_id, request_id)
    ), events AS (
        -- As the ledger's own credits describe themselves (services/ledger/events.py), with
        -- times in RFC 3339 UTC. Ordered by member: each member's counter row is taken once.
        INSERT INTO outbox (type, member_id, data)
        SELECT 'points.credited', m.user_id,
               jsonb_build_object(
                   'transfer_id', m.transfer_id, 'amount', m.amount,
                   'reason_code', 'OPENING_BALANCE', 'source', issuance,
                   'expires_at', to_char(t.expires AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS')
                       || CASE WHEN extract(microseconds FROM t.expires)::bigint % 1000000 = 0
                               THEN '' ELSE to_char(t.expires AT TIME ZONE 'UTC', '.US') END
                       || 'Z')
        FROM made m JOIN todo t USING (user_id, request_id)
        ORDER BY m.user_id, m.transfer_id
    ), totals AS (
        UPDATE members m SET balance = m.balance + p.amount, earned = m.earned + p.amount,
                             updated_at = now()
        FROM (SELECT t.user_id, sum(t.points)::bigint AS amount FROM todo t GROUP BY 1) p
        WHERE m.user_id = p.user_id
    )
    -- Balance watchers hear about each changed member when the transaction commits.
    SELECT count(pg_notify('ledger_balance', u.user_id)) INTO notified
    FROM (SELECT DISTINCT t.user_id FROM todo t) u;

    RETURN QUERY
    SELECT f.line, CASE WHEN f.fate = 'already' THEN 'already' ELSE 'refused' END,
           CASE f.fate
               WHEN 'expired' THEN 'INVALID_ARGUMENT: expire_time must be in the future'
               WHEN 'reused' THEN 'IDEMPOTENCY_KEY_REUSED: this member and reference were '
                   || 'imported with other points or another expiry'
               ELSE '' END
    FROM import_fates f WHERE f.fate <> 'apply' ORDER BY f.line;
END $$;
