-- An event's transaction opens with one call instead of one round trip per read. The function
-- locks the member (creating them if new), then reads everything the evaluation of a common
-- event needs. Each read is its own statement: inside a (volatile) function every statement
-- takes a fresh snapshot, so the reads see what the member's previous event committed while
-- this one waited for the lock. One statement that both locks and reads would not: its
-- snapshot is taken before the wait. Which counters, budgets and streaks to read is the
-- caller's guess from the program it has cached; it reads any other one on its own
-- (services/rules/event_state.py).

-- The risk signals of an event: blacklist entries matching it, the member's events of the last
-- minute, and the accounts seen on its device and IP in the last day (this one included).
-- (PL/pgSQL, not SQL: its plans are kept for the session instead of made on every call.)
CREATE FUNCTION risk_signals(p_user text, p_device text, p_ip text,
                             OUT blacklisted text[], OUT recent bigint,
                             OUT device_accounts bigint, OUT ip_accounts bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    blacklisted := ARRAY(
        SELECT kind FROM blacklist
        WHERE (expires_at IS NULL OR expires_at > now())
          AND ((kind = 'USER' AND value = p_user)
               OR (kind = 'DEVICE' AND value = p_device AND p_device <> '')
               OR (kind = 'IP' AND value = p_ip AND p_ip <> ''))
        ORDER BY kind);
    SELECT count(*) INTO recent FROM events
    WHERE user_id = p_user AND recorded_at > now() - interval '1 min';
    device_accounts := 0;
    IF p_device <> '' THEN
        SELECT count(*) INTO device_accounts FROM (
            SELECT user_id FROM events
            WHERE device_id = p_device AND recorded_at > now() - interval '1 day'
            UNION SELECT p_user
        ) accounts;
    END IF;
    ip_accounts := 0;
    IF p_ip <> '' THEN
        SELECT count(*) INTO ip_accounts FROM (
            SELECT user_id FROM events
            WHERE ip = p_ip AND recorded_at > now() - interval '1 day'
            UNION SELECT p_user
        ) accounts;
    END IF;
END $$;

-- Counters are read as (scope, period) pairs of the member's, budgets as (budget_id,
-- period_key) pairs, streaks by rule id. A pair with no row comes back with 0 (a streak with
-- no row is left out). A replay (the event id was recorded before) reads nothing more.
CREATE FUNCTION open_event(
    p_user text, p_event text, p_device text, p_ip text,
    p_scopes text[], p_periods text[],
    p_budgets text[], p_budget_periods text[],
    p_streak_rules text[],
    OUT at timestamptz, OUT generation bigint,
    OUT prior_sha256 bytea, OUT prior_response bytea,
    OUT blacklisted text[], OUT recent bigint, OUT device_accounts bigint,
    OUT ip_accounts bigint,
    OUT since timestamptz, OUT tier_id text,
    OUT counted bigint[], OUT budget_used bigint[],
    OUT streak_rules text[], OUT streak_days date[], OUT streak_lengths integer[]
) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO users AS u (user_id) VALUES (p_user)
    ON CONFLICT (user_id) DO UPDATE SET created_at = u.created_at
    RETURNING u.created_at INTO since;
    at := now();
    SELECT g.generation INTO generation FROM config_generation g;
    SELECT e.payload_sha256, e.response INTO prior_sha256, prior_response
    FROM events e WHERE e.user_id = p_user AND e.event_id = p_event;
    IF prior_sha256 IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT * INTO blacklisted, recent, device_accounts, ip_accounts
    FROM risk_signals(p_user, p_device, p_ip);
    SELECT coalesce((SELECT t.tier_id FROM user_tiers t WHERE t.user_id = p_user), '')
    INTO tier_id;
    SELECT array_agg(coalesce(c.points, 0) ORDER BY k.n) INTO counted
    FROM unnest(p_scopes, p_periods) WITH ORDINALITY AS k(scope, period, n)
    LEFT JOIN counters c ON c.user_id = p_user AND c.scope = k.scope AND c.period = k.period;
    SELECT array_agg(coalesce(b.used, 0) ORDER BY k.n) INTO budget_used
    FROM unnest(p_budgets, p_budget_periods) WITH ORDINALITY AS k(budget_id, period_key, n)
    LEFT JOIN budget_usage b ON b.budget_id = k.budget_id AND b.period_key = k.period_key;
    SELECT array_agg(s.rule_id), array_agg(s.last_day), array_agg(s.length)
    INTO streak_rules, streak_days, streak_lengths
    FROM streaks s WHERE s.user_id = p_user AND s.rule_id = ANY (p_streak_rules);
END $$;
