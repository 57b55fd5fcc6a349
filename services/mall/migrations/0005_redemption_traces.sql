-- The trace of the request that started a redemption (W3C traceparent), so recovery of a saga
-- an outage left unfinished links back to the redemption's own trace.
ALTER TABLE redemptions ADD COLUMN traceparent text;
