-- One counter that every change to the program's configuration bumps. Each rules process keeps
-- the configuration in memory and reads this counter in the statement that locks the user, so a
-- change is seen by the very next event in every process, without reloading it per event.
CREATE TABLE config_generation (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO config_generation (generation) VALUES (1);

-- The function keeps the service's schema (the migration's search_path), so a change made from
-- any session, psql included, bumps this schema's counter.
CREATE FUNCTION bump_config_generation() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE config_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER cap_groups_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cap_groups
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER campaigns_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON campaigns
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER budgets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON budgets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER tiers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tiers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
