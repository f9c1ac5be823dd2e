-- The oldest unpublished rows, which are all the outbox holds: published
-- rows are deleted or moved out (published_at stays NULL; the column is
-- kept for binaries from before migration 8). Rows are never skipped by an
-- offset, so a transaction that commits after a later id is picked up by a
-- later read; the events of one order are written by transactions that
-- follow each other, so their ids keep the order's own order.
SELECT id, event_id, aggregate_id, event_type, payload, created_at
FROM __shard__.outbox
ORDER BY id
LIMIT $1
