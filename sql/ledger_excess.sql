-- The newest orders of sale $1 that together cover its excess (net sold
-- minus stock): live orders (created, not released) newest first, taken
-- while the units of the newer ones taken before fall short of the excess.
-- An order id grows with its creation time.
WITH pos AS (
    SELECT l.sold - l.released - s.stock AS excess
    FROM stock_ledger l
    JOIN sales s ON s.id = l.sale_id
    WHERE l.sale_id = $1
), live AS (
    SELECT c.order_id,
           sum(c.quantity) OVER (ORDER BY c.order_id DESC) - c.quantity AS newer
    FROM ledger_entries c
    WHERE c.sale_id = $1 AND c.kind = 'created'
      AND NOT EXISTS (SELECT 1 FROM ledger_entries r
                      WHERE r.order_id = c.order_id AND r.kind IN ('cancelled', 'expired'))
)
SELECT live.order_id
FROM live, pos
WHERE pos.excess > 0 AND live.newer < pos.excess
ORDER BY live.order_id DESC
