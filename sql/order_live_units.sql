-- Units of the shard's live orders (pending payment or paid) of a sale.
-- $1 sale id
SELECT coalesce(sum(quantity), 0) FROM __shard__.orders
WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')
