-- What an award's extra points came from, so campaign costs add up: campaign_shares[i] is
-- what campaign_ids[i] added, tier_points what the tier multiplier added. Awards written
-- before this migration have no shares; reports split their extra evenly between their
-- campaigns (exact when one campaign applied, as it usually did).
ALTER TABLE awards ADD COLUMN campaign_shares bigint[];
ALTER TABLE awards ADD COLUMN tier_points bigint NOT NULL DEFAULT 0;
-- When the event happened: a tier's rolling year counts awards by it, not by when the event
-- was reported (NULL on older awards: their created_at stands in).
ALTER TABLE awards ADD COLUMN occurred_at timestamptz;
