-- Transfers this database sent that the destination may not have applied
-- (the sender stopped between the two sides), older than $1 seconds so
-- that transfers still under way are left to their sender.
SELECT id, sale_id, slot, peer, peer_slot, units
FROM stock.transfers
WHERE direction = 'out' AND done_at IS NULL AND created_at < now() - make_interval(secs => $1)
ORDER BY created_at
LIMIT 100
