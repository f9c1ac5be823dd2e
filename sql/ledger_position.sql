-- The sale's stock and what the ledger counted against it.
SELECT s.stock, coalesce(l.sold, 0), coalesce(l.released, 0)
FROM sales s
LEFT JOIN stock_ledger l ON l.sale_id = s.id
WHERE s.id = $1
