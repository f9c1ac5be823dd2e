-- Every statement that writes ledger entries (ledger_apply_batch.sql) upserts,
-- in the same statement, the stock_ledger row of each inserted entry's sale,
-- and stock_ledger.sale_id references sales: an entry of an unknown sale fails
-- its statement there, once per sale and batch. The foreign key of the entries
-- checked the same per entry, with a query each (a quarter of an entry's
-- insert in PostgreSQL); sales are never deleted.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_sale_id_fkey;
