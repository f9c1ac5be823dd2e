-- Runs once per logical shard with search_path set to that shard's schema
-- (shard_NNNN); the shard number is read from the schema name and baked into
-- the id function, so an order id names its shard.
CREATE SEQUENCE order_seq;

DO $migration$
DECLARE
    shard int := substring(current_schema() FROM '^shard_([0-9]+)$')::int;
BEGIN
    IF shard IS NULL OR shard > 1023 THEN
        RAISE EXCEPTION 'shard migrations need search_path set to a shard_NNNN schema, got %', current_schema();
    END IF;
    -- 41 bits of ms since 2025-01-01 | 10 bits of shard | 12 bits of sequence.
    EXECUTE format(
        $f$CREATE FUNCTION %I.next_order_id() RETURNS bigint LANGUAGE sql VOLATILE AS $body$
           SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1735689600000) << 22)
                | (%s::bigint << 12) | (nextval(%L) %% 4096) $body$$f$,
        current_schema(), shard, current_schema() || '.order_seq');
END
$migration$;

CREATE TABLE orders (
    id              bigint      PRIMARY KEY DEFAULT next_order_id(),
    sale_id         bigint      NOT NULL,
    user_id         text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- request_hash is the fingerprint of the request that created the order:
    -- the same key with another body is refused even when Redis forgot it.
    request_hash    bytea       NOT NULL,
    quantity        integer     NOT NULL CHECK (quantity >= 1),
    amount_cents    bigint      NOT NULL CHECK (amount_cents >= 0),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status          text        NOT NULL DEFAULT 'pending_payment'
                    CHECK (status IN ('pending_payment', 'paid', 'cancelled', 'expired')),
    cancel_reason   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The backstop of idempotency: even a lost Redis key cannot make a
    -- second order for one key.
    CONSTRAINT orders_user_key_unique UNIQUE (user_id, idempotency_key),
    CONSTRAINT orders_expiry_check CHECK (expires_at > created_at)
);

CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
CREATE INDEX orders_sale_idx ON orders (sale_id);
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending_payment';

-- The outbox is written in the transaction of the order it speaks of.
-- txid lets the relay read in commit order: a row whose transaction is
-- still open is never skipped, only waited for.
CREATE TABLE outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    aggregate_id bigint      NOT NULL,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
