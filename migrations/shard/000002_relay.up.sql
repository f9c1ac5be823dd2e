-- relay_lease holds the fencing token of the relay that publishes this
-- shard's outbox: a relay marks rows only while its token is the one here,
-- so a relay paused past its RedLock lease cannot mark anything.
CREATE TABLE relay_lease (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    fence      bigint      NOT NULL DEFAULT 0,
    holder     text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO relay_lease DEFAULT VALUES;

-- Wake the relay on commit instead of making it poll: one notification per
-- inserting statement (PostgreSQL folds duplicates within a transaction),
-- delivered when the transaction commits.
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flashsale_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
