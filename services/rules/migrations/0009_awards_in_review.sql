-- points:no-transaction
-- Awards waiting for an operator's decision (the review-queue gauge and the reviews listing),
-- built without blocking the writes of a live program.
CREATE INDEX CONCURRENTLY IF NOT EXISTS awards_in_review ON awards (user_id, event_id)
    WHERE review = 'PENDING';
