-- Deletes published rows and keeps no copy (outbox-retention 0: Kafka's
-- own log is the record of what was sent), only while the caller's fencing
-- token holds the shard's relay lease, as outbox_mark does; FOR SHARE waits
-- for a concurrent takeover and then sees the new token. Its row count is
-- the rows deleted.
WITH lease AS (
    SELECT 1 FROM __shard__.relay_lease WHERE fence = $2 FOR SHARE
)
DELETE FROM __shard__.outbox AS o
USING lease
WHERE o.id = ANY($1)
