INSERT INTO outbox (id, event_id, aggregate_id, event_type, payload, txid, created_at, published_at)
OVERRIDING SYSTEM VALUE
SELECT id, event_id, aggregate_id, event_type, payload, txid, created_at, published_at
FROM outbox_published;
DROP TABLE outbox_published;
