-- The operators' audit log: every admin change made through the gateway, append-only and
-- hash-chained (each hash covers the entry before), so a changed or removed entry shows.
CREATE TABLE audit_log (
    seq           bigint PRIMARY KEY,
    entry_id      text NOT NULL UNIQUE,
    actor         text NOT NULL,
    roles         text[] NOT NULL,
    action        text NOT NULL,
    target        text NOT NULL,
    request_json  text NOT NULL,
    response_json text NOT NULL,
    status        integer NOT NULL,
    ip            text NOT NULL,
    user_agent    text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

-- Append-only: nothing updates or deletes an entry (only a superuser disabling this
-- trigger could, and the hash chain then shows it).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
