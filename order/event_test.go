package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/order"
)

// eventLiteral matches an event type written as a literal in SQL.
var eventLiteral = regexp.MustCompile(`'flashsale\.[a-z_.]+'`)

// TestSQLEventTypesAreGoConstants holds the event type literals of the
// statements that write outbox rows to the Go constants: each statement
// writes exactly the type its change is, and no query names a type that
// is not a Go constant. The literals stay in the SQL so that the group
// commit's statement (order_create) binds no extra parameter per batch.
func TestSQLEventTypesAreGoConstants(t *testing.T) {
	want := map[string]string{
		"sql/order_create.sql":          order.EventCreated,
		"sql/order_pay.sql":             order.EventPaid,
		"sql/order_cancel.sql":          order.EventCancelled,
		"sql/order_cancel_oversold.sql": order.EventCancelled,
		"sql/order_expire.sql":          order.EventExpired,
	}
	// The files, not the query accessor: the test reads every statement,
	// whichever package runs it.
	files, err := filepath.Glob("../sql/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sql/*.sql beside package order: %v", err)
	}
	got := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		path := "sql/" + filepath.Base(f)
		for _, lit := range eventLiteral.FindAll(b, -1) {
			typ := string(bytes.Trim(lit, "'"))
			if !slices.Contains(order.EventTypes, typ) {
				t.Errorf("%s writes event type %s, which is no constant of package order", path, typ)
			}
			if prev, ok := got[path]; ok && prev != typ {
				t.Errorf("%s writes two event types, %s and %s", path, prev, typ)
			}
			got[path] = typ
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("event types written by sql/: %v, want %v", got, want)
	}
	for _, typ := range order.EventTypes {
		if !slices.Contains(slices.Collect(maps.Values(got)), typ) {
			t.Errorf("no statement writes %s", typ)
		}
	}
	if b, err := os.ReadFile("../sql/order_cancel_oversold.sql"); err != nil || !bytes.Contains(b, []byte("'"+order.ReasonOversold+"'")) {
		t.Errorf("order_cancel_oversold does not give reason %q (%v)", order.ReasonOversold, err)
	}
}

// outboxRow is one outbox row of an order.
type outboxRow struct {
	Type    string
	Payload []byte
}

// outboxRows lists the outbox rows of an order, in outbox order.
func (r *rig) outboxRows(t *testing.T, id order.ID) []outboxRow {
	t.Helper()
	sh, _ := r.m.ForOrder(id.Int64())
	rows, _ := r.pools[r.m.Database(sh)].Query(context.Background(),
		"SELECT event_type, payload FROM "+sh.Schema()+".outbox WHERE aggregate_id = $1 ORDER BY id", id.Int64())
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEventPayloadsMatchSQL builds every order event through the real
// statements (an order created, paid, cancelled by its buyer, cancelled
// as oversold, expired) and holds each outbox row to its Go payload type
// field for field: the row decodes with unknown fields refused, and the
// Go type marshals to exactly the row's keys, so a field added to or
// renamed on either side fails.
func TestEventPayloadsMatchSQL(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 10)
	paid, req := r.place(t, r.svc, sale, "payer", 2)
	if _, err := r.store.Pay(ctx, req.Buyer, paid.ID); err != nil {
		t.Fatal(err)
	}
	cancelled, req := r.place(t, r.svc, sale, "canceller", 1)
	if _, err := r.store.Cancel(ctx, req.Buyer, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	oversold, _ := r.place(t, r.svc, sale, "oversold", 1)
	if err := r.store.CancelOversold(ctx, []int64{oversold.ID.Int64()}); err != nil {
		t.Fatal(err)
	}
	late, _ := r.place(t, r.withWindow(t, 50*time.Millisecond, r.stock), sale, "late", 3)
	time.Sleep(time.Until(late.ExpiresAt.Add(20 * time.Millisecond)))
	if sw, err := r.expirer(t, r.stock, order.ExpirerConfig{}).Sweep(ctx); err != nil || sw.Expired != 1 {
		t.Fatalf("sweep: %+v, %v; want 1 expired", sw, err)
	}
	cases := []struct {
		o      order.Order
		types  []string
		reason string
	}{
		{paid, []string{order.EventCreated, order.EventPaid}, ""},
		{cancelled, []string{order.EventCreated, order.EventCancelled}, order.ReasonBuyer},
		{oversold, []string{order.EventCreated, order.EventCancelled}, order.ReasonOversold},
		{late, []string{order.EventCreated, order.EventExpired}, ""},
	}
	for _, c := range cases {
		rows := r.outboxRows(t, c.o.ID)
		if got := []string{}; len(rows) != len(c.types) {
			for _, x := range rows {
				got = append(got, x.Type)
			}
			t.Fatalf("order %s: events %v, want %v", c.o.ID, got, c.types)
		}
		for i, x := range rows {
			if x.Type != c.types[i] {
				t.Errorf("order %s: event %d is %s, want %s", c.o.ID, i, x.Type, c.types[i])
				continue
			}
			checkPayload(t, c.o, x, c.reason)
		}
	}
}

// checkPayload decodes an outbox row into its Go payload type, refusing
// unknown fields, checks that the Go type has no field the row lacks, and
// that the values are the order's.
func checkPayload(t *testing.T, o order.Order, x outboxRow, reason string) {
	t.Helper()
	p, ok := order.NewPayloadV1(x.Type)
	if !ok {
		t.Fatalf("%s: no Go payload type", x.Type)
	}
	dec := json.NewDecoder(bytes.NewReader(x.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		t.Fatalf("%s payload %s does not decode into %T: %v", x.Type, x.Payload, p, err)
	}
	back, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if sqlKeys, goKeys := jsonKeys(t, x.Payload), jsonKeys(t, back); !slices.Equal(sqlKeys, goKeys) {
		t.Errorf("%s: the SQL builds keys %v, the Go type %T has %v", x.Type, sqlKeys, p, goKeys)
	}
	var e order.EventV1
	var gotReason string
	switch v := p.(type) {
	case *order.CreatedV1:
		e = v.EventV1
	case *order.PaidV1:
		e = v.EventV1
	case *order.CancelledV1:
		e, gotReason = v.EventV1, v.Reason
	case *order.ExpiredV1:
		e = v.EventV1
	}
	want := order.EventV1{SchemaVersion: order.SchemaVersion, OrderID: strconv.FormatInt(o.ID.Int64(), 10),
		SaleID: o.SaleID.String(), UserID: o.Buyer.String(), Quantity: o.Quantity, AmountCents: o.AmountCents,
		Currency: o.Currency, Status: statusOf(x.Type), CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt}
	if e != want {
		t.Errorf("%s payload %+v, want %+v", x.Type, e, want)
	}
	if !e.CreatedAt.Equal(o.CreatedAt) || !e.ExpiresAt.Equal(o.ExpiresAt) {
		t.Errorf("%s times %s, %s; want %s, %s", x.Type, e.CreatedAt, e.ExpiresAt, o.CreatedAt, o.ExpiresAt)
	}
	if x.Type == order.EventCancelled && gotReason != reason {
		t.Errorf("%s reason %q, want %q", x.Type, gotReason, reason)
	}
}

// statusOf is the order status each event type carries.
func statusOf(typ string) order.Status {
	return map[string]order.Status{order.EventCreated: order.StatusPendingPayment, order.EventPaid: order.StatusPaid,
		order.EventCancelled: order.StatusCancelled, order.EventExpired: order.StatusExpired}[typ]
}

// jsonKeys lists the keys of a JSON object, sorted.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}
