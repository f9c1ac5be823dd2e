-- Cancels an order the inventory ledger found oversold (Redis lost writes
-- in a failover and sold a unit twice), with its OrderCancelled event
-- (reason "oversold") in the same statement. Its units are not returned to
-- stock: they never existed. They leave the database's allotment count
-- with the order, like any order that is no longer live. A paid order is cancelled too; the refund
-- follows the event. No row comes back when the order is already closed.
-- $1 order id
WITH o AS (
    UPDATE __shard__.orders
    SET status = 'cancelled', cancel_reason = 'oversold', updated_at = now()
    WHERE id = $1 AND status IN ('pending_payment', 'paid')
    RETURNING id, sale_id, user_id, quantity, amount_cents, currency, status, created_at, expires_at, cancel_reason, allot_slot
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
SELECT count(*) FROM o
