package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/internal/testenv"
)

// TestEveryOrderHasExactlyOneLedgerEntry: orders placed through the API,
// relayed to Kafka and consumed in-process leave one ledger entry each.
func TestEveryOrderHasExactlyOneLedgerEntry(t *testing.T) {
	s := start(t, withEvents(t))
	sale := s.createSale(50, 1)
	var mu sync.Mutex
	ids := map[int64]bool{}
	testenv.Burst(80, func(i int) {
		r := s.order(fmt.Sprint("ledger-buyer-", i), "k", sale, 1)
		if r.Status == http.StatusCreated {
			var id int64
			fmt.Sscan(r.json(t)["id"].(string), &id)
			mu.Lock()
			ids[id] = true
			mu.Unlock()
		}
	})
	if len(ids) != 50 {
		t.Fatalf("%d orders", len(ids))
	}
	db, err := pgxpool.New(context.Background(), s.cfg.DatabaseURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	var rows []int64
	for {
		r, _ := db.Query(context.Background(), `SELECT order_id FROM ledger_entries WHERE kind = 'created'`)
		rows, err = pgx.CollectRows(r, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) >= 50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[int64]int{}
	for _, id := range rows {
		seen[id]++
		if !ids[id] || seen[id] > 1 {
			t.Errorf("ledger entry for order %d (known %v, seen %d)", id, ids[id], seen[id])
		}
	}
	var sold, released int64
	_ = db.QueryRow(context.Background(), `SELECT sold, released FROM stock_ledger`).Scan(&sold, &released)
	if len(seen) != 50 || sold != 50 || released != 0 {
		t.Fatalf("%d orders in the ledger, sold %d released %d", len(seen), sold, released)
	}
	for _, c := range s.app.Consumers() {
		t.Logf("%+v lag %d", c.Stats(), c.Lag())
	}
}
