DROP INDEX IF EXISTS orders_closed_idx;
