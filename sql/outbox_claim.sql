-- Takes the shard's relay lease for token $1; no row when a newer token
-- already holds it.
UPDATE __shard__.relay_lease
SET fence = $1, holder = $2, updated_at = now()
WHERE fence < $1
