-- Orders the lifecycle closed within the last $1 (expired, or cancelled by
-- their buyer), oldest first, in keyset pages of $4 after ($2, $3) (NULL
-- $2: the first page). The sweeper's repair pass releases their
-- reservations again, so a release lost between the commit of the
-- transition and its Redis call is returned; the release is idempotent.
-- Orders cancelled for another reason (oversold) are left to whoever
-- cancelled them: their units may not be owed back to the sale.
SELECT id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
       created_at, expires_at, updated_at
FROM __shard__.orders
WHERE (status = 'expired' OR (status = 'cancelled' AND cancel_reason = 'buyer'))
  AND updated_at > now() - $1::interval
  AND ($2::timestamptz IS NULL OR (updated_at, id) > ($2::timestamptz, $3::bigint))
ORDER BY updated_at, id
LIMIT $4
