-- The source side of a transfer: lowers one allotment by units it has not
-- sold, and records the transfer in the same statement. No row comes back
-- when the allotment lacks the free units (they were sold meanwhile), and
-- nothing changes.
-- $1 transfer id  $2 sale id  $3 source slot  $4 destination database
-- $5 destination slot  $6 units
WITH a AS (
    UPDATE stock.allotments
    SET allotted = allotted - $6, updated_at = now()
    WHERE sale_id = $2 AND slot = $3 AND allotted - sold >= $6
    RETURNING sale_id
)
INSERT INTO stock.transfers (id, sale_id, direction, slot, peer, peer_slot, units)
SELECT $1, a.sale_id, 'out', $3, $4, $5, $6 FROM a
RETURNING id
