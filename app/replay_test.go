package app_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/order"
	"flashsale/ratelimit"
)

// sameAnswer fails unless r replays first: 201, the same Location, the
// body byte for byte, and Idempotent-Replayed: true.
func sameAnswer(t *testing.T, when string, r, first reply) {
	t.Helper()
	if r.Status != http.StatusCreated || !bytes.Equal(r.Body, first.Body) ||
		r.Header.Get("Location") != first.Header.Get("Location") || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("%s: %d Location %q Idempotent-Replayed %q body %s; want a replay of %s at %q", when, r.Status,
			r.Header.Get("Location"), r.Header.Get("Idempotent-Replayed"), r.Body, first.Body, first.Header.Get("Location"))
	}
}

// TestReplayAlwaysWins: a key that got 201 gets that same answer back
// whatever happened since: the sale sold out, the order was paid, another
// winner's order was cancelled (its units sold again), the sale sold out
// once more.
func TestReplayAlwaysWins(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(3, 2)
	payer := s.order("payer", "k-pay", sale, 1)
	canceller := s.order("canceller", "k-cancel", sale, 1)
	last := s.order("last", "k-last", sale, 1)
	for _, r := range []reply{payer, canceller, last} {
		if r.Status != http.StatusCreated {
			t.Fatalf("buying: %d %s", r.Status, r.Body)
		}
	}
	if r := s.order("late", "k-late", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sold-out" {
		t.Fatalf("a buyer without an order after sell-out: %d %s", r.Status, r.Body)
	}
	sameAnswer(t, "retry after sell-out", s.order("payer", "k-pay", sale, 1), payer)
	sameAnswer(t, "retry after sell-out", s.order("last", "k-last", sale, 1), last)
	if r := s.order("payer", "k-other", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sold-out" {
		t.Errorf("a winner with a new key after sell-out: %d %s", r.Status, r.Body)
	}
	if r := s.order("payer", "k-pay", sale, 2); r.Status != http.StatusUnprocessableEntity || r.problemType(t) != "idempotency-key-reused" {
		t.Errorf("a winner's key with another body after sell-out: %d %s", r.Status, r.Body)
	}

	if r := s.do("POST", "/v1/orders/"+payer.json(t)["id"].(string)+"/pay", s.token("payer", false), nil, nil); r.Status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	sameAnswer(t, "retry after payment", s.order("payer", "k-pay", sale, 1), payer)

	if r := s.do("POST", "/v1/orders/"+canceller.json(t)["id"].(string)+"/cancel", s.token("canceller", false), nil, nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	sameAnswer(t, "retry after cancel (sale reopened)", s.order("canceller", "k-cancel", sale, 1), canceller)
	if r := s.order("second-wave", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("buying the returned unit: %d %s", r.Status, r.Body)
	}
	if r := s.order("late", "k-late-2", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sold-out" {
		t.Fatalf("after the second sell-out: %d %s", r.Status, r.Body)
	}
	// The cancelled order holds no units any more, yet its key replays.
	sameAnswer(t, "retry of a cancelled order after the second sell-out", s.order("canceller", "k-cancel", sale, 1), canceller)
	sameAnswer(t, "retry of a paid order after the second sell-out", s.order("payer", "k-pay", sale, 1), payer)
}

// TestReplayAfterSaleEnded: once the sale's window has closed, a key that
// made an order replays it; any other key is refused as not active.
func TestReplayAfterSaleEnded(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	now := time.Now().UTC()
	ends := now.Add(4 * time.Second)
	r := s.do("POST", "/v1/admin/sales", s.token("admin", true), map[string]any{
		"sku": "SKU-E", "title": "Ending", "price_cents": 500, "currency": "EUR", "stock": 10,
		"per_user_limit": 2, "starts_at": now.Add(-time.Minute), "ends_at": ends}, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("create sale: %d %s", r.Status, r.Body)
	}
	sale := r.json(t)["id"].(string)
	first := s.order("early", "k-early", sale, 1)
	if first.Status != http.StatusCreated {
		t.Fatalf("buying before the end: %d %s", first.Status, first.Body)
	}
	time.Sleep(time.Until(ends) + 100*time.Millisecond) // waits for the window to close, asserts no timing
	sameAnswer(t, "retry after the sale ended", s.order("early", "k-early", sale, 1), first)
	if r := s.order("early", "k-new", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sale-not-active" {
		t.Errorf("a new key after the sale ended: %d %s", r.Status, r.Body)
	}
	if r := s.order("nobody", "k-early", sale, 1); r.Status != http.StatusConflict || r.problemType(t) != "sale-not-active" {
		t.Errorf("another buyer after the sale ended: %d %s", r.Status, r.Body)
	}
}

// saleShortage reads the sale page's sold_out and held fields.
func (s *stack) saleShortage(sale string) (state string, held any) {
	s.t.Helper()
	r := s.do("GET", "/v1/sales/"+sale, "", nil, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET sale: %d %s", r.Status, r.Body)
	}
	m := r.json(s.t)
	state, _ = m["sold_out"].(string)
	return state, m["held"]
}

// TestSoldOutWhileHeldIsRetryable: while a unit sits in a reservation that
// has no order yet (its commit in flight, or lost), a refused buyer is told
// to retry, and the sale page says "held"; once the reservation is
// released the unit sells, and the next refusal is final, "gone".
func TestSoldOutWhileHeldIsRetryable(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(2, 2)
	if r := s.order("winner", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("buying: %d %s", r.Status, r.Body)
	}
	// A reservation whose commit has not happened: straight through Redis.
	stock := invredis.NewStock(testenv.Redis(t, s.cfg, 0), s.cfg.RedisPrefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})
	id, err := inventory.ParseSaleID(sale)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := inventory.NewQuantity(1)
	ctx := context.Background()
	if _, err := stock.Reserve(ctx, inventory.Reservation{Sale: id, Buyer: "in-flight", Key: "k", Fingerprint: "f", Qty: q, ClientIP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"refused-by-redis", "refused-from-memory"} {
		r := s.order(who, "k", sale, 1)
		if r.Status != http.StatusConflict || r.problemType(t) != "sold-out" || r.Header.Get("Retry-After") == "" {
			t.Errorf("refusal %d while a unit is held: %d Retry-After %q %s", i+1, r.Status, r.Header.Get("Retry-After"), r.Body)
		}
	}
	if state, held := s.saleShortage(sale); state != "held" || held != float64(1) {
		t.Errorf("sale page while a unit is held: sold_out %q held %v, want held 1", state, held)
	}

	if _, err := stock.Release(ctx, id, "in-flight", "k", true); err != nil {
		t.Fatal(err)
	}
	var bought reply
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if bought = s.order("second", "k", sale, 1); bought.Status == http.StatusCreated {
			break // the released unit came back on this instance
		}
	}
	if bought.Status != http.StatusCreated {
		t.Fatalf("the released unit did not sell: %d %s", bought.Status, bought.Body)
	}
	r := s.order("refused-for-good", "k", sale, 1)
	if r.Status != http.StatusConflict || r.problemType(t) != "sold-out" || r.Header.Get("Retry-After") != "" {
		t.Errorf("refusal once every unit is in an order: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if state, held := s.saleShortage(sale); state != "gone" || held != float64(0) {
		t.Errorf("sale page once every unit is in an order: sold_out %q held %v, want gone 0", state, held)
	}
}

// TestHeldTurnsGoneWhenTheCommitLands: the held unit's order commits late;
// the sold-out memory's recheck counts it, and refusals become final
// without any unit coming back.
func TestHeldTurnsGoneWhenTheCommitLands(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(1, 1)
	stock := invredis.NewStock(testenv.Redis(t, s.cfg, 0), s.cfg.RedisPrefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})
	id, err := inventory.ParseSaleID(sale)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := inventory.NewQuantity(1)
	ctx := context.Background()
	res, err := stock.Reserve(ctx, inventory.Reservation{Sale: id, Buyer: "slow", Key: "k", Fingerprint: "f", Qty: q, ClientIP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.order("refused", "k", sale, 1); r.Status != http.StatusConflict || r.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal while the unit is held: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	// The slow request's commit lands now.
	v, err := s.app.Sales().Sale(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	buyer, _ := order.ParseBuyerID("slow")
	key, _ := order.ParseIdemKey("k")
	if _, err := s.app.OrderStore().Create(ctx, order.NewOrder{Sale: v.Sale, Buyer: buyer, Key: key, RequestHash: []byte("f"),
		Qty: 1, Window: time.Minute, Deadline: res.At.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var state string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && state != "gone"; time.Sleep(100 * time.Millisecond) {
		state, _ = s.saleShortage(sale)
	}
	if state != "gone" {
		t.Fatalf("sale page after the held unit's order committed: sold_out %q, want gone", state)
	}
	if r := s.order("refused-for-good", "k", sale, 1); r.Status != http.StatusConflict || r.Header.Get("Retry-After") != "" {
		t.Errorf("refusal once the order committed: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
}
