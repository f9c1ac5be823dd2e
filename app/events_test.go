package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/config"
	"flashsale/internal/testenv"
)

// TestEveryOrderBecomesExactlyOneCreatedEvent: a burst of orders, then the
// topic read back with a plain kafka-go reader holds one
// flashsale.order.created event per order, keyed and addressed by its id.
func TestEveryOrderBecomesExactlyOneCreatedEvent(t *testing.T) {
	s := start(t, func(c *config.Config) {
		c.RelayEnabled = true
		testenv.Topic(t, c)
	})
	sale := s.createSale(150, 1)
	var mu sync.Mutex
	ids := map[string]bool{}
	testenv.Burst(300, func(i int) {
		r := s.order(fmt.Sprint("ev-buyer-", i), "k", sale, 1)
		if r.Status == http.StatusCreated {
			mu.Lock()
			ids[r.json(t)["id"].(string)] = true
			mu.Unlock()
		}
	})
	if len(ids) != 150 {
		t.Fatalf("%d orders, want 150", len(ids))
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.KafkaBrokers, Topic: s.cfg.KafkaTopic,
		GroupID: "check-" + s.cfg.RedisPrefix, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	for len(seen) < len(ids) {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(seen), err)
		}
		var e struct {
			Type, Subject string
			Data          struct {
				OrderID string `json:"order_id"`
			}
		}
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type != "flashsale.order.created" || e.Subject != string(m.Key) || e.Data.OrderID != e.Subject || !ids[e.Subject] {
			t.Fatalf("unexpected event %s: %s", m.Key, m.Value)
		}
		seen[e.Subject]++
	}
	// Nothing more arrives: exactly one event per order.
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if m, err := rd.ReadMessage(short); err == nil {
		t.Errorf("an extra event arrived: %s", m.Value)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox WHERE published_at IS NULL`); n != 0 {
		t.Errorf("%d outbox rows unpublished", n)
	}
}
