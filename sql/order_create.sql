-- Commits one order and its OrderCreated event in the same statement, so
-- they exist together or not at all. No row comes back when the buyer's key
-- already made an order (the unique key is the idempotency backstop) or
-- when the reservation outlived the commit deadline ($9): after that the
-- reconciler may have returned its units, and committing would oversell.
WITH o AS (
    INSERT INTO __shard__.orders
        (sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, expires_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, now() + $8::interval
    WHERE clock_timestamp() < $9
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id, sale_id, user_id, quantity, amount_cents, currency, status, created_at, expires_at
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.created', jsonb_build_object(
        'schema_version', 1,
        'order_id', o.id::text,
        'sale_id', o.sale_id::text,
        'user_id', o.user_id,
        'quantity', o.quantity,
        'amount_cents', o.amount_cents,
        'currency', o.currency,
        'status', o.status,
        'created_at', o.created_at,
        'expires_at', o.expires_at)
    FROM o
)
SELECT id, created_at, expires_at FROM o
