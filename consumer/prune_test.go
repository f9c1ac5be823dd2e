package consumer_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
)

// TestInboxRowsPastRetentionArePruned starts a consumer with a one-hour
// inbox retention over an inbox holding, under its name, rows recorded
// two hours ago (more than one prune statement's worth) and rows of a
// minute ago, and rows of another consumer two hours old: the consumer
// deletes its own old rows, and only those, without an event to consume.
func TestInboxRowsPastRetentionArePruned(t *testing.T) {
	s := newStack(t)
	old := s.inboxRows(t, "inventory", inbox.PruneChunk+7, 2*time.Hour)
	fresh := s.inboxRows(t, "inventory", 5, time.Minute)
	other := s.inboxRows(t, "notify", 3, 2*time.Hour)
	c := s.inventory(t, func(c *consumer.Config) {
		c.InboxRetention, c.PruneInterval = time.Hour, 50*time.Millisecond
	})
	r := start(t, c)
	eventually(t, 20*time.Second, "the old rows pruned", func() bool { return s.inboxCount(t, "inventory") == len(fresh) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := s.inboxIDs(t, "inventory"); !slices.Equal(got, fresh) {
		t.Errorf("inventory inbox holds %v, want the fresh rows %v", got, fresh)
	}
	if got := s.inboxIDs(t, "notify"); !slices.Equal(got, other) {
		t.Errorf("another consumer's inbox holds %v, want its rows untouched %v", got, other)
	}
	if st := c.Stats(); st.Pruned != int64(len(old)) {
		t.Errorf("stats %+v, want %d pruned", st, len(old))
	}
}

// inboxRows records n events of consumer name as applied age ago, and
// returns their ids, sorted.
func (s *stack) inboxRows(t *testing.T, name string, n int, age time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.EventID()
	}
	_, err := s.db.Exec(context.Background(), `INSERT INTO inbox (consumer, event_id, event_type, processed_at)
		SELECT $1, id, 'flashsale.order.created', now() - $3::interval FROM unnest($2::uuid[]) AS id`, name, ids, age)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}
