-- Operators list every member's redemptions, newest first (ListRedemptions all_members).
CREATE INDEX redemptions_recent ON redemptions (redemption_id);
