-- Cancels an order the inventory ledger found oversold (Redis lost writes
-- in a failover and sold a unit twice), with its OrderCancelled event
-- (reason "oversold") in the same statement. Its units are not returned to
-- stock: they never existed. A paid order is cancelled too; the refund
-- follows the event. No row comes back when the order is already closed.
-- $1 order id
WITH o AS (
    UPDATE __shard__.orders
    SET status = 'cancelled', cancel_reason = 'oversold', updated_at = now()
    WHERE id = $1 AND status IN ('pending_payment', 'paid')
    RETURNING id, sale_id, user_id, quantity, amount_cents, currency, status, created_at, expires_at, cancel_reason
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.cancelled', jsonb_build_object(
        'schema_version', 1,
        'order_id', o.id::text,
        'sale_id', o.sale_id::text,
        'user_id', o.user_id,
        'quantity', o.quantity,
        'amount_cents', o.amount_cents,
        'currency', o.currency,
        'status', o.status,
        'created_at', o.created_at,
        'expires_at', o.expires_at,
        'reason', o.cancel_reason)
    FROM o
)
SELECT count(*) FROM o
