-- Keeps the outbox small: rows published longer ago than the retention.
DELETE FROM __shard__.outbox
WHERE published_at < now() - $1::interval
