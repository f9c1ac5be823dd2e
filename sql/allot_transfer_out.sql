-- The source side of a transfer: lowers this database's allotment by units
-- it has not sold, and records the transfer in the same statement. No row
-- comes back when the allotment lacks the free units (they were sold
-- meanwhile), and nothing changes.
-- $1 transfer id  $2 sale id  $3 destination database  $4 units
WITH a AS (
    UPDATE stock.allotments
    SET allotted = allotted - $4, updated_at = now()
    WHERE sale_id = $2 AND allotted - sold >= $4
    RETURNING sale_id
)
INSERT INTO stock.transfers (id, sale_id, direction, peer, units)
SELECT $1, a.sale_id, 'out', $3, $4 FROM a
RETURNING id
