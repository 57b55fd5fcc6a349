-- Experiments: the serialized loyalty.rules.v1.Experiment, its status kept beside it for the
-- program's snapshot. A running experiment is part of the program (its shares decide new
-- members' arms), so a change bumps the configuration's generation like any rule's.
CREATE TABLE experiments (
    experiment_id text PRIMARY KEY,
    definition    bytea NOT NULL,
    status        text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'RUNNING', 'CONCLUDED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER experiments_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON experiments
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();

-- A member's arm, fixed at their first event while the experiment runs (assigned_at is that
-- event's time): later shares never move it.
CREATE TABLE experiment_assignments (
    experiment_id text NOT NULL,
    user_id       text NOT NULL,
    arm_id        text NOT NULL,
    assigned_at   timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, user_id)
);

-- The experiment and arm that decided an award ('' when none did).
ALTER TABLE awards ADD COLUMN experiment_id text NOT NULL DEFAULT '';
ALTER TABLE awards ADD COLUMN arm_id text NOT NULL DEFAULT '';
