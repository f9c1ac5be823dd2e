-- Moves published rows to outbox_published (cheaper than marking them in
-- place: see migration shard/000007), only while the caller's fencing
-- token holds the shard's relay lease; FOR SHARE waits for a concurrent
-- takeover and then sees the new token. Its row count is the rows moved.
WITH lease AS (
    SELECT 1 FROM __shard__.relay_lease WHERE fence = $2 FOR SHARE
), moved AS (
    DELETE FROM __shard__.outbox AS o
    USING lease
    WHERE o.id = ANY($1)
    RETURNING o.id, o.event_id, o.aggregate_id, o.event_type, o.payload, o.txid, o.created_at
)
INSERT INTO __shard__.outbox_published (id, event_id, aggregate_id, event_type, payload, txid, created_at, published_at)
SELECT id, event_id, aggregate_id, event_type, payload, txid, created_at, now()
FROM moved
