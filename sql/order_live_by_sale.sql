-- The orders of sale $1 on this shard that hold its units (pending payment
-- or paid): what Redis is rebuilt from after it lost writes. Served by
-- orders_sale_idx.
SELECT user_id, idempotency_key, quantity, request_hash
FROM __shard__.orders
WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')
