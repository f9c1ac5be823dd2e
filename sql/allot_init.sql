-- Gives this database its first allotment of a sale, once: a second call
-- (another instance, or a retry after a crash) changes nothing.
-- $1 sale id  $2 units allotted  $3 units of this database's live orders
INSERT INTO stock.allotments (sale_id, allotted, sold)
VALUES ($1, $2, $3)
ON CONFLICT (sale_id) DO NOTHING
