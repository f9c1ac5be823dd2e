-- Keeps the inbox small: deletes up to $3 of consumer $1's rows recorded
-- longer ago than the retention $2, oldest first. A row is needed only
-- while its event can still be redelivered, so the retention must exceed
-- the topic's (and any replay's) reach. The caller repeats it while it
-- deletes $3 rows, so that no one statement holds many locks or runs long;
-- rows another pruner holds are skipped, not waited for.
DELETE FROM inbox
WHERE (consumer, event_id) IN (
    SELECT consumer, event_id
    FROM inbox
    WHERE consumer = $1 AND processed_at < now() - $2::interval
    ORDER BY processed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
