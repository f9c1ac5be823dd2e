-- Cancels a buyer's pending order and writes its OrderCancelled event in the
-- same statement, so both commit or neither does. The caller returns the
-- units to Redis only after this committed. No row comes back when the
-- order is not the buyer's or is no longer pending; the caller reads the
-- order to say which.
-- $1 order id  $2 buyer  $3 reason (data.reason of the event: buyer)
WITH o AS (
    UPDATE __shard__.orders
    SET status = 'cancelled', cancel_reason = $3, updated_at = now()
    WHERE id = $1 AND user_id = $2 AND status = 'pending_payment'
    RETURNING id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
              created_at, expires_at, cancel_reason, allot_slot
), freed AS (
    -- The order's units go back to the allotment that gave them.
    UPDATE stock.allotments a
    SET sold = a.sold - n.units, updated_at = now()
    FROM (SELECT sale_id, allot_slot, sum(quantity) AS units FROM o GROUP BY sale_id, allot_slot) n
    WHERE a.sale_id = n.sale_id AND a.slot = n.allot_slot
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.cancelled', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at, o.cancel_reason)
    FROM o
)
SELECT id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
       created_at, expires_at
FROM o
