-- Keeps the published log small: rows published longer ago than the
-- retention.
DELETE FROM __shard__.outbox_published
WHERE published_at < now() - $1::interval
