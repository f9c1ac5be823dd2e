-- Gives the shard's relay lease back: the row names no holder until the
-- next relay claims it, unless a newer token already did.
UPDATE __shard__.relay_lease
SET holder = NULL, updated_at = now()
WHERE fence = $1
