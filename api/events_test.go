package api

import (
	"testing"

	"flashsale/live"
)

// TestOrderStale: an order's stream skips what the client has and,
// after a final status, anything that arrives late from another instance.
func TestOrderStale(t *testing.T) {
	ev := func(status string) *live.Event { return live.NewEvent("order:1", "order", status, []byte(`{}`)) }
	cases := []struct {
		last, next string
		stale      bool
	}{
		{"pending_payment", "paid", false},
		{"pending_payment", "expired", false},
		{"pending_payment", "pending_payment", true},
		{"paid", "pending_payment", true}, // a create published late
		{"cancelled", "paid", true},
		{"expired", "expired", true},
	}
	for _, c := range cases {
		if got := orderStale(ev(c.last), ev(c.next)); got != c.stale {
			t.Errorf("after %s, %s: stale %v, want %v", c.last, c.next, got, c.stale)
		}
	}
}
