-- Locks the counters of the sales $1 in sale order, at the start of a
-- batch's transaction: batches of two consumers over the same sales then
-- queue behind each other instead of deadlocking. A sale with no counters
-- yet has no row to lock.
SELECT sale_id
FROM stock_ledger
WHERE sale_id = ANY($1::bigint[])
ORDER BY sale_id
FOR UPDATE
