-- This database's allotments of a sale: the units each may sell, and those
-- its live orders hold.
-- $1 sale id
SELECT slot, allotted, sold FROM stock.allotments WHERE sale_id = $1 ORDER BY slot
