-- Published outbox rows move here instead of being marked in place. An
-- update of published_at writes a new version of the row and an entry in
-- each of the outbox's indexes (published_at is in the predicate of the
-- unpublished index, so no update is HOT); a delete and an append to this
-- unindexed table cost PostgreSQL less. Rows stay for outbox-retention, so
-- that operators can see what was sent; the block-range index keeps the
-- prune's scan short.
CREATE TABLE outbox_published (
    id           bigint      NOT NULL,
    event_id     uuid        NOT NULL,
    aggregate_id bigint      NOT NULL,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    txid         xid8        NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz NOT NULL
);
CREATE INDEX outbox_published_at_idx ON outbox_published USING brin (published_at);

INSERT INTO outbox_published
SELECT id, event_id, aggregate_id, event_type, payload, txid, created_at, published_at
FROM outbox WHERE published_at IS NOT NULL;
DELETE FROM outbox WHERE published_at IS NOT NULL;
