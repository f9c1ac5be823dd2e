CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
