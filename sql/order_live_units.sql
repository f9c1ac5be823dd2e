-- Units of sale $1 in live orders (pending payment or paid) on one shard,
-- through orders_sale_idx. The store joins one such SELECT per shard of a
-- database with UNION ALL and sums them: one query per database.
SELECT coalesce(sum(quantity), 0)::bigint AS units
FROM __shard__.orders
WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')
