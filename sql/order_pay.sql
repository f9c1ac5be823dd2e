-- Confirms the payment of a buyer's pending order and writes its
-- OrderPaid event in the same statement, so both commit or neither does.
-- The payment window is enforced here, by PostgreSQL's clock: once
-- expires_at has passed the order can only expire, however late the
-- sweeper runs. No row comes back when the order is not the buyer's, is no
-- longer pending, or its window closed; the caller reads the order to say
-- which. A concurrent expiry or cancellation holding the row makes this
-- wait, then re-check the row it committed, and match nothing.
-- $1 order id  $2 buyer
WITH o AS (
    UPDATE __shard__.orders
    SET status = 'paid', updated_at = now()
    WHERE id = $1 AND user_id = $2 AND status = 'pending_payment' AND expires_at > now()
    RETURNING id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
              created_at, expires_at
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.paid', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at)
    FROM o
)
SELECT id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
       created_at, expires_at
FROM o
