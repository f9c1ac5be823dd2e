-- Records that consumer $1 applies event $2, in the transaction of the
-- effect. No row is inserted when the event was applied before: the caller
-- skips the effect. A concurrent delivery of the same event waits here for
-- the first transaction and then finds its row.
INSERT INTO inbox (consumer, event_id, event_type)
VALUES ($1, $2, $3)
ON CONFLICT (consumer, event_id) DO NOTHING
