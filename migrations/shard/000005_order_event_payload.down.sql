DROP FUNCTION IF EXISTS order_event_payload(bigint, bigint, text, integer, bigint, text, text, timestamptz, timestamptz, text);
