-- The destination side of a transfer: raises this database's allotment,
-- at most once per transfer id, creating the allotment if it had none.
-- $1 transfer id  $2 sale id  $3 source database  $4 units
WITH t AS (
    INSERT INTO stock.transfers (id, sale_id, direction, peer, units, done_at)
    VALUES ($1, $2, 'in', $3, $4, now())
    ON CONFLICT (id) DO NOTHING
    RETURNING sale_id, units
)
INSERT INTO stock.allotments (sale_id, allotted)
SELECT sale_id, units FROM t
ON CONFLICT (sale_id) DO UPDATE SET allotted = stock.allotments.allotted + EXCLUDED.allotted, updated_at = now()
