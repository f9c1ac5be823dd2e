-- Records that consumer $1 applies the events $2 (ids, uuid) of types $3,
-- in the transaction of their effects, with one statement for a whole
-- batch. It returns the ids newly recorded, as uuid; an event applied
-- before, or a second copy of an id within $2, inserts nothing and is
-- skipped by the caller. A concurrent delivery of the same event waits here for the first
-- transaction and then finds its row.
INSERT INTO inbox (consumer, event_id, event_type)
SELECT $1, e.event_id, e.event_type
FROM unnest($2::uuid[], $3::text[]) AS e (event_id, event_type)
ON CONFLICT (consumer, event_id) DO NOTHING
RETURNING event_id
