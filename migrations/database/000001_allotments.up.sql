-- Runs once per database with search_path set to its schema "stock".
--
-- PostgreSQL is the truth about stock, and must refuse a unit Redis wrongly
-- allowed (Redis can lose acknowledged writes). Orders are sharded over
-- several databases, and one transaction can't span them, so each sale's
-- stock is split into per-database allotments: an order commits on its
-- database only within that database's allotment, checked and counted in
-- the order's own statement. Units move between databases only by a
-- transfer (below), so across databases the allotments plus the units in
-- transit always add up to sales.stock, and units in live orders can never
-- exceed it.
CREATE TABLE allotments (
    sale_id    bigint      PRIMARY KEY,
    -- allotted is the units this database may sell; sold the units of its
    -- live orders (pending payment or paid): every order statement that
    -- creates, cancels or expires an order moves it in the same statement.
    allotted   bigint      NOT NULL CHECK (allotted >= 0),
    sold       bigint      NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The last net: whatever the application believes, a database never
    -- holds more live units than it was allotted.
    CONSTRAINT allotments_within CHECK (sold <= allotted)
);

-- transfers records every move of units between databases, on both ends,
-- under one id: the source's row ('out') is written in the statement that
-- lowers its allotment, the destination's ('in') in the statement that
-- raises its own, so a transfer is applied at most once on each side and a
-- crash between the two is finished later from the source's open row.
CREATE TABLE transfers (
    id         uuid        PRIMARY KEY,
    sale_id    bigint      NOT NULL,
    direction  text        NOT NULL CHECK (direction IN ('out', 'in')),
    peer       integer     NOT NULL CHECK (peer >= 0), -- the other database's index
    units      bigint      NOT NULL CHECK (units > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz -- 'out' rows: when the destination applied it
);

CREATE INDEX transfers_open_idx ON transfers (created_at) WHERE direction = 'out' AND done_at IS NULL;
