-- points:no-transaction
-- Codes are unique per member, the key every lookup uses (a code is 80 random bits, so a
-- repeat across members is not a concern). A unique index must hold the member id for the
-- table to be distributed by member (deploy/citus).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS redemptions_member_code
    ON redemptions (user_id, code) WHERE code IS NOT NULL;
