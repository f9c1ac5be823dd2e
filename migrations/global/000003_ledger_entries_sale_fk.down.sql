ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_sale_id_fkey FOREIGN KEY (sale_id) REFERENCES sales (id);
