-- Applies one order event to the ledger: the entry, then the sale's
-- counters, in one statement. An event whose id, or whose order's
-- transition (created, paid, released), is already recorded changes
-- nothing and returns no row.
WITH e AS (
    INSERT INTO ledger_entries (event_id, sale_id, order_id, kind, quantity, delta, reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT DO NOTHING
    RETURNING sale_id, kind, quantity
)
INSERT INTO stock_ledger AS l (sale_id, sold, released)
SELECT sale_id,
       CASE WHEN kind = 'created' THEN quantity ELSE 0 END,
       CASE WHEN kind IN ('cancelled', 'expired') THEN quantity ELSE 0 END
FROM e
ON CONFLICT (sale_id) DO UPDATE
SET sold       = l.sold + EXCLUDED.sold,
    released   = l.released + EXCLUDED.released,
    updated_at = now()
RETURNING l.sold, l.released
