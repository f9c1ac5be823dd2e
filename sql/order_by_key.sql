SELECT id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status, created_at, expires_at
FROM __shard__.orders
WHERE user_id = $1 AND idempotency_key = $2
