package inbox_test

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
)

func TestParseReadsTheContractEnvelope(t *testing.T) {
	ev, err := inbox.Parse([]byte(`{"specversion":"1.0","id":"0B5C1D0E-7C4F-4A53-9D0E-3F8F2F7B9A10","source":"/flashsale/shards/7",
		"type":"flashsale.order.created","subject":"250092227018125313","time":"2026-11-22T02:57:13.409845Z",
		"datacontenttype":"application/json","dataschema":"https://flashsale.example/schemas/order-event/v1",
		"data":{"order_id":"250092227018125313","quantity":2},"unknown":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10" || ev.Type != "flashsale.order.created" || ev.Subject != "250092227018125313" ||
		ev.Source != "/flashsale/shards/7" || !ev.Time.Equal(time.Date(2026, 11, 22, 2, 57, 13, 409845000, time.UTC)) ||
		string(ev.Data) != `{"order_id":"250092227018125313","quantity":2}` {
		t.Fatalf("%+v", ev)
	}
}

func TestParseRefusesWhatIsNoEvent(t *testing.T) {
	const ok = `"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"2026-11-22T02:57:13Z"`
	for _, v := range []string{
		``, `{`, `[]`, `{` + ok + `}`, // no data
		`{` + ok + `,"data":null}`,
		`{"specversion":"0.3","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"not-a-uuid","source":"/s","type":"t","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"","time":"2026-11-22T02:57:13Z","data":{}}`,
		`{"specversion":"1.0","id":"0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10","source":"/s","type":"t","time":"yesterday","data":{}}`,
	} {
		if _, err := inbox.Parse([]byte(v)); !errors.Is(err, inbox.ErrInvalidEvent) {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// event is a valid event with a fresh id.
func event(typ string) inbox.Event {
	return inbox.Event{ID: testenv.EventID(), Source: "/t", Type: typ, Time: time.Now().UTC(), Data: []byte(`{}`)}
}

func inboxIDs(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, _ := db.Query(context.Background(), `SELECT event_id::text FROM inbox WHERE consumer = 'c' ORDER BY 1`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestApplyBatchRunsEachNewEventOnceInOrder applies a batch holding an
// event applied before and an event twice: the handler runs, in order, for
// the new events only, and for the repeated one once.
func TestApplyBatchRunsEachNewEventOnceInOrder(t *testing.T) {
	db := testenv.Pools(t, testenv.Config(t, 2))[0]
	ctx := context.Background()
	var ran []string
	h := inbox.HandlerFunc(func(_ context.Context, _ pgx.Tx, ev inbox.Event) error {
		ran = append(ran, ev.ID)
		return nil
	})
	a, b, c := event("a"), event("b"), event("c")
	if applied, err := inbox.Apply(ctx, db, "c", b, h); err != nil || !applied {
		t.Fatalf("apply b: %v, %v", applied, err)
	}
	ran = nil
	applied, err := inbox.ApplyBatch(ctx, db, "c", []inbox.Event{a, b, a, c}, h)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false, true}; !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	if want := []string{a.ID, c.ID}; !slices.Equal(ran, want) {
		t.Errorf("handler ran for %v, want %v", ran, want)
	}
	want := []string{a.ID, b.ID, c.ID}
	slices.Sort(want)
	if got := inboxIDs(t, db); !slices.Equal(got, want) {
		t.Errorf("inbox %v, want %v", got, want)
	}
	// The same batch again is all redeliveries.
	ran = nil
	applied, err = inbox.ApplyBatch(ctx, db, "c", []inbox.Event{a, b, a, c}, h)
	if err != nil || slices.Contains(applied, true) || len(ran) != 0 {
		t.Errorf("redelivered batch: applied %v, ran %v, err %v", applied, ran, err)
	}
}

// TestApplyBatchRollsBackEveryEventOnError fails the handler on the last
// event of a batch: no event of it is recorded.
func TestApplyBatchRollsBackEveryEventOnError(t *testing.T) {
	db := testenv.Pools(t, testenv.Config(t, 2))[0]
	bad := event("bad")
	h := inbox.HandlerFunc(func(_ context.Context, _ pgx.Tx, ev inbox.Event) error {
		if ev.ID == bad.ID {
			return errors.New("refused")
		}
		return nil
	})
	applied, err := inbox.ApplyBatch(context.Background(), db, "c", []inbox.Event{event("a"), event("b"), bad}, h)
	if err == nil || applied != nil {
		t.Fatalf("applied %v, err %v", applied, err)
	}
	if ids := inboxIDs(t, db); len(ids) != 0 {
		t.Fatalf("a failed batch left %v in the inbox", ids)
	}
}

// deduplicating is a handler that keeps its own record of applied ids, and
// records the calls Apply and ApplyBatch make to it.
type deduplicating struct {
	seen  map[string]bool
	calls []string
}

func (d *deduplicating) Handle(_ context.Context, _ pgx.Tx, ev inbox.Event) error {
	d.calls = append(d.calls, "handle "+ev.ID)
	return nil
}

func (d *deduplicating) HandleNew(_ context.Context, _ pgx.Tx, evs []inbox.Event) ([]bool, error) {
	d.calls = append(d.calls, "new "+ids(evs))
	applied := make([]bool, len(evs))
	for i, ev := range evs {
		applied[i] = !d.seen[ev.ID]
		d.seen[ev.ID] = true
	}
	return applied, nil
}

func ids(evs []inbox.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.ID)
	}
	return strings.Join(s, ",")
}

// TestADeduplicatorKeepsNoInboxRows applies an event alone, then a batch
// holding it again and an event twice, through a Deduplicator: each call
// hands it every event, Handle is never called, its answers are what
// Apply and ApplyBatch return, and the inbox stays empty.
func TestADeduplicatorKeepsNoInboxRows(t *testing.T) {
	db := testenv.Pools(t, testenv.Config(t, 2))[0]
	ctx := context.Background()
	h := &deduplicating{seen: map[string]bool{}}
	a, b, c := event("a"), event("b"), event("c")
	if applied, err := inbox.Apply(ctx, db, "c", b, h); err != nil || !applied {
		t.Fatalf("apply b: %v, %v", applied, err)
	}
	applied, err := inbox.ApplyBatch(ctx, db, "c", []inbox.Event{a, b, a, c}, h)
	if err != nil || !slices.Equal(applied, []bool{true, false, false, true}) {
		t.Fatalf("applied %v, err %v", applied, err)
	}
	if applied, err := inbox.Apply(ctx, db, "c", c, h); err != nil || applied {
		t.Fatalf("apply c again: %v, %v", applied, err)
	}
	want := []string{"new " + b.ID, "new " + ids([]inbox.Event{a, b, a, c}), "new " + c.ID}
	if !slices.Equal(h.calls, want) {
		t.Errorf("calls %q, want %q", h.calls, want)
	}
	if ids := inboxIDs(t, db); len(ids) != 0 {
		t.Errorf("inbox %v, want no rows for a Deduplicator", ids)
	}
}

// TestIDBytesIsTheUUID checks the bytes bound to uuid parameters against
// the id's hex digits, in either case.
func TestIDBytesIsTheUUID(t *testing.T) {
	for _, id := range []string{testenv.EventID(), "0B5C1D0E-7C4F-4A53-9D0E-3F8F2F7B9A10", "00000000-0000-0000-0000-000000000000"} {
		want, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := inbox.IDBytes(id); string(got[:]) != string(want) {
			t.Errorf("IDBytes(%s) = %x, want %x", id, got, want)
		}
	}
}
