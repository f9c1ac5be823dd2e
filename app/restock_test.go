package app_test

import (
	"net/http"
	"testing"
	"time"
)

// TestRestockReopensEveryInstance: two instances both learn a sale is sold
// out; a restock through one reopens it there at once and on the other
// within a second (Redis pub/sub), so no unit is left unsold.
func TestRestockReopensEveryInstance(t *testing.T) {
	a := start(t, nil)
	b := startWith(t, a.cfg)
	sale := a.createSale(1, 1)
	if r := a.order("first", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("first order: %d %s", r.Status, r.Body)
	}
	for _, s := range []*stack{a, b} {
		if r := s.order("late", "k", sale, 1); r.problemType(t) != "sold-out" {
			t.Fatalf("after sell-out: %d %s", r.Status, r.Body)
		}
	}
	r := a.do("POST", "/v1/admin/sales/"+sale+"/restock", a.token("admin", true), map[string]any{"quantity": 2}, nil)
	if r.Status != http.StatusOK || r.json(t)["remaining"] != float64(2) || r.json(t)["stock"] != float64(3) {
		t.Fatalf("restock: %d %s", r.Status, r.Body)
	}
	if r := a.order("after-1", "k", sale, 1); r.Status != http.StatusCreated {
		t.Errorf("instance that restocked: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(time.Second)
	for {
		r := b.order("after-2", "k", sale, 1)
		if r.Status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("other instance still refuses a second after the restock: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 3 {
		t.Errorf("%d orders, want 3", n)
	}
}
