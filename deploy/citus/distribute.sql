-- Distributes the points schemas on a Citus cluster, following plan.yaml (tests check that the
-- two agree). Run once on the coordinator after `points migrate up` has created the schemas
-- and before traffic: create_distributed_table moves existing rows into shards.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/citus/distribute.sql
-- Shards: 4 per worker core is a sound start (64 for 16 cores); the count is fixed per
-- colocation group, so choose for the largest cluster you expect, then rebalance.
SET citus.shard_count = 64;

-- Reference tables: configuration, copied to every worker.
SELECT create_reference_table('ledger.expiry_runs');
SELECT create_reference_table('rules.rules');
SELECT create_reference_table('rules.rule_versions');
SELECT create_reference_table('rules.cap_groups');
SELECT create_reference_table('rules.campaigns');
SELECT create_reference_table('rules.budgets');
SELECT create_reference_table('rules.budget_usage');
SELECT create_reference_table('rules.tiers');
SELECT create_reference_table('rules.blacklist');
SELECT create_reference_table('rules.config_generation');
SELECT create_reference_table('rules.config_versions');
SELECT create_reference_table('rules.experiments');
SELECT create_reference_table('mall.items');
SELECT create_reference_table('mall.lotteries');
SELECT create_reference_table('mall.lottery_prizes');
SELECT create_reference_table('mall.lottery_seeds');
SELECT create_reference_table('mall.lottery_prize_days');

-- Member-keyed tables, all colocated: a member's rows in every service share a worker. The
-- outbox is partitioned by month; its partitions are distributed with it, and those the
-- services create later are too.
SELECT create_distributed_table('ledger.members', 'user_id');
SELECT create_distributed_table('ledger.lots', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.transfers', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.allocations', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.holds', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.requests', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.outbox', 'member_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('ledger.outbox_sequences', 'member_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.users', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.events', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.awards', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.counters', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.streaks', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.completions', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.referrals', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.invite_rewards', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.user_tiers', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.tier_changes', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.experiment_assignments', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.dead_letters', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.requests', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.outbox', 'member_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('rules.outbox_sequences', 'member_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.users', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.redemptions', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.coupons', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.draws', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.deductions', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.deduction_refunds', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.dead_letters', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.requests', 'user_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.outbox', 'member_id', colocate_with => 'ledger.members');
SELECT create_distributed_table('mall.outbox_sequences', 'member_id', colocate_with => 'ledger.members');
