-- Creates a sale; the CHECK constraints hold its invariants.
INSERT INTO sales (sku, title, price_cents, currency, stock, per_user_limit, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, sku, title, price_cents, currency, stock, per_user_limit, starts_at, ends_at, created_at, updated_at
