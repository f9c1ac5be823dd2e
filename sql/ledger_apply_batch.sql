-- Applies a batch of order events to the ledger in one statement: $1..$7
-- hold, per event in message order, its id, sale, order, kind, quantity,
-- delta and reason. An event whose id,
-- or whose order's transition (created, paid, released), is already
-- recorded changes nothing, and neither does such a second one within the
-- batch: entries are inserted in message order, so the first one counts.
-- Each sale's counters are then updated once, by the sum of its new
-- entries, in sale order, so that concurrent batches over the same sales
-- lock them in one order. It returns the ids of the entries inserted.
WITH e AS (
    INSERT INTO ledger_entries (event_id, sale_id, order_id, kind, quantity, delta, reason)
    SELECT event_id, sale_id, order_id, kind, quantity, delta, reason
    FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::integer[], $6::integer[], $7::text[])
         WITH ORDINALITY AS b (event_id, sale_id, order_id, kind, quantity, delta, reason, n)
    ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING event_id, sale_id, kind, quantity
), counters AS (
    INSERT INTO stock_ledger AS l (sale_id, sold, released)
    SELECT sale_id,
           coalesce(sum(quantity) FILTER (WHERE kind = 'created'), 0),
           coalesce(sum(quantity) FILTER (WHERE kind IN ('cancelled', 'expired')), 0)
    FROM e
    GROUP BY sale_id
    ORDER BY sale_id
    ON CONFLICT (sale_id) DO UPDATE
    SET sold       = l.sold + EXCLUDED.sold,
        released   = l.released + EXCLUDED.released,
        updated_at = now()
)
SELECT event_id FROM e
