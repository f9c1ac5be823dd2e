-- Adds stock under a fencing token: a holder whose lease expired carries a
-- token below the one last written and matches no row. The units join
-- the sale's allotment in slot 0 of database 0 in the same statement
-- (sales live on database 0), so the allotments keep adding up to the
-- stock; a sale not allotted yet is allotted from its new stock when it
-- first needs to be.
WITH s AS (
    UPDATE sales
    SET stock = stock + $2, fence = $3, updated_at = now()
    WHERE id = $1 AND fence < $3
    RETURNING id, sku, title, price_cents, currency, stock, per_user_limit, starts_at, ends_at, created_at, updated_at
), a AS (
    UPDATE stock.allotments
    SET allotted = allotted + $2, updated_at = now()
    WHERE sale_id = (SELECT id FROM s) AND slot = 0
)
SELECT * FROM s
