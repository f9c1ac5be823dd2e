package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

// outboxEvent is one outbox row of an order.
type outboxEvent struct {
	Type    string
	Payload map[string]any
}

// events lists the outbox rows of an order, in outbox order, from the
// shard its id names.
func (s *stack) events(orderID string) []outboxEvent {
	s.t.Helper()
	var id int64
	if err := json.Unmarshal([]byte(orderID), &id); err != nil {
		s.t.Fatalf("order id %q: %v", orderID, err)
	}
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	sh, ok := m.ForOrder(id)
	if !ok {
		s.t.Fatalf("order id %s names no shard", orderID)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.cfg.DatabaseURLs[m.Database(sh)])
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT event_type, payload FROM "+sh.Schema()+".outbox WHERE aggregate_id = $1 ORDER BY id", id)
	if err != nil {
		s.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outboxEvent, error) {
		var e outboxEvent
		err := r.Scan(&e.Type, &e.Payload)
		return e, err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func eventTypes(evs []outboxEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// placed orders and returns the new order's id, failing unless 201.
func (s *stack) placed(buyer, key, sale string, qty int) string {
	s.t.Helper()
	r := s.order(buyer, key, sale, qty)
	if r.Status != http.StatusCreated {
		s.t.Fatalf("order by %s: %d %s", buyer, r.Status, r.Body)
	}
	return r.json(s.t)["id"].(string)
}

// TestPayAndCancel walks the buyer's transitions over HTTP: pay, pay
// again, cancel a paid order, cancel a pending one, and what strangers and
// malformed ids get; then the stock and the events of each order.
func TestPayAndCancel(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(10, 5)
	alice := s.token("alice", false)
	paid := s.placed("alice", "k-paid", sale, 2)
	pending := s.placed("alice", "k-cancel", sale, 3)
	if left := s.remaining(sale); left != 5 {
		t.Fatalf("stock %d after two orders, want 5", left)
	}

	r := s.do("POST", "/v1/orders/"+paid+"/pay", alice, nil, nil)
	if r.Status != http.StatusOK || r.json(t)["status"] != "paid" || r.json(t)["id"] != paid {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/v1/orders/"+paid, alice, nil, nil); r.json(t)["status"] != "paid" {
		t.Errorf("GET after pay: %s", r.Body)
	}
	for _, tc := range []struct{ name, path string }{
		{"pay again", "/v1/orders/" + paid + "/pay"},
		{"cancel a paid order", "/v1/orders/" + paid + "/cancel"},
	} {
		if r := s.do("POST", tc.path, alice, nil, nil); r.Status != http.StatusConflict || r.problemType(t) != "invalid-state" {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
		}
	}

	// Strangers and malformed or unknown ids, before the owner cancels.
	mallory := s.token("mallory", false)
	for _, tc := range []struct {
		name, path, token string
		status            int
		typ               string
	}{
		{"stranger pays", "/v1/orders/" + pending + "/pay", mallory, 404, "not-found"},
		{"stranger cancels", "/v1/orders/" + pending + "/cancel", mallory, 404, "not-found"},
		{"stranger cancels a paid order", "/v1/orders/" + paid + "/cancel", mallory, 404, "not-found"},
		{"malformed id, pay", "/v1/orders/abc/pay", alice, 400, "validation-error"},
		{"malformed id, cancel", "/v1/orders/-5/cancel", alice, 400, "validation-error"},
		{"unknown id", "/v1/orders/123456789/pay", alice, 404, "not-found"},
		{"no token", "/v1/orders/" + pending + "/cancel", "", 401, "unauthorized"},
	} {
		r := s.do("POST", tc.path, tc.token, nil, nil)
		if r.Status != tc.status || r.problemType(t) != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.typ)
		}
	}
	if r := s.do("GET", "/v1/orders/"+pending, alice, nil, nil); r.json(t)["status"] != "pending_payment" {
		t.Fatalf("strangers changed the order: %s", r.Body)
	}

	r = s.do("POST", "/v1/orders/"+pending+"/cancel", alice, nil, nil)
	if r.Status != http.StatusOK || r.json(t)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	if left := s.remaining(sale); left != 8 {
		t.Errorf("stock %d after the cancel, want 8", left)
	}
	if r := s.do("POST", "/v1/orders/"+pending+"/cancel", alice, nil, nil); r.Status != http.StatusConflict || r.problemType(t) != "invalid-state" {
		t.Errorf("cancel again: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/v1/orders/"+pending+"/pay", alice, nil, nil); r.Status != http.StatusConflict || r.problemType(t) != "invalid-state" {
		t.Errorf("pay a cancelled order: %d %s", r.Status, r.Body)
	}
	if left := s.remaining(sale); left != 8 {
		t.Errorf("stock %d after refused transitions, want 8", left)
	}
	// The claim is kept: retrying the original request replays the order as
	// first answered (replay_test.go checks it byte for byte).
	if r := s.order("alice", "k-cancel", sale, 3); r.Status != http.StatusCreated ||
		r.Header.Get("Idempotent-Replayed") != "true" || r.json(t)["id"] != pending || r.json(t)["status"] != "pending_payment" {
		t.Errorf("retry of the cancelled order's request: %d %s", r.Status, r.Body)
	}
	// The buyer's limit (5) counts what is held: the cancelled 3 are free again.
	s.placed("alice", "k-again", sale, 3)

	evs := s.events(pending)
	if got := eventTypes(evs); !slices.Equal(got, []string{"flashsale.order.created", "flashsale.order.cancelled"}) {
		t.Fatalf("events of the cancelled order: %v", got)
	}
	c := evs[1].Payload
	if c["status"] != "cancelled" || c["reason"] != "buyer" || c["order_id"] != pending || c["sale_id"] != sale ||
		c["user_id"] != "alice" || c["quantity"] != float64(3) || c["amount_cents"] != float64(3*19900) ||
		c["currency"] != "EUR" || c["schema_version"] != float64(1) || c["expires_at"] != evs[0].Payload["expires_at"] {
		t.Errorf("cancelled payload: %v", c)
	}
	evs = s.events(paid)
	if got := eventTypes(evs); !slices.Equal(got, []string{"flashsale.order.created", "flashsale.order.paid"}) {
		t.Fatalf("events of the paid order: %v", got)
	}
	if p := evs[1].Payload; p["status"] != "paid" || p["order_id"] != paid || p["quantity"] != float64(2) {
		t.Errorf("paid payload: %v", p)
	}
	if _, ok := evs[1].Payload["reason"]; ok {
		t.Errorf("paid payload carries a reason: %v", evs[1].Payload)
	}
}

// TestUnpaidOrderExpires: with a 1s payment window the instance's sweeper
// expires the order, its unit returns, the sold-out sale reopens for a new
// buyer, and a payment after the expiry is refused.
func TestUnpaidOrderExpires(t *testing.T) {
	s := start(t, func(c *config.Config) {
		c.PaymentWindow = time.Second
		c.UserRate, c.UserBurst = 1000, 1000 // the test polls
	})
	sale := s.createSale(1, 1)
	first := s.placed("first", "k", sale, 1)
	if r := s.order("second", "k", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sold-out" {
		t.Fatalf("order on a sold-out sale: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.do("GET", "/v1/orders/"+first, s.token("first", false), nil, nil)
		if r.json(t)["status"] == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order not expired after 10s: %s", r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left := s.remaining(sale); left != 1 {
		t.Errorf("stock %d after the expiry, want 1", left)
	}
	if r := s.do("POST", "/v1/orders/"+first+"/pay", s.token("first", false), nil, nil); r.Status != http.StatusConflict || r.problemType(t) != "invalid-state" {
		t.Errorf("late payment: %d %s", r.Status, r.Body)
	}
	// This instance had marked the sale sold out; the release reopened it.
	s.placed("second", "k2", sale, 1)
	if left := s.remaining(sale); left != 0 {
		t.Errorf("stock %d, want 0", left)
	}
	evs := s.events(first)
	if got := eventTypes(evs); !slices.Equal(got, []string{"flashsale.order.created", "flashsale.order.expired"}) {
		t.Fatalf("events: %v", got)
	}
	if p := evs[1].Payload; p["status"] != "expired" || p["order_id"] != first {
		t.Errorf("expired payload: %v", p)
	}
}

// TestPayRacesCancel sends five payments and five cancellations of one
// order at once, ten times: exactly one request wins, the rest are 409,
// and the units come back exactly when the cancellation won.
func TestPayRacesCancel(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	for round := range 10 {
		sale := s.createSale(1, 1)
		buyer := "racer-" + string(rune('a'+round))
		id := s.placed(buyer, "k", sale, 1)
		tok := s.token(buyer, false)
		var replies [10]reply
		testenv.Burst(10, func(i int) {
			action := "/pay"
			if i%2 == 1 {
				action = "/cancel"
			}
			replies[i] = s.do("POST", "/v1/orders/"+id+action, tok, nil, nil)
		})
		var won []string
		for i, r := range replies {
			switch {
			case r.Status == http.StatusOK:
				won = append(won, r.json(t)["status"].(string))
			case r.Status == http.StatusConflict && r.problemType(t) == "invalid-state":
			default:
				t.Fatalf("round %d, request %d: %d %s", round, i, r.Status, r.Body)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d requests won (%v), want 1", round, len(won), won)
		}
		wantLeft := map[string]int{"paid": 0, "cancelled": 1}[won[0]]
		if left := s.remaining(sale); left != wantLeft {
			t.Fatalf("round %d: %s won, stock %d, want %d", round, won[0], left, wantLeft)
		}
		if got := eventTypes(s.events(id)); len(got) != 2 || got[1] != "flashsale.order."+won[0] {
			t.Fatalf("round %d: %s won, events %v", round, won[0], got)
		}
	}
}
