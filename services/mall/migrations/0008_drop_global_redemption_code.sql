-- points:no-transaction
-- Superseded by redemptions_member_code (0007).
DROP INDEX CONCURRENTLY IF EXISTS redemptions_code;
