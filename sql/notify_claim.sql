-- Claims the delivery of event $1 in the inbox transaction. No row is
-- inserted when it was delivered before: the caller sends nothing.
INSERT INTO notifications (event_id, event_type, subject)
VALUES ($1, $2, $3)
ON CONFLICT (event_id) DO NOTHING
