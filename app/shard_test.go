package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"flashsale/shard"
)

// TestOrdersLandOnTheirBuyersShard places orders for many buyers over 16
// shards on two databases: each order is stored in its buyer's shard
// schema, on the database the map names, and its id names that shard.
func TestOrdersLandOnTheirBuyersShard(t *testing.T) {
	s16 := startSharded(t, 16, nil)
	if len(s16.cfg.DatabaseURLs) < 2 {
		t.Fatal("FLASHSALE_DATABASE_URLS must name two databases for this test")
	}
	sale := s16.createSale(1000, 1)
	m, _ := shard.NewMap(16, len(s16.cfg.DatabaseURLs))
	want := map[string]shard.ID{}
	for i := range 64 {
		buyer := fmt.Sprint("router-", i)
		r := s16.order(buyer, "k", sale, 1)
		if r.Status != http.StatusCreated {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		id, _ := strconv.ParseInt(r.json(t)["id"].(string), 10, 64)
		got, ok := m.ForOrder(id)
		if !ok || got != m.ForUser(buyer) {
			t.Errorf("order %d of %s names shard %d, buyer's shard is %d", id, buyer, got, m.ForUser(buyer))
		}
		want[buyer] = m.ForUser(buyer)
		if g := s16.do("GET", "/v1/orders/"+r.json(t)["id"].(string), s16.token(buyer, false), nil, nil); g.Status != http.StatusOK {
			t.Errorf("read back by id: %d", g.Status)
		}
	}
	found := 0
	for db, u := range s16.cfg.DatabaseURLs {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range m.OnDatabase(db) {
			rows, _ := conn.Query(context.Background(), "SELECT user_id FROM "+sh.Schema()+".orders")
			users, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				found++
				if want[u] != sh {
					t.Errorf("%s's order is in %s on database %d, want shard %d", u, sh.Schema(), db, want[u])
				}
			}
		}
		conn.Close(context.Background())
	}
	if found != 64 {
		t.Errorf("found %d orders across the shards, want 64", found)
	}
}
