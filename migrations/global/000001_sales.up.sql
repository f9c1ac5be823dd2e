-- Sales live on database 0. PostgreSQL is the truth: the CHECKs below hold
-- whatever the application or Redis believes.
CREATE TABLE sales (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku            text        NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    title          text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    price_cents    bigint      NOT NULL CHECK (price_cents >= 0),
    currency       text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock          integer     NOT NULL CHECK (stock >= 0),
    per_user_limit integer     NOT NULL CHECK (per_user_limit >= 1),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    -- fence is the highest fencing token that has written this sale: a
    -- RedLock holder paused past its lease carries a lower token and its
    -- write matches no row.
    fence          bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sales_window_check CHECK (ends_at > starts_at)
);

-- fencing_tokens hands out the monotonically increasing tokens that every
-- RedLock-guarded write carries.
CREATE SEQUENCE fencing_tokens;
