-- Since published rows leave the outbox (000007), every row in it is
-- unpublished: the partial index on id over published_at IS NULL holds what
-- the primary key holds, and each order paid one more index entry for it.
-- The unique index on event_id, a random uuid, cost each order a b-tree
-- insert at a random page, for a uniqueness gen_random_uuid() already gives
-- and nothing looks up: consumers deduplicate on the id they receive.
DROP INDEX outbox_unpublished_idx;
ALTER TABLE outbox DROP CONSTRAINT outbox_event_id_key;
