-- Which of these (buyer, idempotency key) pairs have an order on this
-- shard: the reconciler asks once per shard instead of once per reservation.
SELECT o.user_id, o.idempotency_key
FROM __shard__.orders AS o
JOIN unnest($1::text[], $2::text[]) AS k(user_id, idempotency_key)
  ON o.user_id = k.user_id AND o.idempotency_key = k.idempotency_key
