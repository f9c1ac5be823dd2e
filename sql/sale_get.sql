SELECT id, sku, title, price_cents, currency, stock, per_user_limit, starts_at, ends_at, created_at, updated_at
FROM sales
WHERE id = $1
