-- allot_slot is the stock allotment (stock.allotments, on this shard's
-- database) whose units the order holds: cancelling or expiring the order
-- gives them back to that allotment. Orders placed before allotments
-- existed hold slot 0's, where a sale's first allotment counts them.
ALTER TABLE orders ADD COLUMN allot_slot smallint NOT NULL DEFAULT 0 CHECK (allot_slot >= 0);
