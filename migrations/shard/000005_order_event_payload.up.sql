-- The data of every order event (docs/events.md), built in one place for
-- the statements that write an order change and its outbox row together.
-- reason is left out when NULL.
CREATE FUNCTION order_event_payload(
    id bigint, sale_id bigint, user_id text, quantity integer, amount_cents bigint, currency text,
    status text, created_at timestamptz, expires_at timestamptz, reason text DEFAULT NULL
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'schema_version', 1,
        'order_id', id::text,
        'sale_id', sale_id::text,
        'user_id', user_id,
        'quantity', quantity,
        'amount_cents', amount_cents,
        'currency', currency,
        'status', status,
        'created_at', created_at,
        'expires_at', expires_at)
        || CASE WHEN reason IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('reason', reason) END
$$;
