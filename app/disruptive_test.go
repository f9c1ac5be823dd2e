//go:build disruptive

// These tests stop and restart the shared services, so `make test` runs
// them alone, after every other test, with -tags disruptive -p 1.

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/config"
	"flashsale/internal/testenv"
)

func stackCmd(t *testing.T, verb, component string) {
	t.Helper()
	out, err := exec.Command("../scripts/stack.sh", verb, component).CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s %s: %v\n%s", verb, component, err, out)
	}
}

// TestKafkaOutageLosesNothing stops Kafka for 30 s during a sale: orders
// are still accepted (the outbox grows), and after the restart the relay
// publishes every one of them.
func TestKafkaOutageLosesNothing(t *testing.T) {
	s := start(t, func(c *config.Config) {
		c.RelayEnabled = true
		testenv.Topic(t, c)
		c.UserRate, c.UserBurst = 1000, 1000
	})
	sale := s.createSale(1000, 1000)
	ids := map[string]bool{}
	var mu sync.Mutex
	buy := func(from, to int) {
		testenv.Burst(to-from, func(i int) {
			r := s.order("kafka-outage", fmt.Sprint("k", from+i), sale, 1)
			if r.Status != http.StatusCreated {
				t.Errorf("order during the outage: %d %s", r.Status, r.Body)
				return
			}
			mu.Lock()
			ids[r.json(t)["id"].(string)] = true
			mu.Unlock()
		})
	}
	buy(0, 50)
	stackCmd(t, "stop", "kafka")
	restarted := false
	defer func() {
		if !restarted {
			stackCmd(t, "start", "kafka")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for n := 50; time.Now().Before(deadline); n += 25 {
		buy(n, n+25)
		time.Sleep(2 * time.Second)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox WHERE published_at IS NULL`); n == 0 {
		t.Error("the outbox did not grow while Kafka was down")
	}
	stackCmd(t, "start", "kafka")
	restarted = true
	for end := time.Now().Add(60 * time.Second); s.sumShards(`SELECT count(*) FROM __shard__.outbox WHERE published_at IS NULL`) > 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the relay did not catch up within 60 s of Kafka's restart")
		}
	}
	seen := readCreated(t, s, len(ids))
	for id := range ids {
		if !seen[id] {
			t.Errorf("order %s has no created event", id)
		}
	}
}

// readCreated reads the test's topic from the start until want distinct
// orders have a created event.
func readCreated(t *testing.T, s *stack, want int) map[string]bool {
	t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.KafkaBrokers, Topic: s.cfg.KafkaTopic,
		GroupID: "check-" + s.cfg.RedisPrefix, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < want {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %d of %d orders: %v", len(seen), want, err)
		}
		var e struct{ Type, Subject string }
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "flashsale.order.created" {
			seen[e.Subject] = true
		}
	}
	return seen
}

// TestPostgresRestartLosesNoOrder restarts PostgreSQL under a stream of
// orders: requests during the outage are refused (never answered 201
// without a commit), and every 201 is an order PostgreSQL holds afterwards.
func TestPostgresRestartLosesNoOrder(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(5000, 5000)
	var mu sync.Mutex
	created := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := s.order("pg-restart", fmt.Sprintf("w%d-%d", w, i), sale, 1)
				if r.Status == http.StatusCreated {
					mu.Lock()
					created[r.json(t)["id"].(string)] = true
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	stackCmd(t, "stop", "postgres")
	time.Sleep(3 * time.Second)
	stackCmd(t, "start", "postgres")
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	n := s.sumShards(`SELECT count(*) FROM __shard__.orders`)
	if n < len(created) {
		t.Fatalf("%d orders answered 201, only %d in PostgreSQL", len(created), n)
	}
	// Orders whose commit outcome was unknown stay reserved; every other
	// unit is either sold or back in stock.
	if left := s.remaining(sale); left+n > 5000 {
		t.Errorf("stock %d + %d orders exceeds 5000: a unit was sold twice", left, n)
	}
	t.Logf("%d orders created across the restart", len(created))
}

// TestOneRedisNodeDownKeepsLeasesFast: with one of the three lock nodes
// stopped, a restock (which takes a RedLock lease) still succeeds quickly.
func TestOneRedisNodeDownKeepsLeasesFast(t *testing.T) {
	s := start(t, nil)
	sale := s.createSale(10, 1)
	stackCmd(t, "stop", "redis3")
	defer stackCmd(t, "start", "redis3")
	begin := time.Now()
	r := s.do("POST", "/v1/admin/sales/"+sale+"/restock", s.token("admin", true), map[string]any{"quantity": 5}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("restock with a node down: %d %s", r.Status, r.Body)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("restock took %s with one node down", d)
	}
	if o := s.order("node-down", "k", sale, 1); o.Status != http.StatusCreated {
		t.Errorf("order with a lock node down: %d %s", o.Status, o.Body)
	}
}
