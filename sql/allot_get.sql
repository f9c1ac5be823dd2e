-- This database's allotment of a sale: the units it may sell, and those
-- its live orders hold. No row: it has none yet.
-- $1 sale id
SELECT allotted, sold FROM stock.allotments WHERE sale_id = $1
