-- The destination side of a transfer: raises one allotment, at most once
-- per transfer id, creating it if it did not exist.
-- $1 transfer id  $2 sale id  $3 destination slot  $4 source database
-- $5 source slot  $6 units
WITH t AS (
    INSERT INTO stock.transfers (id, sale_id, direction, slot, peer, peer_slot, units, done_at)
    VALUES ($1, $2, 'in', $3, $4, $5, $6, now())
    ON CONFLICT (id, direction) DO NOTHING
    RETURNING sale_id, slot, units
)
INSERT INTO stock.allotments (sale_id, slot, allotted)
SELECT sale_id, slot, units FROM t
ON CONFLICT (sale_id, slot) DO UPDATE SET allotted = stock.allotments.allotted + EXCLUDED.allotted, updated_at = now()
