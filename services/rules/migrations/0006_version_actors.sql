-- Who saved each version of a rule, campaign, tier or budget ('' before this was recorded).
ALTER TABLE rule_versions ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE config_versions ADD COLUMN actor text NOT NULL DEFAULT '';
