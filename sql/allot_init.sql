-- Gives one allotment of this database its first units of a sale, once: a
-- second call (another instance, or a retry after a crash) changes nothing.
-- $1 sale id  $2 slot  $3 units allotted  $4 units of live orders it holds
INSERT INTO stock.allotments (sale_id, slot, allotted, sold)
VALUES ($1, $2, $3, $4)
ON CONFLICT (sale_id, slot) DO NOTHING
