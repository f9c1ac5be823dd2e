package outbox_test

import (
	"context"
	"fmt"
	"testing"
)

// TestLateCommittingRowIsRelayed: a transaction takes an outbox id, then
// stays open (a long transaction, a stalled commit) while later
// transactions' rows commit and are published. Its row is invisible all
// that time; once it commits it must be published too. Each round reads
// every unpublished row instead of following an id cursor, which would
// already have moved past the open transaction's id.
func TestLateCommittingRowIsRelayed(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	tg := w.targets[0]
	tx, err := tg.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var lateRow int64
	var lateEvent string
	err = tx.QueryRow(ctx, fmt.Sprintf(`INSERT INTO %s.outbox (aggregate_id, event_type, payload)
		VALUES (1, 'flashsale.order.created', '{"late":true}') RETURNING id, event_id::text`, tg.Schema)).Scan(&lateRow, &lateEvent)
	if err != nil {
		t.Fatal(err)
	}

	stop := run(w.relay(w.writer(), "a"))
	defer stop()
	want := map[string]bool{lateEvent: true}
	for i := range 5 {
		for _, id := range w.insert(tg, int64(2+i), "flashsale.order.created") {
			want[id] = true
		}
	}
	w.waitDrained() // every committed row; the open one is invisible
	var published int64
	if err := tg.Pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM "+tg.Schema+".outbox_published").Scan(&published); err != nil {
		t.Fatal(err)
	}
	if published <= lateRow {
		t.Fatalf("rows up to id %d published while row %d was open; the test needs later ids published first", published, lateRow)
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.waitDrained()
	for _, e := range w.readAll(len(want)) {
		delete(want, e.ID)
	}
	if want[lateEvent] {
		t.Errorf("the late-committing row's event %s never reached Kafka", lateEvent)
	}
	if len(want) > 0 {
		t.Errorf("events missing from Kafka: %v", want)
	}
}
