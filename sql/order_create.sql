-- Commits a batch of one shard's orders with their OrderCreated events in
-- one statement, so each order and its event exist together or not at all,
-- and a batch costs PostgreSQL one statement instead of one per order.
-- Arrays, one element per order: $1 sale_id  $2 user_id  $3 idempotency_key
-- $4 request_hash  $5 quantity  $6 amount_cents  $7 currency
-- $8 payment window (µs)  $9 commit deadline.
-- An order comes back only if it was inserted: not when the buyer's key
-- already made an order (the unique key is the idempotency backstop), nor
-- when its reservation outlived the commit deadline (checked against
-- PostgreSQL's clock: after it the reconciler may have returned its units,
-- and committing would oversell).
WITH input AS (
    SELECT *
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int[], $6::bigint[], $7::text[],
                $8::bigint[], $9::timestamptz[])
         AS t(sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, window_us, deadline)
), o AS (
    INSERT INTO __shard__.orders
        (sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, expires_at)
    SELECT sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency,
           now() + window_us * interval '1 microsecond'
    FROM input
    WHERE clock_timestamp() < deadline
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id, sale_id, user_id, idempotency_key, quantity, amount_cents, currency, status, created_at, expires_at
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.created', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at)
    FROM o
    ORDER BY o.id
)
SELECT id, user_id, idempotency_key, created_at, expires_at FROM o
