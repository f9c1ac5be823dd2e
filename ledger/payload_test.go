package ledger

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashsale/consumer/inbox"
	"flashsale/order"
)

// TestPayloadReadsOrderEventFields holds the ledger's few fields to the
// order event's contract: each has the JSON name and the type of a field
// of order.CancelledV1 (order.EventV1 and its reason), so a renamed field
// there fails here instead of decoding as zero.
func TestPayloadReadsOrderEventFields(t *testing.T) {
	contract := map[string]reflect.Type{}
	collectJSONFields(reflect.TypeFor[order.CancelledV1](), contract)
	pt := reflect.TypeFor[payload]()
	for i := range pt.NumField() {
		f := pt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if want, ok := contract[name]; !ok || want != f.Type {
			t.Errorf("payload.%s reads %q as %s; the order event has it as %v (present: %v)", f.Name, name, f.Type, want, ok)
		}
	}
}

// collectJSONFields maps the JSON names of t's fields, embedded structs'
// included, to their types.
func collectJSONFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			collectJSONFields(f.Type, out)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = f.Type
	}
}

// TestDecodeDataOfAWholeEvent decodes the payload the order package
// writes: the ledger's fields come out, and the reason only for a
// cancellation.
func TestDecodeDataOfAWholeEvent(t *testing.T) {
	now := time.Now().UTC()
	v1 := order.EventV1{SchemaVersion: order.SchemaVersion, OrderID: "4096", SaleID: "7", UserID: "alice", Quantity: 3,
		AmountCents: 300, Currency: "EUR", Status: order.StatusCancelled, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	for _, tc := range []struct {
		typ    string
		data   any
		reason string
	}{
		{order.EventCancelled, order.CancelledV1{EventV1: v1, Reason: order.ReasonOversold}, order.ReasonOversold},
		{order.EventCreated, order.CreatedV1{EventV1: v1}, ""},
		// A reason on another type is not the ledger's to record.
		{order.EventExpired, order.CancelledV1{EventV1: v1, Reason: order.ReasonBuyer}, ""},
	} {
		data, err := json.Marshal(tc.data)
		if err != nil {
			t.Fatal(err)
		}
		d, reason, err := decodeData(inbox.Event{Type: tc.typ, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if d.OrderID != "4096" || d.SaleID != "7" || d.Quantity != 3 {
			t.Errorf("%s: decoded %+v", tc.typ, d)
		}
		if got := deref(reason); got != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.typ, got, tc.reason)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestAfterCommitBatchUsesTheBatchsSales checks that the sales of a batch
// HandleBatch parsed are not decoded again after its commit (the events'
// data is spoilt in between: only a decode could fail), once: the next
// look-up decodes, as for a redelivery HandleNew never saw.
func TestAfterCommitBatchUsesTheBatchsSales(t *testing.T) {
	now := time.Now().UTC()
	var evs []inbox.Event
	for i, sale := range []string{"7", "9", "7"} {
		data, _ := json.Marshal(order.CreatedV1{EventV1: order.EventV1{SchemaVersion: order.SchemaVersion,
			OrderID: strconv.Itoa(4096 * (i + 1)), SaleID: sale, Quantity: 1, CreatedAt: now, ExpiresAt: now}})
		evs = append(evs, inbox.Event{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Type: order.EventCreated,
			Subject: strconv.Itoa(4096 * (i + 1)), Data: data})
	}
	es, err := parseEntries(evs, make([]bool, len(evs)))
	if err != nil {
		t.Fatal(err)
	}
	var l Ledger
	l.rememberSales(es)
	for i := range evs {
		evs[i].Data = json.RawMessage(`{"spoilt":`)
	}
	sales, err := l.createdSales(evs)
	if err != nil || len(sales) != 2 || sales[0].String() != "7" || sales[1].String() != "9" {
		t.Fatalf("sales %v, %v; want [7 9] from the batch", sales, err)
	}
	if _, err := l.createdSales(evs); err == nil {
		t.Error("a second look-up used the batch's sales again instead of decoding")
	}
}

// TestDecodeFastMatchesEncodingJSON decodes payloads of every shape with
// the fast path and with json.Unmarshal: wherever the fast path answers,
// it answers the same, and it answers for the data the order package
// writes.
func TestDecodeFastMatchesEncodingJSON(t *testing.T) {
	now := time.Now().UTC()
	v1 := order.EventV1{SchemaVersion: order.SchemaVersion, OrderID: "4096", SaleID: "7", UserID: "ålice \"q\"", Quantity: 3,
		AmountCents: 300, Currency: "EUR", Status: order.StatusCancelled, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	written, err := json.Marshal(order.CancelledV1{EventV1: v1, Reason: order.ReasonOversold})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		data string
		fast bool // the fast path answers
	}{
		{string(written), true},
		{`{"order_id":"1","sale_id":"2","quantity":5}`, true},
		{` { "quantity" : 2 , "order_id" : "9" , "nested" : {"a":[1,{"b":"}"}],"c":null} , "x":[] , "y":-1.5e3 , "z":true } `, true},
		{`{"order_id":"1","order_id":"2"}`, true}, // the last one wins, as in encoding/json
		{`{"note":"a,b}\"c"}`, true},
		{`{}`, true},
		{`{"Order_ID":"1"}`, false}, // encoding/json matches keys ignoring case
		{`{"QUANTITY":4}`, false},
		{`{"order_id":"\u0031"}`, false},
		{`{"order_id":"é"}`, false},
		{`{"quantity":-1}`, false},
		{`{"quantity":1.0}`, false},
		{`{"quantity":null}`, false},
		{`{"order_id":null}`, false},
		{`{"quantity":"1"}`, false},
		{`[1]`, false},
	} {
		got, ok := decodeFast([]byte(tc.data))
		if ok != tc.fast {
			t.Errorf("%s: fast path answered %v, want %v", tc.data, ok, tc.fast)
		}
		if !ok {
			continue
		}
		var want payload
		if err := json.Unmarshal([]byte(tc.data), &want); err != nil {
			t.Fatalf("%s: %v", tc.data, err)
		}
		if got != want {
			t.Errorf("%s: fast %+v, encoding/json %+v", tc.data, got, want)
		}
	}
}

// BenchmarkDecodeData reads a created event's data as the order package
// writes it, through decodeData and through encoding/json alone.
func BenchmarkDecodeData(b *testing.B) {
	now := time.Now().UTC()
	data, err := json.Marshal(order.CreatedV1{EventV1: order.EventV1{SchemaVersion: order.SchemaVersion, OrderID: "250092227018125313",
		SaleID: "7", UserID: "buyer-12345", Quantity: 1, AmountCents: 1999, Currency: "EUR", Status: order.StatusPendingPayment,
		CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}})
	if err != nil {
		b.Fatal(err)
	}
	ev := inbox.Event{Type: order.EventCreated, Data: data}
	b.Run("decodeData", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := decodeData(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var d payload
			if err := json.Unmarshal(data, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
