-- Which of the event ids $1 (uuid) have a ledger entry: among the events a
-- batch inserted no entry for, these are redeliveries; the others repeated
-- an order's transition under a new id.
SELECT event_id FROM ledger_entries WHERE event_id = ANY ($1::uuid[])
