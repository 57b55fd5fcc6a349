-- Coupons are found by (user_id, code), their primary key; a code unique across members
-- would keep the table from being distributed by member (deploy/citus). No reader relies on
-- the wider guarantee: every lookup names the member.
-- squawk-ignore ban-drop-constraint
ALTER TABLE coupons DROP CONSTRAINT IF EXISTS coupons_code_key;
