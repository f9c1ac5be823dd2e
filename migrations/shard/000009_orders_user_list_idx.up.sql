-- A buyer's order list (order_list.sql) finds the buyer's rows through the
-- unique index on (user_id, idempotency_key) and sorts them by id: a buyer
-- holds few orders (the per-buyer limit of each sale), so the sort is of a
-- handful of rows, while the index on (user_id, id DESC) cost every order a
-- b-tree insert on the hot path of a sale.
DROP INDEX orders_user_idx;
