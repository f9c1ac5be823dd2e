-- Expires up to $1 pending orders whose payment window has closed by
-- PostgreSQL's clock, with one OrderExpired event each, in one statement.
-- The due rows are found through orders_pending_expiry_idx and locked with
-- SKIP LOCKED: sweepers of several instances take disjoint rows, and a row
-- a payment or cancellation is updating right now is left to it (the next
-- sweep sees its outcome). FOR UPDATE re-checks a row committed by someone
-- else since the statement began, so a payment that committed first wins.
-- The caller returns the units to Redis only after this committed.
WITH due AS (
    SELECT id
    FROM __shard__.orders
    WHERE status = 'pending_payment' AND expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), o AS (
    UPDATE __shard__.orders AS t
    SET status = 'expired', updated_at = now()
    FROM due
    WHERE t.id = due.id AND t.status = 'pending_payment' AND t.expires_at <= now()
    RETURNING t.id, t.sale_id, t.user_id, t.idempotency_key, t.request_hash, t.quantity, t.amount_cents,
              t.currency, t.status, t.created_at, t.expires_at, t.allot_slot
), freed AS (
    -- The order's units go back to the allotment that gave them.
    UPDATE stock.allotments a
    SET sold = a.sold - n.units, updated_at = now()
    FROM (SELECT sale_id, allot_slot, sum(quantity) AS units FROM o GROUP BY sale_id, allot_slot) n
    WHERE a.sale_id = n.sale_id AND a.slot = n.allot_slot
), e AS (
    INSERT INTO __shard__.outbox (aggregate_id, event_type, payload)
    SELECT o.id, 'flashsale.order.expired', __shard__.order_event_payload(
        o.id, o.sale_id, o.user_id, o.quantity, o.amount_cents, o.currency, o.status, o.created_at, o.expires_at)
    FROM o
    ORDER BY o.expires_at, o.id
)
SELECT id, sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, status,
       created_at, expires_at
FROM o
