-- Marks published rows, only while the caller's fencing token holds the
-- shard's relay lease; FOR SHARE waits for a concurrent takeover and then
-- sees the new token.
WITH lease AS (
    SELECT 1 FROM __shard__.relay_lease WHERE fence = $2 FOR SHARE
)
UPDATE __shard__.outbox AS o
SET published_at = now()
FROM lease
WHERE o.id = ANY($1) AND o.published_at IS NULL
