-- Commits a batch of one shard's orders with their OrderCreated events in
-- one statement, so each order and its event exist together or not at all,
-- and a batch costs PostgreSQL one statement instead of one per order.
-- Arrays, one element per order: $1 sale_id  $2 user_id  $3 idempotency_key
-- $4 request_hash  $5 quantity  $6 amount_cents  $7 currency
-- $8 payment window (µs)  $9 commit deadline.
--
-- An order is inserted only if
--   * its reservation is younger than the commit deadline, by PostgreSQL's
--     clock (after it the reconciler may have returned its units, and
--     committing would oversell);
--   * this database's allotment of the sale still holds its units (the
--     allotment row is locked until commit, and counted in this statement:
--     PostgreSQL refuses a unit Redis wrongly allowed);
--   * the buyer's key made no order yet (the unique key is the idempotency
--     backstop).
-- One row comes back per order, in input order: its outcome (created,
-- duplicate, late or no-stock, judged in that order) and, when created,
-- the new row's columns.
WITH input AS (
    SELECT *
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int[], $6::bigint[], $7::text[],
                $8::bigint[], $9::timestamptz[]) WITH ORDINALITY
         AS t(sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, window_us, deadline, ord)
), known AS (
    -- Keys that already made an order: a retry replays it, whatever the
    -- stock, so it takes no units.
    SELECT input.ord
    FROM input
    JOIN __shard__.orders x ON x.user_id = input.user_id AND x.idempotency_key = input.idempotency_key
), timely AS (
    SELECT input.*, sum(quantity) OVER (PARTITION BY sale_id ORDER BY ord) AS upto
    FROM input
    WHERE clock_timestamp() < deadline AND ord NOT IN (SELECT ord FROM known)
), free AS (
    SELECT a.sale_id, a.allotted - a.sold AS units
    FROM stock.allotments a
    WHERE a.sale_id = ANY ($1::bigint[])
    FOR UPDATE
), granted AS (
    SELECT timely.*
    FROM timely
    JOIN free ON free.sale_id = timely.sale_id
    WHERE timely.upto <= free.units
), o AS (
    INSERT INTO __shard__.orders
        (sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, expires_at)
    SELECT sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency,
           now() + window_us * interval '1 microsecond'
    FROM granted
    ORDER BY ord
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id, sale_id, user_id, idempotency_key, quantity, amount_cents, currency, status, created_at, expires_at
), counted AS (
    UPDATE stock.allotments a
    SET sold = a.sold + n.units, updated_at = now()
    FROM (SELECT sale_id, sum(quantity) AS units FROM o GROUP BY sale_id) n
    WHERE a.sale_id = n.sale_id
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.created', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at)
    FROM o
    ORDER BY o.id
), first AS (
    -- A key twice in one batch makes one order: it is the first's.
    SELECT ord, row_number() OVER (PARTITION BY user_id, idempotency_key ORDER BY ord) = 1 AS first
    FROM input
)
SELECT input.ord,
       CASE WHEN o.id IS NOT NULL AND first.first THEN 'created'
            WHEN known.ord IS NOT NULL THEN 'duplicate'
            WHEN timely.ord IS NULL THEN 'late'
            WHEN granted.ord IS NULL THEN 'no-stock'
            ELSE 'duplicate' END,
       o.id, o.created_at, o.expires_at
FROM input
JOIN first ON first.ord = input.ord
LEFT JOIN known ON known.ord = input.ord
LEFT JOIN timely ON timely.ord = input.ord
LEFT JOIN granted ON granted.ord = input.ord
LEFT JOIN o ON o.user_id = input.user_id AND o.idempotency_key = input.idempotency_key
ORDER BY input.ord
