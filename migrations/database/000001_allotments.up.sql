-- Runs once per database with search_path set to its schema "stock".
--
-- PostgreSQL is the truth about stock, and must refuse a unit Redis wrongly
-- allowed (Redis can lose acknowledged writes). Orders are sharded over
-- several databases, and one transaction can't span them, so each sale's
-- stock is split into allotments, a few per database: an order commits
-- only within the allotment its transaction uses, checked and counted in
-- the order's own statement. A database has several slots so that its
-- concurrent group commits take different rows: a commit holds its
-- allotment's row lock until it is durable, and two commits waiting on one
-- row could not share a WAL flush. Units move between allotments only by a
-- transfer (below), so the allotments plus the units in transit always add
-- up to sales.stock, and units in live orders can never exceed it.
CREATE TABLE allotments (
    sale_id    bigint      NOT NULL,
    slot       smallint    NOT NULL CHECK (slot >= 0),
    -- allotted is the units this allotment may sell; sold the units of the
    -- live orders (pending payment or paid) that hold it: every order
    -- statement that creates, cancels or expires an order moves it in the
    -- same statement.
    allotted   bigint      NOT NULL CHECK (allotted >= 0),
    sold       bigint      NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sale_id, slot),
    -- The last net: whatever the application believes, an allotment never
    -- holds more live units than it was given.
    CONSTRAINT allotments_within CHECK (sold <= allotted)
);

-- transfers records every move of units between two allotments, on both
-- ends, under one id: the source's row ('out') is written in the statement
-- that lowers its allotment, the destination's ('in') in the statement that
-- raises its own, so a transfer is applied at most once on each side, and
-- one interrupted between the two is finished later from the source's open
-- row.
CREATE TABLE transfers (
    id         uuid        NOT NULL,
    sale_id    bigint      NOT NULL,
    direction  text        NOT NULL CHECK (direction IN ('out', 'in')),
    slot       smallint    NOT NULL CHECK (slot >= 0),       -- this end's allotment
    peer       integer     NOT NULL CHECK (peer >= 0),       -- the other end's database
    peer_slot  smallint    NOT NULL CHECK (peer_slot >= 0),  -- and allotment
    units      bigint      NOT NULL CHECK (units > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz, -- 'out' rows: when the destination applied it
    -- Both ends of a transfer between two slots of one database are rows
    -- of this table.
    PRIMARY KEY (id, direction)
);

CREATE INDEX transfers_open_idx ON transfers (created_at) WHERE direction = 'out' AND done_at IS NULL;
