-- Records the delivery the receiver accepted.
UPDATE notifications
SET status_code = $2, tries = $3, sent_at = now()
WHERE event_id = $1
