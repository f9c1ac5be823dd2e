-- The keys of sale $1's orders on this shard that were closed (cancelled
-- or expired): their claims outlive them, so after Redis lost writes the
-- sold-out memory must still know these keys made an order. Served by
-- orders_sale_idx.
SELECT user_id, idempotency_key
FROM __shard__.orders
WHERE sale_id = $1 AND status IN ('cancelled', 'expired')
