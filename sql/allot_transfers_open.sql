-- Transfers this database sent that the destination may not have applied
-- (the sender stopped between the two sides), older than $1 so that
-- transfers still under way are left to their sender.
-- $1 minimum age in seconds
SELECT id, sale_id, peer, units
FROM stock.transfers
WHERE direction = 'out' AND done_at IS NULL AND created_at < now() - make_interval(secs => $1)
ORDER BY created_at
LIMIT 100
