package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"flashsale/internal/testenv"
)

// TestBurstSellsEveryUnitExactlyOnce releases 2,000 buyers at once on a
// small sale: exactly stock/qty orders, each with its outbox row, no buyer
// twice, nothing left in Redis but the odd unit, everyone else sold out.
func TestBurstSellsEveryUnitExactlyOnce(t *testing.T) {
	cases := []struct {
		name                     string
		buyers, stock, limit, qt int
	}{
		{"limit 1", 2000, 100, 1, 1},
		{"limit 2, quantity 2, odd stock", 2000, 101, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, nil)
			sale := s.createSale(tc.stock, tc.limit)
			var mu sync.Mutex
			outcomes := map[string]int{}
			testenv.Burst(tc.buyers, func(i int) {
				r := s.order(fmt.Sprintf("buyer-%d", i), "key-1", sale, tc.qt)
				outcome := fmt.Sprint(r.Status)
				if r.Status != http.StatusCreated {
					outcome = r.problemType(t)
				}
				mu.Lock()
				outcomes[outcome]++
				mu.Unlock()
			})
			want := tc.stock / tc.qt
			if outcomes["201"] != want || outcomes["sold-out"] != tc.buyers-want || len(outcomes) != 2 {
				t.Fatalf("outcomes %v, want %d created and %d sold-out", outcomes, want, tc.buyers-want)
			}
			if n := s.sumShards(`SELECT count(*) FROM __shard__.orders WHERE sale_id = $1`, sale); n != want {
				t.Errorf("%d orders in PostgreSQL, want %d", n, want)
			}
			if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox WHERE event_type = 'flashsale.order.created'`); n != want {
				t.Errorf("%d outbox rows, want %d", n, want)
			}
			if n := s.sumShards(`SELECT count(DISTINCT user_id) FROM __shard__.orders`); n != want {
				t.Errorf("%d distinct buyers, want %d (a buyer ordered twice)", n, want)
			}
			if n := s.sumShards(`SELECT coalesce(sum(quantity), 0)::int FROM __shard__.orders`); n != want*tc.qt {
				t.Errorf("%d units sold, want %d", n, want*tc.qt)
			}
			if left := s.remaining(sale); left != tc.stock%tc.qt {
				t.Errorf("Redis stock %d, want %d", left, tc.stock%tc.qt)
			}
		})
	}
}
