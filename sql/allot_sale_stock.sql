-- The stock of a sale (database 0), which its allotments share.
-- $1 sale id
SELECT stock FROM sales WHERE id = $1
