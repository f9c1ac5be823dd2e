-- The tables of the event consumers, on database 0.

-- inbox holds one row per event a consumer has applied, written in the
-- transaction that applies the event's effect: a redelivered event finds
-- its row and is skipped. consumer is the consumer's name, not its Kafka
-- group id, so a group reset to replay a topic stays idempotent.
CREATE TABLE inbox (
    consumer     text        NOT NULL CHECK (length(consumer) BETWEEN 1 AND 64),
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- For pruning rows older than the topic's retention (no redelivery can be
-- older than the log).
CREATE INDEX inbox_processed_idx ON inbox (processed_at);

-- stock_ledger is the durable count of units per sale as the order events
-- tell it: sold counts the units of created orders, released the units of
-- cancelled or expired ones. The net, sold - released, must not exceed
-- sales.stock; when it does (Redis lost reservations in a failover), the
-- ledger cancels the newest excess orders.
CREATE TABLE stock_ledger (
    sale_id    bigint      PRIMARY KEY REFERENCES sales (id),
    sold       bigint      NOT NULL DEFAULT 0 CHECK (sold >= 0),
    released   bigint      NOT NULL DEFAULT 0 CHECK (released >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ledger_entries is one row per order event the ledger applied. delta is
-- the entry's effect on the net: +quantity when created, -quantity when
-- cancelled or expired, 0 when paid; per sale, sum(delta) equals
-- stock_ledger.sold - stock_ledger.released.
CREATE TABLE ledger_entries (
    event_id    uuid        PRIMARY KEY,
    sale_id     bigint      NOT NULL REFERENCES sales (id),
    order_id    bigint      NOT NULL CHECK (order_id > 0),
    kind        text        NOT NULL CHECK (kind IN ('created', 'paid', 'cancelled', 'expired')),
    quantity    integer     NOT NULL CHECK (quantity >= 1),
    delta       integer     NOT NULL,
    reason      text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_entries_delta_check CHECK (delta = CASE kind
        WHEN 'created' THEN quantity WHEN 'paid' THEN 0 ELSE -quantity END)
);

-- Every order has at most one creation entry and at most one release, even
-- if an event were published twice under two ids.
CREATE UNIQUE INDEX ledger_entries_created_once ON ledger_entries (order_id) WHERE kind = 'created';
CREATE UNIQUE INDEX ledger_entries_paid_once ON ledger_entries (order_id) WHERE kind = 'paid';
CREATE UNIQUE INDEX ledger_entries_released_once ON ledger_entries (order_id) WHERE kind IN ('cancelled', 'expired');
-- The newest live orders of a sale, for cancelling an oversell.
CREATE INDEX ledger_entries_sale_created_idx ON ledger_entries (sale_id, order_id DESC) WHERE kind = 'created';

-- notifications records every webhook the notify consumer delivered, in the
-- transaction of its inbox row: status_code and sent_at are those of the
-- delivery the receiver accepted.
CREATE TABLE notifications (
    event_id    uuid        PRIMARY KEY,
    event_type  text        NOT NULL,
    subject     text        NOT NULL,
    status_code integer     CHECK (status_code BETWEEN 100 AND 599),
    tries       integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    sent_at     timestamptz
);
