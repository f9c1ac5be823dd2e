-- Adds stock under a fencing token: a holder whose lease expired carries a
-- token below the one last written and matches no row.
UPDATE sales
SET stock = stock + $2, fence = $3, updated_at = now()
WHERE id = $1 AND fence < $3
RETURNING id, sku, title, price_cents, currency, stock, per_user_limit, starts_at, ends_at, created_at, updated_at
