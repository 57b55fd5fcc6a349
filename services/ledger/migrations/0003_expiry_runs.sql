-- Every expiry run (the schedule's or an operator's): when, as of when, and what it expired.
CREATE TABLE expiry_runs (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  text NOT NULL,
    as_of       timestamptz NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    lots        bigint NOT NULL,
    points      bigint NOT NULL,
    members     bigint NOT NULL
);
