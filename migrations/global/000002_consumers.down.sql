DROP TABLE IF EXISTS notifications;
DROP TABLE IF EXISTS ledger_entries;
DROP TABLE IF EXISTS stock_ledger;
DROP TABLE IF EXISTS inbox;
