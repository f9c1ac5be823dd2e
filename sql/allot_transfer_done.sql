-- Closes the source side of a transfer the destination applied.
-- $1 transfer id
UPDATE stock.transfers SET done_at = now() WHERE id = $1 AND direction = 'out' AND done_at IS NULL
