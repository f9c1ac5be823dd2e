-- The sweeper's repair pass lists recently cancelled and expired orders;
-- without this index each pass scans the whole shard.
CREATE INDEX orders_closed_idx ON orders (updated_at) WHERE status IN ('cancelled', 'expired');
