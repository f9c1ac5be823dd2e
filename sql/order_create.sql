-- Commits a batch of one database's orders with their OrderCreated events
-- in one statement, so each order and its event exist together or not at
-- all, and a batch costs PostgreSQL one statement instead of one per order
-- or one per shard: a statement's fixed cost (executor start, the
-- allotment's lock and update) is most of an order's when a batch spreads
-- a few orders over each of the database's shards.
--
-- A template: the lines from "-- each shard {" to "-- }" are written once
-- per shard the statement covers, __shard__ its schema and __n__ its
-- number, and __orders__ becomes the union of their o__n__
-- (orderpg.CreateSQL).
--
-- Arrays, one element per order: $1 sale_id  $2 user_id  $3 idempotency_key
-- $4 request_hash  $5 quantity  $6 amount_cents  $7 currency
-- $8 payment window (µs)  $9 commit deadline  $11 the shard's number;
-- $10 the slot of the database's allotment this transaction uses
-- (stock.allotments).
--
-- An order is inserted only if
--   * its reservation is younger than the commit deadline, by PostgreSQL's
--     clock (after it the reconciler may have returned its units, and
--     committing would oversell);
--   * the allotment of the sale in slot $10 still holds its units (its row
--     is locked until commit, and counted in this statement: PostgreSQL
--     refuses a unit Redis wrongly allowed). CHECK allotments_within is
--     the net under the test: a batch it fails is retried order by order,
--     and an order it fails alone is short of units (orderpg);
--   * the buyer's key made no order yet (the unique key is the idempotency
--     backstop).
-- Rows come back for the orders inserted (outcome created, with the new
-- row's columns) and for those refused (late or no-stock); an order with
-- no row is a duplicate. A key that already made an order may come back
-- no-stock rather than duplicate when the allotment is spent: the caller
-- looks it up then.
WITH input AS (
    SELECT *
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int[], $6::bigint[], $7::text[],
                $8::bigint[], $9::timestamptz[], $11::int[]) WITH ORDINALITY
         AS t(sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, window_us, deadline,
              shard, ord)
), timely AS (
    SELECT input.*, sum(quantity) OVER (PARTITION BY sale_id ORDER BY ord) AS upto
    FROM input
    WHERE clock_timestamp() < deadline
), free AS (
    SELECT a.sale_id, a.allotted - a.sold AS units
    FROM stock.allotments a
    WHERE a.sale_id = ANY ($1::bigint[]) AND a.slot = $10
    FOR UPDATE
), granted AS (
    SELECT timely.*
    FROM timely
    JOIN free ON free.sale_id = timely.sale_id
    WHERE timely.upto <= free.units
-- each shard {
), o__n__ AS (
    INSERT INTO __shard__.orders
        (sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, expires_at, allot_slot)
    SELECT sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency,
           now() + window_us * interval '1 microsecond', $10
    FROM granted
    WHERE shard = __n__
    ORDER BY ord
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING id, sale_id, user_id, idempotency_key, quantity, amount_cents, currency, status, created_at, expires_at
), e__n__ AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.created', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at)
    FROM o__n__ AS o
    ORDER BY o.id
-- }
), o AS (
    __orders__
), counted AS (
    UPDATE stock.allotments a
    SET sold = a.sold + n.units, updated_at = now()
    FROM (SELECT sale_id, sum(quantity) AS units FROM o GROUP BY sale_id) n
    WHERE a.sale_id = n.sale_id AND a.slot = $10
)
SELECT 'created', id, user_id, idempotency_key, created_at, expires_at FROM o
UNION ALL
SELECT CASE WHEN timely.ord IS NULL THEN 'late' ELSE 'no-stock' END, NULL, input.user_id, input.idempotency_key, NULL, NULL
FROM input
LEFT JOIN timely ON timely.ord = input.ord
WHERE input.ord NOT IN (SELECT ord FROM granted)
