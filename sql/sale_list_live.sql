-- Sales that may still hold reservations worth reconciling.
SELECT id FROM sales WHERE ends_at > now() - $1::interval ORDER BY id
