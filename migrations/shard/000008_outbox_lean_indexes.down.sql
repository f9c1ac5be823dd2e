ALTER TABLE outbox ADD CONSTRAINT outbox_event_id_key UNIQUE (event_id);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
